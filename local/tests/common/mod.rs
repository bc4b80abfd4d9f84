//! Starts an in-process emulator on a free port and talks to it over plain HTTP.

#![allow(dead_code)]

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use bytes::Bytes;
use hemostat_local::{Config, Emulator, Token};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tokio::{sync::oneshot, task::JoinHandle};

/// Two functions on the noop binary: `echo` (3 s timeout) and `slow` (1 s timeout),
/// plus `broken`, whose "binary" exits immediately.
pub const TEMPLATE: &str = r#"
Parameters:
  Prefix:
    Type: String
    Default: test
Globals:
  Function:
    Timeout: 3
    MemorySize: 256
    Environment:
      Variables:
        FROM_GLOBALS: global
        SHARED: global
Resources:
  EchoFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: noop-function
    Properties:
      FunctionName: echo
      Environment:
        Variables:
          SHARED: echo
          HOST_WINS: template
          PREFIXED: !Sub "${Prefix}-${AWS::Region}"
          NOT_LOCAL: !GetAtt Something.Arn
  SlowFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: noop-function
    Properties:
      FunctionName: slow
      Timeout: 1
  BrokenFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: /bin/false
    Properties:
      FunctionName: broken
"#;

/// The emulator's token in these tests (`HEMOSTAT_LAMBDA_TOKEN`).
pub const TOKEN: &str = "local-test-token";

/// What a caller with the token sends.
pub const BEARER: (&str, &str) = ("Authorization", "Bearer local-test-token");

pub fn noop_bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_noop-function")).parent().expect("binary has a parent directory").to_owned()
}

pub fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "hemostat-local-test-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

pub fn config(template: &str, max_concurrency: usize) -> Config {
    let dir = temp_dir();
    let path = dir.join("template.yaml");
    std::fs::write(&path, template).expect("write template");
    let mut config = Config::new(path, noop_bin_dir());
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.max_concurrency = max_concurrency;
    config.region = "us-east-1".into();
    config.token = Token::new(TOKEN);
    config.host_env = HashMap::from([
        ("PATH".to_owned(), std::env::var("PATH").unwrap_or_default()),
        ("HOST_WINS".to_owned(), "from-host".to_owned()),
        ("UNDECLARED".to_owned(), "should-not-pass".to_owned()),
    ]);
    config
}

pub struct TestEmulator {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<hemostat_local::Result<()>>>,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl TestEmulator {
    pub async fn start() -> TestEmulator {
        TestEmulator::with_config(config(TEMPLATE, 4)).await
    }

    pub async fn with_config(config: Config) -> TestEmulator {
        let emulator = Emulator::start(config).await.expect("emulator starts");
        let addr = emulator.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(emulator.serve(async move {
            let _ = stopped.await;
        }));
        TestEmulator {
            addr,
            stop: Some(stop),
            task: Some(task),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub async fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Reply {
        let mut builder = http::Request::builder().method(method).uri(format!("http://{}{path}", self.addr));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(Full::new(body.into())).expect("valid request");
        let response = self.client.request(request).await.expect("request succeeds");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.expect("body").to_bytes();
        Reply { status, headers, body }
    }

    pub async fn invoke(&self, function: &str, payload: &str) -> Reply {
        self.invoke_as(function, payload, None).await
    }

    /// An Invoke API request with the token.
    pub async fn invoke_as(&self, function: &str, payload: &str, invocation_type: Option<&str>) -> Reply {
        let path = format!("/2015-03-31/functions/{function}/invocations");
        let mut headers = vec![BEARER];
        headers.extend(invocation_type.map(|t| ("X-Amz-Invocation-Type", t)));
        self.request("POST", &path, &headers, payload.to_owned()).await
    }

    /// `/runtime/<secret>`, the Runtime API's prefix as the function
    /// processes are given it (asked of `echo`, which reports its environment).
    pub async fn runtime_prefix(&self) -> String {
        let env = self.invoke("echo", r#"{"env":["AWS_LAMBDA_RUNTIME_API"]}"#).await.json();
        let api = env["AWS_LAMBDA_RUNTIME_API"].as_str().expect("the function has AWS_LAMBDA_RUNTIME_API").to_owned();
        let path = api.strip_prefix(&format!("http://{}", self.addr)).expect("the API is on the emulator's address");
        path.rsplitn(3, '/').nth(2).expect("/runtime/<secret>/{function}/{instance}").to_owned()
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("serve task").expect("clean shutdown");
        }
    }
}
