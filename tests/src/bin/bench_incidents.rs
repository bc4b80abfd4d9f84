//! The incident suite, measured: every incident of `hemostat_e2e::incidents`
//! (real containers failing on the test engine) through the whole stack on
//! the rules path, as a table (expected cause and action, diagnosed cause
//! and action, correct or not, made worse or not, detection-to-diagnosis
//! time) with the rules path's accuracy; then a few incidents on the LLM
//! path against a local fake of OpenAI's Chat Completions API, showing the
//! evidence in the prompt and the model's verdict in the events. With a
//! real model's server (`HEMOSTAT_TEST_LLM_URL`, from `scripts/llm.sh
//! start`), the model table: per failure of `hemostat_e2e::llm_incidents`
//! and in total, accuracy (cause, action), made-worse count and latency for
//! the rules alone, the model alone and the two together.
//!
//!   scripts/test-env.sh start; source /tmp/hemostat-test/env
//!   scripts/llm.sh start; source /tmp/hemostat-llm/env      # optional: the model table
//!   cargo build --workspace --bins && target/debug/hemostat-bench-incidents [--redis node|cluster] [--no-llm] [--model-table]
//!
//! `--model-table`: the model table alone (no containers). `--incidents
//! <folder>`: only the incident files of that folder (written to the
//! contract of `tests/incidents/README.md`: your own failures, or a batch
//! measured before it joins a set), their table and figures. The binaries it
//! starts come from `HEMOSTAT_BIN_DIR` (default `target/debug`). Exits
//! non-zero when the rules path gets less than 90 % right, any incident
//! gets an action that makes it worse, or the model table shows the model
//! making anything worse (or its answers outside the schema).

use std::time::Duration;

use hemostat_e2e::{
    FakeLlm, RedisServer, docker,
    fake_llm::Mode,
    incident_files::{self, Set},
    incidents::{self, Outcome},
    llm_incidents, start_stack_with,
};

/// The goal: at least this share of steps right on the rules path.
const GOAL: f64 = 0.9;

fn main() {
    let mut llm = true;
    let mut only_model = false;
    let mut folder = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            // RedisServer::start reads the mode from the environment.
            "--redis" => {
                let mode = args.next().unwrap_or_default();
                // SAFETY: single-threaded here; no runtime or thread exists yet.
                unsafe { std::env::set_var("HEMOSTAT_TEST_REDIS", &mode) };
            }
            "--no-llm" => llm = false,
            "--model-table" => only_model = true,
            "--incidents" => folder = args.next(),
            _ => {
                eprintln!(
                    "usage: hemostat-bench-incidents [--redis node|cluster] [--no-llm] [--model-table] [--incidents <folder>]"
                );
                std::process::exit(2);
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    if let Some(folder) = folder {
        let ok = runtime.block_on(one_folder(std::path::Path::new(&folder)));
        std::process::exit(if ok { 0 } else { 1 });
    }
    let ok = runtime.block_on(async {
        let mut ok = only_model || run(llm).await;
        if llm || only_model {
            ok &= model_table().await;
        }
        ok
    });
    std::process::exit(if ok { 0 } else { 1 });
}

/// The model table against the real server named by `HEMOSTAT_TEST_LLM_URL`;
/// said and skipped when it is unset.
async fn model_table() -> bool {
    let Ok(url) = std::env::var("HEMOSTAT_TEST_LLM_URL") else {
        println!("\n# Model table: skipped (HEMOSTAT_TEST_LLM_URL unset; scripts/llm.sh start, then source its env)");
        return true;
    };
    let model = std::env::var("HEMOSTAT_TEST_LLM_MODEL").unwrap_or_else(|_| "gemma-3-270m".into());
    let incidents = llm_incidents::all();
    println!("\n# Model table: {} failures, {model} at {url}\n", incidents.len());
    for i in &incidents {
        println!(
            "- {}: exit {}, {} ({})",
            i.name,
            i.exit_code,
            i.log.iter().rev().find(|l| !l.trim().is_empty()).unwrap_or(&""),
            i.source
        );
    }
    println!("\nC: cause right, A: action right (restart exactly where a restart helps)\n");
    let redis = RedisServer::start().await;
    let conn = redis.connection().await;
    let started = std::time::Instant::now();
    let rows = llm_incidents::evaluate(&conn, &url, &model, Duration::from_secs(120)).await;
    println!("{}", llm_incidents::table(&rows));
    println!("wall time: {:.1} s", started.elapsed().as_secs_f64());
    let problems: Vec<String> =
        rows.iter().flat_map(|r| r.problems.iter().map(move |p| format!("- {}: {p}", r.incident.name))).collect();
    if !problems.is_empty() {
        println!("\nwhat must hold whatever the model says, and did NOT:\n{}", problems.join("\n"));
    }
    problems.is_empty()
}

async fn run(with_llm: bool) -> bool {
    let docker = docker().await;
    let suite = incidents::all();
    println!("# Incident suite: {} incidents, rules path\n", suite.len());
    for i in &suite {
        println!("- {}: {}", i.name, i.what);
    }
    println!();

    let outcomes = {
        let redis = RedisServer::start().await;
        let stack = start_stack_with(&redis.url(), &incidents::stack_env()).await;
        let conn = redis.connection().await;
        let started = std::time::Instant::now();
        let outcomes = incidents::run_all(&docker, &conn, &stack.host, &suite).await;
        println!("{}", incidents::table(&outcomes));
        println!("suite wall time: {:.1} s", started.elapsed().as_secs_f64());
        written_sets(&docker, &conn, &stack.host).await;
        outcomes
    };
    print_latency(&outcomes);
    let (_, _, share) = incidents::accuracy(&outcomes);
    let worse = outcomes.iter().filter(|o| o.made_worse()).count();
    let mut ok = share >= GOAL && worse == 0;
    println!("goal: >= {:.0} % correct and nothing made worse: {}", GOAL * 100.0, if ok { "met" } else { "MISSED" });

    if with_llm {
        ok &= llm_path(&docker).await;
    }
    ok
}

/// The incidents written as data: each set's table and figures (the
/// evaluation set was written apart and is never tuned on).
async fn written_sets(docker: &bollard::Docker, conn: &hemostat_protocol::connection::Connection, host: &str) {
    for set in [Set::Tuning, Set::Evaluation] {
        if !set.dir().exists() {
            continue;
        }
        let files = match incident_files::load(set) {
            Ok(files) => files,
            Err(e) => {
                println!("\n{}: not loaded: {e}", set.folder());
                continue;
            }
        };
        let suite: Vec<_> = files.iter().map(|f| f.incident()).collect();
        println!(
            "\n# Written incidents, {} set: {} files (tests/incidents/{})\n",
            set.folder(),
            files.len(),
            set.folder()
        );
        let outcomes = incidents::run_all(docker, conn, host, &suite).await;
        println!("{}\n\n{}", incidents::table(&outcomes), incidents::summary(set.folder(), &outcomes));
    }
}

/// The incident files of one folder through the whole stack: their table
/// and figures. False when a file is malformed or anything is made worse.
async fn one_folder(folder: &std::path::Path) -> bool {
    let files = match incident_files::load_dir(folder) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("{e}");
            return false;
        }
    };
    let docker = docker().await;
    let redis = RedisServer::start().await;
    let stack = start_stack_with(&redis.url(), &incidents::stack_env()).await;
    let conn = redis.connection().await;
    let suite: Vec<_> = files.iter().map(|f| f.incident()).collect();
    println!("# Written incidents: {} files ({})\n", files.len(), folder.display());
    let outcomes = incidents::run_all(&docker, &conn, &stack.host, &suite).await;
    let name = folder.file_name().and_then(|n| n.to_str()).unwrap_or("incidents");
    println!("{}\n\n{}", incidents::table(&outcomes), incidents::summary(name, &outcomes));
    print_latency(&outcomes);
    !outcomes.iter().any(|o| o.made_worse())
}

fn print_latency(outcomes: &[Outcome]) {
    let mut ms: Vec<i64> = outcomes.iter().filter_map(|o| o.detection_to_decision_ms).collect();
    ms.sort_unstable();
    let p = |q| hemostat_e2e::bench::percentile(&ms, q).map(|v| v.to_string()).unwrap_or_else(|| "-".into());
    println!("detection to diagnosis: p50 {} ms, max {} ms over {} decisions", p(0.5), p(1.0), ms.len());
}

async fn llm_path(docker: &bollard::Docker) -> bool {
    println!("\n# LLM path (fake OpenAI-compatible server)\n");
    let redis = RedisServer::start().await;
    let fake = FakeLlm::start().await;
    let env = incidents::stack_env()
        .emulator("OPENAI_API_KEY", "sk-bench-incidents")
        .emulator("OPENAI_BASE_URL", fake.openai_base());
    let stack = start_stack_with(&redis.url(), &env).await;
    let conn = redis.connection().await;
    println!("{}", incidents::TABLE_HEADER);
    let mut ok = true;
    let mut notes = Vec::new();
    for run in incidents::llm_runs() {
        fake.set(Mode::Answer(run.answer));
        let before = fake.requests();
        let incident = incidents::all().into_iter().find(|i| i.name == run.incident).expect("incident");
        let outcomes = incidents::run_all(docker, &conn, &stack.host, std::slice::from_ref(&incident)).await;
        let o = &outcomes[0];
        println!("{}", o.row());
        let seen = fake.seen();
        let in_prompt = seen.len() > before && seen.last().is_some_and(|s| s.body.to_string().contains(run.evidence));
        let d = o.decision.as_ref();
        let method = d.and_then(|d| d.context.analysis_method.clone()).unwrap_or_else(|| "-".into());
        let diagnosis = d.and_then(|d| d.context.diagnosis.clone());
        let verdict_in_events = method == "llm"
            && d.map(|d| d.action) == Some(run.action)
            && diagnosis.as_ref().is_some_and(|g| {
                g.cause == run.cause && g.summary.starts_with("fake model:") && g.evidence == [run.evidence]
            });
        ok &= in_prompt && verdict_in_events;
        notes.push(format!(
            "- {}: evidence {:?} in the prompt: {}; events: analysis_method {method}, cause {}, summary {:?}: {}",
            run.incident,
            run.evidence,
            if in_prompt { "yes" } else { "NO" },
            diagnosis.as_ref().map(|g| g.cause.to_string()).unwrap_or_else(|| "-".into()),
            diagnosis.as_ref().map(|g| g.summary.as_str()).unwrap_or("-"),
            if verdict_in_events { "the model's verdict" } else { "NOT the model's verdict" },
        ));
    }
    println!("\n{}", notes.join("\n"));
    ok
}
