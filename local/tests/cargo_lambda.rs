//! The emulator checked with a real client: `cargo lambda invoke`.
//!
//! The cargo-lambda binary comes from the project's virtualenv
//! (`scripts/python-tools.sh`, `$HEMOSTAT_VENV`, default /tmp/hemostat-venv) or
//! from PATH. Without it these tests fail rather than skip: a skipped client
//! check looks exactly like a passing one.

mod common;

use std::{
    path::{Path, PathBuf},
    process::Output,
};

use common::{TestEmulator, temp_dir};

fn cargo_lambda() -> PathBuf {
    let venv =
        std::env::var_os("HEMOSTAT_VENV").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/tmp/hemostat-venv"));
    let in_venv = venv.join("bin").join("cargo-lambda");
    if in_venv.is_file() {
        return in_venv;
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path).map(|dir| dir.join("cargo-lambda")).find(|candidate| candidate.is_file())
    });
    on_path.unwrap_or_else(|| {
        panic!(
            "cargo-lambda not found in {} nor on PATH: run scripts/python-tools.sh \
             (or set HEMOSTAT_VENV to the virtualenv that has it)",
            in_venv.display()
        )
    })
}

/// `cargo lambda invoke FUNCTION ARGS..` against `emulator`.
async fn invoke(emulator: &TestEmulator, function: &str, args: &[&str]) -> Output {
    let port = emulator.addr.port().to_string();
    // The binary is a cargo subcommand: its first argument is the subcommand name.
    tokio::process::Command::new(cargo_lambda())
        .args(["lambda", "invoke", function])
        .args(["--invoke-address", "127.0.0.1", "--invoke-port", &port])
        .args(["--color", "never"])
        .args(args)
        .env("CARGO_LAMBDA_COLOR", "never")
        .output()
        .await
        .expect("cargo-lambda runs")
}

fn stdout_json(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "cargo lambda invoke failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", String::from_utf8_lossy(&output.stdout)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cargo_lambda_invoke_data_ascii_and_data_file() {
    let emulator = TestEmulator::start().await;

    let payload = r#"{"from":"cargo-lambda","n":[1,2,3],"nested":{"ok":true}}"#;
    let output = invoke(&emulator, "echo", &["--data-ascii", payload]).await;
    assert_eq!(
        stdout_json(&output),
        serde_json::json!({"from": "cargo-lambda", "n": [1, 2, 3], "nested": {"ok": true}})
    );

    let output = invoke(&emulator, "echo", &["--data-ascii", r#"{"x":1}"#, "--output-format", "json"]).await;
    assert_eq!(stdout_json(&output), serde_json::json!({"x": 1}));

    let file = temp_dir().join("payload.json");
    std::fs::write(&file, r#"{"context": true}"#).expect("write payload");
    let output = invoke(&emulator, "echo", &["--data-file", path_str(&file)]).await;
    let context = stdout_json(&output);
    assert_eq!(context["function_name"], "echo");
    assert_eq!(context["invoked_function_arn"], "arn:aws:lambda:us-east-1:000000000000:function:echo");
    assert!(context["client_context"].is_null(), "no client context was sent");

    // The client context goes base64 in X-Amz-Client-Context and reaches the
    // function's Context decoded.
    let client_context = r#"{"client":{"installationId":"inst-1","appTitle":"hemostat","appVersionName":"1.0","appVersionCode":"7","appPackageName":"dev.hemostat"},"custom":{"origin":"cargo-lambda"},"environment":{"stage":"test"}}"#;
    let output =
        invoke(&emulator, "echo", &["--data-ascii", r#"{"context": true}"#, "--client-context-ascii", client_context])
            .await;
    let context = stdout_json(&output);
    assert_eq!(context["client_context"]["custom"]["origin"], "cargo-lambda");
    assert_eq!(context["client_context"]["environment"]["stage"], "test");
    assert_eq!(context["client_context"]["client"]["appTitle"], "hemostat");

    let output = invoke(
        &emulator,
        "echo",
        &["--data-ascii", r#"{"context": true}"#, "--identity-id", "id-1", "--identity-pool-id", "pool-1"],
    )
    .await;
    let context = stdout_json(&output);
    assert_eq!(context["identity"]["identityId"], "id-1");
    assert_eq!(context["identity"]["identityPoolId"], "pool-1");
    emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cargo_lambda_sees_function_errors_and_missing_functions() {
    let emulator = TestEmulator::start().await;

    // Lambda answers a function error with 200 and X-Amz-Function-Error; the
    // client prints the error document.
    let output = invoke(&emulator, "echo", &["--data-ascii", r#"{"fail":"boom"}"#]).await;
    let error = stdout_json(&output);
    assert_eq!(error["errorType"], "NoopFailure");
    assert_eq!(error["errorMessage"], "boom");

    let output = invoke(&emulator, "no-such-function", &["--data-ascii", "{}"]).await;
    assert!(!output.status.success(), "an unknown function must fail the command");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        // (miette wraps long lines, so the ARN itself may be split)
        stderr.contains("ResourceNotFoundException") && stderr.contains("Function not found"),
        "cargo lambda should print the emulator's reason: {stderr}"
    );
    emulator.stop().await;
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}
