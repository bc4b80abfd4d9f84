//! The SAM template as AWS will see it: `sam validate` (the SAM translator)
//! and `sam validate --lint` (cfn-lint) must both be clean, offline, and every
//! function must be one cargo-lambda can build for Graviton; the alert
//! function is given every setting it reads.
//!
//! `sam` comes from the project's virtualenv (`scripts/python-tools.sh`,
//! which `scripts/test.sh` runs first).

use std::path::PathBuf;
use std::process::{Command, Output};

use hemostat_e2e::{bin_dir, workspace_root};
use serde_yaml_ng::Value;

fn sam() -> PathBuf {
    let venv = std::env::var_os("HEMOSTAT_VENV")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/hemostat-venv"));
    let sam = venv.join("bin/sam");
    assert!(sam.is_file(), "{} missing: run scripts/python-tools.sh (it installs aws-sam-cli)", sam.display());
    sam
}

/// True when this process may create a network namespace (root, util-linux):
/// `sam` then runs with no network at all, which proves the check never
/// depends on AWS being reachable.
fn can_unshare_net() -> bool {
    Command::new("unshare").args(["--net", "true"]).output().is_ok_and(|o| o.status.success())
}

fn run_sam(args: &[&str]) -> Output {
    let sam = sam();
    let mut cmd = if can_unshare_net() {
        let mut c = Command::new("unshare");
        c.arg("--net").arg(&sam);
        c
    } else {
        Command::new(&sam)
    };
    cmd.args(args)
        .arg("--template-file")
        .arg(workspace_root().join("template.yaml"))
        // Validation needs a region name, not an AWS account: cfn-lint checks
        // resource types against this region's specification.
        .args(["--region", "us-east-1"])
        .current_dir(workspace_root())
        .env("SAM_CLI_TELEMETRY", "0")
        // No profile or credentials of the machine may change the outcome.
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    let output = cmd.output().expect("run sam");
    println!(
        "sam {}:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn sam_validate_lint_is_clean() {
    let output = run_sam(&["validate", "--lint"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cfn-lint findings in template.yaml (fix every one):\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("is a valid SAM Template"), "unexpected sam output: {stdout}");
}

#[test]
fn sam_translator_accepts_template() {
    let output = run_sam(&["validate"]);
    assert!(
        output.status.success(),
        "the SAM translator rejects template.yaml:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn template() -> Value {
    let text = std::fs::read_to_string(workspace_root().join("template.yaml")).expect("read template.yaml");
    serde_yaml_ng::from_str(&text).expect("template.yaml is YAML")
}

/// A function property, or the Globals value it inherits.
fn property<'a>(template: &'a Value, function: &'a Value, key: &str) -> Option<&'a Value> {
    function["Properties"].get(key).or_else(|| template["Globals"]["Function"].get(key))
}

fn functions(template: &Value) -> Vec<(String, &Value)> {
    let resources = template["Resources"].as_mapping().expect("Resources is a mapping");
    let functions: Vec<(String, &Value)> = resources
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .map(|(id, r)| (id.as_str().expect("logical id").to_owned(), r))
        .collect();
    assert!(!functions.is_empty(), "no functions in template.yaml");
    functions
}

#[test]
fn every_function_is_declared_for_cargo_lambda_on_graviton() {
    let template = template();
    for (id, function) in functions(&template) {
        assert_eq!(
            function["Metadata"]["BuildMethod"].as_str(),
            Some("rust-cargolambda"),
            "{id}: Metadata.BuildMethod"
        );
        let binary = function["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: Metadata.BuildProperties.Binary names the cargo binary"));
        assert_eq!(
            property(&template, function, "Runtime").and_then(Value::as_str),
            Some("provided.al2023"),
            "{id}: Runtime"
        );
        let arches = property(&template, function, "Architectures")
            .and_then(Value::as_sequence)
            .unwrap_or_else(|| panic!("{id}: Architectures"));
        assert_eq!(arches, &[Value::from("arm64")], "{id}: Architectures");
        for key in ["MemorySize", "Timeout"] {
            assert!(
                property(&template, function, key).is_some_and(|v| v.as_u64().is_some()),
                "{id}: {key} must be a number (explicit or from Globals)"
            );
        }
        // The emulator runs the same binary by the same name; `scripts/test.sh`
        // built every workspace binary.
        let built = bin_dir().join(binary);
        assert!(built.is_file(), "{id}: Binary {binary:?} is not a workspace binary ({} missing)", built.display());
    }
}

#[test]
fn secrets_stay_out_of_stack_parameters_and_logs() {
    let template = template();
    let parameters = template["Parameters"].as_mapping().expect("Parameters");
    for (name, parameter) in parameters {
        let name = name.as_str().unwrap_or_default();
        // A sink's filter (AlertWebhookEvents, AlertWebhookMinSeverity) names
        // the sink, not its secret.
        let filter = name.ends_with("Events") || name.ends_with("MinSeverity");
        let secret =
            !filter && ["Key", "Webhook", "Password", "Token"].iter().any(|s| name.contains(s)) || name == "RedisUrl";
        if secret {
            assert_eq!(parameter["NoEcho"].as_bool(), Some(true), "parameter {name} holds a secret: NoEcho: true");
        }
    }
    let redis_url = &template["Globals"]["Function"]["Environment"]["Variables"]["REDIS_URL"];
    let text = serde_yaml_ng::to_string(redis_url).expect("serialize");
    assert!(
        text.contains("{{resolve:secretsmanager:") && text.contains("UseRedisSecret"),
        "REDIS_URL must come from Secrets Manager when RedisUrlSecret is set: {text}"
    );
    // With RedisUrlSecretPerFunction, each function logs in as its own Redis
    // user: its own key of the secret, and no other's.
    for (name, function) in functions(&template) {
        let role = name.trim_end_matches("Function").to_lowercase();
        let own = &function["Properties"]["Environment"]["Variables"]["REDIS_URL"];
        let text = serde_yaml_ng::to_string(own).expect("serialize");
        assert!(
            text.contains("RedisPerFunction") && text.contains(&format!(":SecretString:{role}}}}}")),
            "{name}'s REDIS_URL must be its own key ({role}) of the secret with RedisUrlSecretPerFunction: {text}"
        );
        // Read at start-up instead (SecretsExtensionLayerArn): the same key,
        // named, and the right to read that secret and no other.
        assert!(
            text.contains("RuntimeSecrets") && text.contains(&format!("aws-secretsmanager:${{RedisUrlSecret}}#{role}")),
            "{name}'s REDIS_URL must name its key ({role}) of the secret when read at start-up: {text}"
        );
        let policies = serde_yaml_ng::to_string(&function["Properties"]["Policies"]).expect("serialize");
        assert!(
            policies.contains("RuntimeSecrets") && policies.contains("ReadRedisSecretPolicy"),
            "{name}: {policies}"
        );
    }
    let resources = &template["Resources"];
    for policy in ["ReadRedisSecretPolicy", "FunctionPermissionsBoundary"] {
        let text = serde_yaml_ng::to_string(&resources[policy]).expect("serialize");
        assert!(
            text.contains("secretsmanager:GetSecretValue")
                && text.contains("RuntimeSecrets")
                && text.contains("${RedisUrlSecret}-??????"),
            "{policy} must allow reading the Redis secret, only when the functions read it: {text}"
        );
        assert!(!text.contains("secretsmanager:*") && !text.contains("secret:*"), "{policy}: {text}");
    }
    let layers = serde_yaml_ng::to_string(&template["Globals"]["Function"]["Layers"]).expect("serialize");
    assert!(layers.contains("RuntimeSecrets") && layers.contains("SecretsExtensionLayerArn"), "{layers}");
}

/// Every function logs to a group of its own that keeps its lines
/// `LogRetentionDays` (the group Lambda makes by itself keeps them forever),
/// and the permissions boundary lets it write there.
#[test]
fn every_function_logs_to_a_group_with_a_retention() {
    let template = template();
    let resources = &template["Resources"];
    for (id, function) in functions(&template) {
        // `LogGroup: !Ref XLogGroup`, a tagged value: its text is "!Ref XLogGroup".
        let reference = serde_yaml_ng::to_string(&function["Properties"]["LoggingConfig"]["LogGroup"]).unwrap();
        let group = reference.trim().trim_start_matches("!Ref").trim().to_owned();
        let resource = &resources[group.as_str()];
        assert_eq!(resource["Type"].as_str(), Some("AWS::Logs::LogGroup"), "{id}: LoggingConfig.LogGroup {group:?}");
        let retention = serde_yaml_ng::to_string(&resource["Properties"]["RetentionInDays"]).unwrap();
        assert!(retention.contains("LogRetentionDays"), "{id}: its group's retention is {retention}");
        let name = serde_yaml_ng::to_string(&resource["Properties"]["LogGroupName"]).unwrap();
        assert!(name.contains("/hemostat/${FunctionPrefix}/"), "{id}: {name} is outside the boundary's log groups");
    }
    let boundary = serde_yaml_ng::to_string(&resources["FunctionPermissionsBoundary"]).unwrap();
    assert!(boundary.contains("log-group:/hemostat/${FunctionPrefix}/*"), "{boundary}");
}

/// The example samconfig.toml sets only parameters the template declares,
/// with values it allows, and no secret (a NoEcho parameter): those come
/// from files at deploy time.
#[test]
fn the_example_samconfig_sets_declared_parameters_and_no_secret() {
    let text = std::fs::read_to_string(workspace_root().join("infra/aws/samconfig.toml")).expect("samconfig.toml");
    let config: toml::Table = text.parse().expect("samconfig.toml is TOML");
    let deploy = &config["default"]["deploy"]["parameters"];
    let overrides: Vec<&str> = deploy["parameter_overrides"]
        .as_array()
        .expect("parameter_overrides as a list")
        .iter()
        .map(|v| v.as_str().expect("Key=Value"))
        .collect();
    assert!(!overrides.is_empty());
    let template = template();
    let parameters = template["Parameters"].as_mapping().expect("Parameters");
    for entry in overrides {
        let (key, value) = entry.split_once('=').unwrap_or_else(|| panic!("{entry:?} is not Key=Value"));
        let parameter = parameters
            .get(Value::String(key.to_owned()))
            .unwrap_or_else(|| panic!("{key} is not a parameter of template.yaml"));
        assert_ne!(parameter["NoEcho"].as_bool(), Some(true), "{key} is a secret: keep it out of samconfig.toml");
        if let Some(allowed) = parameter["AllowedValues"].as_sequence() {
            let allowed: Vec<String> = allowed
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    other => panic!("{key}: AllowedValues holds {other:?}"),
                })
                .collect();
            assert!(allowed.iter().any(|a| a == value), "{key}={value} is not one of {allowed:?}");
        }
    }
    let capabilities = deploy["capabilities"].as_str().unwrap_or_default();
    assert!(capabilities.contains("CAPABILITY_IAM"), "the stack makes IAM policies: {capabilities}");
}

/// The variables a protocol settings table of `--help` lists (lines
/// `  NAME  default  meaning`).
fn help_settings(binary: &str) -> Vec<String> {
    let path = bin_dir().join(binary);
    let out = Command::new(&path).arg("--help").env_clear().output().expect("run --help");
    assert!(out.status.success(), "{} --help: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.strip_prefix("  ").filter(|rest| !rest.starts_with(' ')))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter(|w| w.contains('_') && w.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        .map(str::to_owned)
        .collect()
}

/// The emulator hands a function only the variables the template declares
/// (and Lambda has no others): every setting each function reads is there,
/// so that each can be set in both (the alert sinks' filters included).
/// The shared logging and cluster switches are the exception: their
/// defaults hold, and the emulator's own environment supplies them.
#[test]
fn every_function_is_given_every_setting_it_reads() {
    const DEFAULTED: [&str; 3] = ["HEMOSTAT_LOG_FORMAT", "NO_COLOR", "REDIS_CLUSTER"];
    let template = template();
    let declared = |scope: &Value, name: &str| scope.as_mapping().is_some_and(|m| m.contains_key(name));
    let globals = &template["Globals"]["Function"]["Environment"]["Variables"];
    for (binary, resource) in [
        ("alert", "AlertFunction"),
        ("analyzer", "AnalyzerFunction"),
        ("responder", "ResponderFunction"),
        ("exporter", "ExporterFunction"),
        ("dashboard", "DashboardFunction"),
    ] {
        let own = &template["Resources"][resource]["Properties"]["Environment"]["Variables"];
        let settings = help_settings(binary);
        assert!(settings.len() > 3, "{binary} --help lists its settings: {settings:?}");
        let missing: Vec<&String> = settings
            .iter()
            .filter(|s| !DEFAULTED.contains(&s.as_str()) && !declared(own, s) && !declared(globals, s))
            .collect();
        assert!(missing.is_empty(), "{resource}'s Environment.Variables lack {missing:?}");
    }
}
