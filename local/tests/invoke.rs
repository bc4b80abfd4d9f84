//! End-to-end behaviour of the emulator with the real `noop-function` binary.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{BEARER, TestEmulator, config, noop_bin_dir};
use futures::future::join_all;
use hemostat_local::{Emulator, Error};

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_round_trip() {
    let emulator = TestEmulator::start().await;
    let payload = r#"{"hello":"world","n":[1,2,3]}"#;
    let reply = emulator.invoke("echo", payload).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), serde_json::json!({"hello": "world", "n": [1, 2, 3]}));
    assert_eq!(reply.header("X-Amz-Executed-Version"), Some("$LATEST"));
    assert!(reply.header("x-amzn-RequestId").is_some_and(|id| id.len() == 36));
    assert_eq!(reply.header("X-Amz-Function-Error"), None);

    // By full ARN, and with no payload at all (Lambda hands the function `{}`).
    let arn = "arn:aws:lambda:us-east-1:000000000000:function:echo";
    let reply = emulator.invoke(arn, "").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), serde_json::json!({}));
    emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_headers_reach_the_function() {
    let emulator = TestEmulator::start().await;
    let before = now_ms();
    let reply = emulator.invoke("echo", r#"{"context":true}"#).await;
    let after = now_ms();
    assert_eq!(reply.status, 200);
    let ctx = reply.json();
    let deadline = ctx["deadline_ms"].as_u64().expect("deadline");
    assert!(
        deadline >= before + 3000 && deadline <= after + 3000,
        "deadline {deadline} not now+3s ({before}..{after})"
    );
    assert_eq!(ctx["invoked_function_arn"], "arn:aws:lambda:us-east-1:000000000000:function:echo");
    assert_eq!(ctx["request_id"].as_str(), reply.header("x-amzn-RequestId"));
    assert_eq!(ctx["function_name"], "echo");
    assert_eq!(ctx["memory"], 256);
    assert_eq!(ctx["version"], "$LATEST");
    assert_eq!(ctx["log_group"], "/aws/lambda/echo");

    let stream = ctx["log_stream"].as_str().expect("log stream");
    let (date, id) = stream.split_once("/[$LATEST]").expect("stream shape");
    assert_eq!(date.len(), 10, "{stream}");
    assert!(id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()), "{stream}");

    let trace = ctx["xray_trace_id"].as_str().expect("trace id");
    let parts: Vec<&str> = trace.split(';').collect();
    assert_eq!(parts.len(), 3, "{trace}");
    let root: Vec<&str> = parts[0].trim_start_matches("Root=").split('-').collect();
    assert_eq!(root[0], "1");
    assert_eq!(root[1].len(), 8);
    assert_eq!(root[2].len(), 24);
    assert!(parts[1].starts_with("Parent=") && parts[1].len() == "Parent=".len() + 16, "{trace}");
    assert_eq!(parts[2], "Sampled=0");
    emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_reaches_the_function() {
    let emulator = TestEmulator::start().await;
    let names = [
        "FROM_GLOBALS",
        "SHARED",
        "HOST_WINS",
        "PREFIXED",
        "NOT_LOCAL",
        "UNDECLARED",
        "AWS_LAMBDA_RUNTIME_API",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_EXECUTION_ENV",
        "_HANDLER",
        "TZ",
        "LAMBDA_TASK_ROOT",
    ];
    let payload = serde_json::json!({ "env": names }).to_string();
    let env = emulator.invoke("echo", &payload).await.json();
    assert_eq!(env["FROM_GLOBALS"], "global");
    assert_eq!(env["SHARED"], "echo", "function variables override Globals");
    assert_eq!(env["HOST_WINS"], "from-host", "the emulator's environment overrides the template");
    assert_eq!(env["PREFIXED"], "test-us-east-1");
    assert_eq!(env["NOT_LOCAL"], serde_json::Value::Null, "unresolvable intrinsics are skipped");
    assert_eq!(env["UNDECLARED"], serde_json::Value::Null, "undeclared host variables stay out");
    let api = env["AWS_LAMBDA_RUNTIME_API"].as_str().unwrap();
    let rest = api.strip_prefix(&format!("http://{}/runtime/", emulator.addr)).unwrap_or_else(|| panic!("{api}"));
    let (secret, rest) = rest.split_once('/').unwrap();
    assert!(secret.len() == 64 && secret.chars().all(|c| c.is_ascii_hexdigit()), "a per-start secret: {api}");
    assert!(rest.starts_with("echo/"), "{api}");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "echo");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_VERSION"], "$LATEST");
    assert_eq!(env["AWS_LAMBDA_INITIALIZATION_TYPE"], "on-demand");
    assert_eq!(env["AWS_REGION"], "us-east-1");
    assert_eq!(env["AWS_DEFAULT_REGION"], "us-east-1");
    assert_eq!(env["AWS_EXECUTION_ENV"], "AWS_Lambda_provided.al2023");
    assert_eq!(env["_HANDLER"], "bootstrap");
    assert_eq!(env["TZ"], ":UTC");
    assert_eq!(env["LAMBDA_TASK_ROOT"], noop_bin_dir().display().to_string());
    emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_error_is_unhandled() {
    let emulator = TestEmulator::start().await;
    let reply = emulator.invoke("echo", r#"{"fail":"boom"}"#).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("X-Amz-Function-Error"), Some("Unhandled"));
    let body = reply.json();
    assert_eq!(body["errorType"], "NoopFailure");
    assert_eq!(body["errorMessage"], "boom");

    // A panic is caught by the runtime and reported the same way; the instance survives.
    let reply = emulator.invoke("echo", r#"{"panic":true}"#).await;
    assert_eq!(reply.header("X-Amz-Function-Error"), Some("Unhandled"));
    assert!(reply.json()["errorMessage"].as_str().unwrap().contains("asked to panic"));
    let reply = emulator.invoke("echo", r#"{"after":"panic"}"#).await;
    assert_eq!(reply.json(), serde_json::json!({"after": "panic"}));
    emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_kills_the_instance_and_the_next_request_gets_a_fresh_one() {
    let emulator = TestEmulator::start().await;
    let first_pid = emulator.invoke("slow", r#"{"pid":true}"#).await.json()["pid"].as_u64().unwrap();

    let started = Instant::now();
    let reply = emulator.invoke("slow", r#"{"sleep_ms":5000}"#).await;
    let took = started.elapsed();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("X-Amz-Function-Error"), Some("Unhandled"));
    let body = reply.json();
    assert_eq!(body["errorType"], "Sandbox.Timedout");
    let message = body["errorMessage"].as_str().unwrap();
    let request_id = reply.header("x-amzn-RequestId").unwrap();
    assert!(message.ends_with(&format!("{request_id} Task timed out after 1.00 seconds")), "{message}");
    assert!(took >= Duration::from_millis(950) && took < Duration::from_millis(3000), "took {took:?}");

    let reply = emulator.invoke("slow", r#"{"pid":true}"#).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("X-Amz-Function-Error"), None);
    let second_pid = reply.json()["pid"].as_u64().unwrap();
    assert_ne!(first_pid, second_pid, "a fresh instance replaces the stuck one");
    assert!(!process_alive(first_pid), "the stuck instance was killed");
    emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_fails_the_request_and_the_next_one_succeeds() {
    let emulator = TestEmulator::start().await;
    let reply = emulator.invoke("echo", r#"{"exit":true}"#).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("X-Amz-Function-Error"), Some("Unhandled"));
    let body = reply.json();
    assert_eq!(body["errorType"], "Runtime.ExitError");
    assert!(body["errorMessage"].as_str().unwrap().contains("exit status 3"), "{body}");

    let reply = emulator.invoke("echo", r#"{"again":1}"#).await;
    assert_eq!(reply.json(), serde_json::json!({"again": 1}));
    emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_that_dies_during_init_fails_invocations_without_hanging() {
    let emulator = TestEmulator::start().await;
    for _ in 0..2 {
        let reply =
            tokio::time::timeout(Duration::from_secs(5), emulator.invoke("broken", "{}")).await.expect("no hang");
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("X-Amz-Function-Error"), Some("Unhandled"));
        assert_eq!(reply.json()["errorType"], "Runtime.ExitError");
    }
    // The other functions are unaffected.
    assert_eq!(emulator.invoke("echo", "[1]").await.json(), serde_json::json!([1]));
    emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_function_is_404() {
    let emulator = TestEmulator::start().await;
    let reply = emulator.invoke("nope", "{}").await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.header("x-amzn-ErrorType"), Some("ResourceNotFoundException"));
    assert_eq!(
        reply.json(),
        // AWS's `Type`/`message`, repeated as `errorType`/`errorMessage` for cargo lambda.
        serde_json::json!({
            "Type": "User",
            "message": "Function not found: arn:aws:lambda:us-east-1:000000000000:function:nope",
            "errorType": "ResourceNotFoundException",
            "errorMessage": "Function not found: arn:aws:lambda:us-east-1:000000000000:function:nope"
        })
    );
    emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_malformed_payloads_are_rejected() {
    let emulator = TestEmulator::start().await;
    let big = format!("\"{}\"", "x".repeat(6 * 1024 * 1024));
    let reply = emulator.invoke("echo", &big).await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.header("x-amzn-ErrorType"), Some("RequestEntityTooLargeException"));
    assert_eq!(reply.json()["Type"], "User");
    assert!(reply.json()["message"].as_str().unwrap().contains("6291456"));

    // Exactly at the limit is fine.
    let max = format!("\"{}\"", "x".repeat(6 * 1024 * 1024 - 2));
    let reply = emulator.invoke("echo", &max).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.len(), 6 * 1024 * 1024);

    let reply = emulator.invoke("echo", "{not json").await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.header("x-amzn-ErrorType"), Some("InvalidRequestContentException"));

    let reply = emulator.invoke_as("echo", "{}", Some("Sometimes")).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.header("x-amzn-ErrorType"), Some("InvalidParameterValueException"));
    emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_invocation_returns_202_and_runs() {
    let emulator = TestEmulator::start().await;
    let marker = common::temp_dir().join("event-ran.json");
    let payload = serde_json::json!({ "sleep_ms": 300, "write_file": marker }).to_string();
    let started = Instant::now();
    let reply = emulator.invoke_as("echo", &payload, Some("Event")).await;
    assert_eq!(reply.status, 202);
    assert!(started.elapsed() < Duration::from_millis(250), "Event must not wait for the function");
    assert!(reply.header("x-amzn-RequestId").is_some());
    assert!(!marker.exists());

    let deadline = Instant::now() + Duration::from_secs(5);
    while !marker.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(marker.exists(), "the Event invocation ran");

    let reply = emulator.invoke_as("echo", "{}", Some("DryRun")).await;
    assert_eq!(reply.status, 204);
    emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_scale_out_up_to_the_limit() {
    let emulator = TestEmulator::start().await;
    let started = Instant::now();
    let replies = join_all((0..4).map(|i| {
        let payload = format!(r#"{{"sleep_ms":500,"i":{i}}}"#);
        let emulator = &emulator;
        async move { emulator.invoke("echo", &payload).await }
    }))
    .await;
    let took = started.elapsed();
    for (i, reply) in replies.iter().enumerate() {
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json()["i"], i);
    }
    assert!(took < Duration::from_millis(1500), "4 x 500 ms with 4 instances took {took:?}");
    emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrency_one_serialises() {
    let emulator = TestEmulator::with_config(config(common::TEMPLATE, 1)).await;
    let started = Instant::now();
    let replies = join_all((0..2).map(|_| emulator.invoke("echo", r#"{"sleep_ms":300,"pid":true}"#))).await;
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(600), "2 x 300 ms with 1 instance took {took:?}");
    let pids: Vec<_> = replies.iter().map(|r| r.json()["pid"].as_u64().unwrap()).collect();
    assert_eq!(pids[0], pids[1], "the warm instance is reused");
    emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_api_rejects_unknown_request_ids_and_instances() {
    let emulator = TestEmulator::start().await;
    let prefix = emulator.runtime_prefix().await;
    let base = format!("{prefix}/echo/0/2018-06-01/runtime/invocation");
    let reply = emulator.request("POST", &format!("{base}/not-a-request/response"), &[], "{}").await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["errorType"], "InvalidRequestID");
    let reply = emulator.request("POST", &format!("{base}/not-a-request/error"), &[], "{}").await;
    assert_eq!(reply.status, 400);

    let next = "2018-06-01/runtime/invocation/next";
    let reply = emulator.request("GET", &format!("{prefix}/echo/not-a-number/{next}"), &[], "").await;
    assert_eq!(reply.status, 404);
    assert!(reply.json()["errorMessage"].is_string());
    let reply = emulator.request("GET", &format!("{prefix}/nope/0/{next}"), &[], "").await;
    assert_eq!(reply.status, 404);
    emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_error_retires_the_instance_and_a_new_one_serves() {
    let emulator = TestEmulator::start().await;
    let prefix = emulator.runtime_prefix().await;
    let reply = emulator
        .request(
            "POST",
            &format!("{prefix}/echo/0/2018-06-01/runtime/init/error"),
            &[("Lambda-Runtime-Function-Error-Type", "Runtime.InitError")],
            r#"{"errorType":"Runtime.InitError","errorMessage":"cannot connect"}"#,
        )
        .await;
    assert_eq!(reply.status, 202);
    let reply = emulator.invoke("echo", r#"{"after":"init error"}"#).await;
    assert_eq!(reply.json(), serde_json::json!({"after": "init error"}));
    emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_kills_every_instance() {
    let emulator = TestEmulator::start().await;
    let replies = join_all((0..3).map(|_| emulator.invoke("echo", r#"{"sleep_ms":200,"pid":true}"#))).await;
    let pids: Vec<u64> = replies.iter().map(|r| r.json()["pid"].as_u64().unwrap()).collect();
    assert!(pids.iter().all(|p| process_alive(*p)));
    let started = Instant::now();
    emulator.stop().await;
    // Well under the 3 s drain timeout: nothing is left waiting on a dead instance.
    assert!(started.elapsed() < Duration::from_secs(2), "shutdown took {:?}", started.elapsed());
    for pid in pids {
        assert!(!process_alive(pid), "instance {pid} outlived the emulator");
    }
}

#[tokio::test]
async fn missing_binary_is_a_clear_startup_error() {
    let mut config = config(common::TEMPLATE, 4);
    config.bin_dir = common::temp_dir();
    config.functions = vec!["echo".into()];
    let err = Emulator::start(config).await.err().expect("start fails");
    assert!(matches!(err, Error::MissingBinary { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("noop-function") && message.contains("cargo build"), "{message}");
}

#[tokio::test]
async fn unknown_function_filter_is_a_startup_error() {
    let mut config = config(common::TEMPLATE, 4);
    config.functions = vec!["echo".into(), "missing".into()];
    let err = Emulator::start(config).await.err().expect("start fails");
    assert!(err.to_string().contains("missing"), "{err}");
}

fn process_alive(pid: u64) -> bool {
    // Reaped children vanish from /proc; zombies would still count as alive here.
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_context_reaches_the_function_decoded() {
    use base64::{Engine, engine::general_purpose::STANDARD};
    let emulator = TestEmulator::start().await;
    let path = "/2015-03-31/functions/echo/invocations";
    let context = r#"{"custom":{"trace":"abc"},"environment":{"k":"v"}}"#;
    let encoded = STANDARD.encode(context);
    let reply =
        emulator.request("POST", path, &[BEARER, ("X-Amz-Client-Context", &encoded)], r#"{"context":true}"#).await;
    assert_eq!(reply.status, 200);
    let ctx = reply.json();
    assert_eq!(ctx["client_context"]["custom"]["trace"], "abc");
    assert_eq!(ctx["client_context"]["environment"]["k"], "v");

    // The runtime's own header names, as `cargo lambda invoke` sends them locally.
    let identity = r#"{"identityId":"id-1","identityPoolId":"pool-1"}"#;
    let reply = emulator
        .request("POST", path, &[BEARER, ("Lambda-Runtime-Cognito-Identity", identity)], r#"{"context":true}"#)
        .await;
    assert_eq!(reply.json()["identity"]["identityId"], "id-1");
    assert_eq!(reply.json()["identity"]["identityPoolId"], "pool-1");

    for bad in ["not base64!", &STANDARD.encode("not json")] {
        let reply =
            emulator.request("POST", path, &[BEARER, ("X-Amz-Client-Context", bad)], r#"{"context":true}"#).await;
        assert_eq!(reply.status, 400, "{bad}");
        assert_eq!(reply.header("x-amzn-ErrorType"), Some("InvalidRequestContentException"));
    }
    emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percent_encoded_arns_and_wrong_methods() {
    let emulator = TestEmulator::start().await;
    // SDKs percent-encode an ARN's colons in the path.
    let path = "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Aecho/invocations";
    let reply = emulator.request("POST", path, &[BEARER], r#"{"n":1}"#).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), serde_json::json!({"n": 1}));

    let reply = emulator.request("GET", "/2015-03-31/functions/echo/invocations", &[], "").await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), Some("POST"));
    let prefix = emulator.runtime_prefix().await;
    let reply = emulator.request("POST", &format!("{prefix}/echo/0/2018-06-01/runtime/invocation/next"), &[], "").await;
    assert_eq!(reply.status, 404);
    let reply = emulator.request("GET", "/nothing/here", &[], "").await;
    assert_eq!(reply.status, 404);
    emulator.stop().await;
}
