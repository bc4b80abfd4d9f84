//! The emulator checked with a real client: `cargo lambda invoke --remote`,
//! which calls Lambda through the AWS SDK, SigV4-signed, pointed at the
//! emulator with `--endpoint-url` and given its token as the secret key.
//! (Its local mode sends no credentials at all, so the emulator refuses it.)
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

use common::{TOKEN, TestEmulator, temp_dir};

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

/// `cargo lambda invoke --remote FUNCTION ARGS..` against `emulator`, as
/// against AWS Lambda: through the AWS SDK, SigV4-signed, with the
/// emulator's token as the secret access key (`secret`).
async fn invoke_signed(emulator: &TestEmulator, secret: &str, function: &str, args: &[&str]) -> Output {
    let endpoint = format!("http://{}", emulator.addr);
    // The binary is a cargo subcommand: its first argument is the subcommand name.
    tokio::process::Command::new(cargo_lambda())
        .args(["lambda", "invoke", function, "--remote", "--endpoint-url", &endpoint, "--region", "us-east-1"])
        .args(["--color", "never"])
        .args(args)
        .env("CARGO_LAMBDA_COLOR", "never")
        .env("AWS_ACCESS_KEY_ID", "hemostat-local")
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        // No profile or credentials of the machine may change the outcome.
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .await
        .expect("cargo-lambda runs")
}

async fn invoke(emulator: &TestEmulator, function: &str, args: &[&str]) -> Output {
    invoke_signed(emulator, TOKEN, function, args).await
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

    emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cargo_lambda_sees_function_errors_and_missing_functions() {
    let emulator = TestEmulator::start().await;

    // Lambda answers a function error with 200 and X-Amz-Function-Error; the
    // client fails with the error document's type and message.
    let output = invoke(&emulator, "echo", &["--data-ascii", r#"{"fail":"boom"}"#]).await;
    assert!(!output.status.success(), "a function error must fail the command");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("NoopFailure") && stderr.contains("boom"), "{stderr}");

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cargo_lambda_without_the_token_is_refused() {
    let emulator = TestEmulator::start().await;
    let output = invoke_signed(&emulator, "not-the-token", "echo", &["--data-ascii", "{}"]).await;
    assert!(!output.status.success(), "signed with another secret");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("UnrecognizedClient") || stderr.contains("signature does not match"), "{stderr}");

    // Its local mode: no credentials at all.
    let port = emulator.addr.port().to_string();
    let output = tokio::process::Command::new(cargo_lambda())
        .args(["lambda", "invoke", "echo", "--invoke-address", "127.0.0.1", "--invoke-port", &port])
        .args(["--color", "never", "--data-ascii", "{}"])
        .env("CARGO_LAMBDA_COLOR", "never")
        .output()
        .await
        .expect("cargo-lambda runs");
    assert!(!output.status.success(), "unsigned");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("MissingAuthenticationToken") || stderr.contains("missing credentials"), "{stderr}");
    emulator.stop().await;
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}
