//! The incidents written as data (`tests/incidents/`: the tuning set and
//! the evaluation set written apart) through the whole stack. A test binary
//! of its own: cargo runs binaries one after another, so its 70-odd
//! containers do not share the engine and the sampler with the CPU
//! incidents of `tests/tests/incidents.rs`. Run on the test run's Redis
//! (a node, then a cluster in the test command's cluster pass): the
//! analyzer reads each container's history from it, and the issue asks for
//! both suites on both.

use hemostat_e2e::{
    RedisServer, docker,
    incident_files::{self, Set},
    incidents::{self, Incident},
    start_stack_with,
};

/// The incidents written as data, both sets, through the whole stack. What
/// must hold whatever the accuracy: every incident is judged (its exits
/// reach the analyzer, the decision comes back), and a diagnosis cites only
/// lines the container printed. The accuracies are printed; the goals are
/// the benchmark's (`hemostat-bench-incidents`), and the evaluation set is
/// never tuned on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn written_incidents_are_each_judged_and_cite_only_what_was_printed() {
    let redis = RedisServer::start().await;
    let docker = docker().await;
    let stack = start_stack_with(&redis.url(), &incidents::stack_env()).await;
    let conn = redis.connection().await;

    let mut files = Vec::new();
    for set in [Set::Tuning, Set::Evaluation] {
        if set == Set::Tuning && !set.dir().exists() {
            continue;
        }
        files.push((set, incident_files::load(set).unwrap_or_else(|e| panic!("{e}"))));
    }
    let suite: Vec<Incident> = files.iter().flat_map(|(_, fs)| fs.iter().map(|f| f.incident())).collect();
    let outcomes = incidents::run_all(&docker, &conn, &stack.host, &suite).await;
    let mut problems = Vec::new();
    let mut rest = outcomes.as_slice();
    for (set, fs) in &files {
        let (mine, others) = rest.split_at(fs.len());
        rest = others;
        println!("{}\n\n{}\n", incidents::table(mine), incidents::summary(set.folder(), mine));
        for (o, f) in mine.iter().zip(fs) {
            let Some(d) = &o.decision else {
                problems.push(format!("{}: {}", o.label, o.diagnosed()));
                continue;
            };
            let printed: Vec<&str> = f.log.lines().map(|l| l.strip_prefix('!').unwrap_or(l).trim()).collect();
            for cited in d.context.diagnosis.iter().flat_map(|d| &d.evidence) {
                if !printed.iter().any(|line| line.contains(cited.trim())) {
                    problems.push(format!("{}: cites {cited:?}, never printed", o.label));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n\ncollector:\n{}\nemulator:\n{}",
        problems.join("\n"),
        stack.collector.log_tail(40),
        stack.emulator.log_tail(40)
    );
}
