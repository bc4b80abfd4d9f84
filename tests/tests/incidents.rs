//! The incident suite (`hemostat_e2e::incidents`) through the whole stack:
//! real containers failing in 17 ways on the test engine, the real
//! collector, bridge, emulator and functions. Each incident's diagnosed
//! cause and action must be the expected ones, and none may get an action
//! that makes it worse. Then the LLM path against the local fake server:
//! the evidence reaches the prompt and the model's verdict reaches the
//! events.

use hemostat_e2e::{
    FakeLlm, RedisServer, docker,
    fake_llm::Mode,
    incidents::{self, Expect},
    start_stack_with,
};
use hemostat_protocol::diagnosis::Cause;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_incident_is_diagnosed_by_cause_and_gets_the_right_action() {
    let redis = RedisServer::start_node().await;
    let docker = docker().await;
    let stack = start_stack_with(&redis.url(), &incidents::stack_env()).await;
    let conn = redis.connection().await;

    let suite = incidents::all();
    assert!(suite.len() >= 15, "the suite has {} incidents", suite.len());
    let started = std::time::Instant::now();
    let outcomes = incidents::run_all(&docker, &conn, &stack.host, &suite).await;
    let table = incidents::table(&outcomes);
    println!("{table}\n(suite took {:.1} s)", started.elapsed().as_secs_f64());

    let wrong: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.correct() || o.made_worse())
        .map(|o| format!("{}: expected {}, got {}", o.label, o.expected(), o.diagnosed()))
        .collect();
    assert!(
        wrong.is_empty(),
        "incidents misjudged:\n{}\n\n{table}\n\ncollector:\n{}\nemulator:\n{}",
        wrong.join("\n"),
        stack.collector.log_tail(60),
        stack.emulator.log_tail(60)
    );
    for o in outcomes.iter() {
        let Some(d) = &o.decision else { continue };
        assert_eq!(d.context.analysis_method.as_deref(), Some("rule_based"), "{}", o.label);
        if let Expect::Decision { cause, .. } = o.step.expect {
            let diagnosis = d.context.diagnosis.as_ref().expect("a diagnosis");
            // A diagnosis that decides cites what it rests on, verbatim.
            if matches!(cause, Cause::PortInUse | Cause::DiskFull | Cause::PanicOrException | Cause::OutOfMemoryInApp) {
                assert!(!diagnosis.evidence.is_empty(), "{}: {diagnosis:?}", o.label);
            }
        }
    }
}

/// The LLM path on two incidents: the fake model answers as OpenAI's API
/// would, citing a line the container printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_llm_path_sees_the_evidence_and_its_verdict_reaches_the_events() {
    let redis = RedisServer::start_node().await;
    let docker = docker().await;
    let llm = FakeLlm::start().await;
    let env = incidents::stack_env()
        .emulator("OPENAI_API_KEY", "sk-test-incidents")
        .emulator("OPENAI_BASE_URL", llm.openai_base());
    let stack = start_stack_with(&redis.url(), &env).await;
    let conn = redis.connection().await;

    for run in incidents::llm_runs() {
        llm.set(Mode::Answer(run.answer));
        let before = llm.requests();
        let incident = incidents::all().into_iter().find(|i| i.name == run.incident).expect("incident");
        let outcomes = incidents::run_all(&docker, &conn, &stack.host, std::slice::from_ref(&incident)).await;
        let o = &outcomes[0];
        println!("{}", o.row());
        let d = o
            .decision
            .as_ref()
            .unwrap_or_else(|| panic!("{}: {}\nemulator:\n{}", o.label, o.diagnosed(), stack.emulator.log_tail(60)));
        // The evidence reached the prompt.
        let seen = llm.seen();
        assert!(seen.len() > before, "{}: the model was not asked", run.incident);
        let prompt = seen.last().unwrap().body.to_string();
        assert!(prompt.contains(run.evidence), "{}: prompt lacks {:?}: {prompt}", run.incident, run.evidence);
        // The verdict reached the events.
        assert_eq!(d.context.analysis_method.as_deref(), Some("llm"), "{}: {d:?}", run.incident);
        let diagnosis = d.context.diagnosis.as_ref().expect("the model's diagnosis");
        assert_eq!((diagnosis.cause, d.action), (run.cause, run.action), "{}", run.incident);
        assert!(diagnosis.summary.starts_with("fake model:"), "{diagnosis:?}");
        assert_eq!(diagnosis.evidence, [run.evidence]);
    }
}
