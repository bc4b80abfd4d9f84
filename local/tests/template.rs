//! SAM template parsing and the environment a function is launched with.

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
};

use hemostat_local::{Expression, FunctionSpec, Template, TemplateSettings, launch_environment};

fn real_template() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"))
}

fn function<'a>(template: &'a Template, name: &str) -> &'a FunctionSpec {
    template
        .functions
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no function {name} in {:?}", template.functions))
}

fn env(spec: &FunctionSpec, key: &str) -> Option<String> {
    spec.environment.get(key).cloned().flatten()
}

#[test]
fn real_template_defaults() {
    let template = Template::load(real_template(), &TemplateSettings::default()).expect("parses");
    let names: Vec<&str> = template.functions.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names[..2], ["hemostat-analyzer", "hemostat-responder"], "{names:?}");
    // Every schedule of the real template is one the emulator runs (no skipped cron).
    for spec in &template.functions {
        for event in &spec.schedules {
            assert!(!matches!(event.expression, Expression::Unsupported { .. }), "{}: {event:?}", spec.name);
        }
    }

    let analyzer = function(&template, "hemostat-analyzer");
    assert_eq!(analyzer.logical_id, "AnalyzerFunction");
    assert_eq!(analyzer.binary, "analyzer");
    assert_eq!(analyzer.handler, "bootstrap");
    assert_eq!(analyzer.memory_mb, 128);
    assert_eq!(analyzer.timeout_secs, 55, "function Timeout overrides Globals");
    assert_eq!(analyzer.reserved_concurrency, None);
    // !If UseRedisSecret: no secret by default, so the plain URL parameter.
    assert_eq!(env(analyzer, "REDIS_URL").as_deref(), Some("redis://127.0.0.1:6379"));
    assert_eq!(env(analyzer, "RUST_LOG").as_deref(), Some("info"));
    assert_eq!(env(analyzer, "ANALYZER_CONFIDENCE_THRESHOLD").as_deref(), Some("0.7"));
    assert!(!analyzer.environment.contains_key("RESPONDER_DRY_RUN"));

    let responder = function(&template, "hemostat-responder");
    assert_eq!(responder.binary, "responder");
    assert_eq!(responder.timeout_secs, 10, "Globals Timeout applies");
    assert_eq!(env(responder, "RESPONDER_COOLDOWN_SECONDS").as_deref(), Some("3600"));
    assert_eq!(env(responder, "RESPONDER_MAX_RETRIES_PER_HOUR").as_deref(), Some("3"));
    assert_eq!(env(responder, "RESPONDER_DRY_RUN").as_deref(), Some("false"));
    assert_eq!(env(responder, "HEMOSTAT_COMMAND_SIGNING_KEY").as_deref(), Some(""));
    assert!(responder.environment.contains_key("REDIS_URL"));
}

#[test]
fn real_template_with_parameter_overrides() {
    let settings = TemplateSettings {
        parameter_overrides: BTreeMap::from([
            ("FunctionPrefix".to_owned(), "hs".to_owned()),
            ("RedisUrl".to_owned(), "redis://cache:6379".to_owned()),
            ("ResponderDryRun".to_owned(), "true".to_owned()),
        ]),
        ..TemplateSettings::default()
    };
    let template = Template::load(real_template(), &settings).expect("parses");
    assert!(function(&template, "hs-analyzer").timeout_secs > 0);
    let responder = function(&template, "hs-responder");
    assert_eq!(env(responder, "RESPONDER_DRY_RUN").as_deref(), Some("true"));
    assert_eq!(env(responder, "REDIS_URL").as_deref(), Some("redis://cache:6379"));

    // With a secret, the !If picks the dynamic reference, which only
    // CloudFormation resolves: passed through as written.
    let settings = TemplateSettings {
        parameter_overrides: BTreeMap::from([("RedisUrlSecret".to_owned(), "hemostat/redis".to_owned())]),
        ..TemplateSettings::default()
    };
    let template = Template::load(real_template(), &settings).expect("parses");
    let analyzer = function(&template, "hemostat-analyzer");
    assert_eq!(env(analyzer, "REDIS_URL").as_deref(), Some("{{resolve:secretsmanager:hemostat/redis}}"));
}

const CONDITIONS: &str = r#"
Parameters:
  Secret: { Type: String, Default: "" }
  Subnets: { Type: CommaDelimitedList, Default: "" }
  Stage: { Type: String, Default: prod }
Conditions:
  HasSecret: !Not [!Equals [!Ref Secret, ""]]
  InVpc: { "Fn::Not": [{ "Fn::Equals": [{ "Fn::Join": [",", { Ref: Subnets }] }, ""] }] }
  Prod: !Equals [!Ref Stage, prod]
  ProdWithoutSecret: !And [!Condition Prod, !Not [!Condition HasSecret]]
  Either: !Or [!Condition HasSecret, !Condition InVpc]
  Loop: !Condition Loop
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          URL: !If [HasSecret, !Sub "{{resolve:secretsmanager:${Secret}}}", plain]
          VPC: !If [InVpc, "yes", "no"]
          PROD_NO_SECRET: !If [ProdWithoutSecret, "1", "0"]
          EITHER: { "Fn::If": [Either, "1", "0"] }
          UNSET: !If [Prod, !Ref AWS::NoValue, set]
          LOOP: !If [Loop, a, b]
          UNDEFINED: !If [Nope, a, b]
"#;

#[test]
fn conditions_and_if() {
    let parse = |overrides: &[(&str, &str)]| {
        let settings = TemplateSettings {
            parameter_overrides: overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..TemplateSettings::default()
        };
        Template::parse(CONDITIONS, &settings).expect("parses")
    };
    let defaults = parse(&[]);
    let f = &defaults.functions[0];
    assert_eq!(env(f, "URL").as_deref(), Some("plain"));
    assert_eq!(env(f, "VPC").as_deref(), Some("no"));
    assert_eq!(env(f, "PROD_NO_SECRET").as_deref(), Some("1"));
    assert_eq!(env(f, "EITHER").as_deref(), Some("0"));
    // AWS::NoValue, a condition naming itself and an undefined one: declared,
    // not set, left to the emulator's environment (with a warning).
    for unset in ["UNSET", "LOOP", "UNDEFINED"] {
        assert!(f.environment.contains_key(unset) && env(f, unset).is_none(), "{unset}");
    }

    let overridden = parse(&[("Secret", "s1"), ("Subnets", "subnet-1,subnet-2"), ("Stage", "dev")]);
    let f = &overridden.functions[0];
    assert_eq!(env(f, "URL").as_deref(), Some("{{resolve:secretsmanager:s1}}"));
    assert_eq!(env(f, "VPC").as_deref(), Some("yes"));
    assert_eq!(env(f, "PROD_NO_SECRET").as_deref(), Some("0"));
    assert_eq!(env(f, "EITHER").as_deref(), Some("1"));
    assert_eq!(env(f, "UNSET").as_deref(), Some("set"));
}

const INTRINSICS: &str = r#"
Parameters:
  Stage:
    Type: String
    Default: dev
  Port:
    Type: Number
    Default: 6379
  NoDefault:
    Type: String
Globals:
  Function:
    MemorySize: 512
    Timeout: 7
    ReservedConcurrentExecutions: 2
    Environment:
      Variables:
        GLOBAL_ONLY: !Sub "${Stage}-global"
        OVERRIDDEN: from-globals
Resources:
  Plain:
    Type: AWS::Serverless::Function
    Properties:
      Handler: main
      Environment:
        Variables:
          OVERRIDDEN: from-function
          SHORT_REF: !Ref Stage
          LONG_REF: { Ref: Port }
          LONG_SUB: { "Fn::Sub": "${Stage}:${Port}" }
          PSEUDO: !Sub "${AWS::Region}/${AWS::AccountId}/${AWS::StackName}"
          SUB_VARS: !Sub ["${Name}.${Stage}", { Name: !Ref Port }]
          ESCAPED: !Sub "${!Literal}-${Stage}"
          JOINED: !Join [",", [a, !Ref Stage, 3]]
          NUMBER: 42
          BOOL: true
          GETATT: !GetAtt Plain.Arn
          SUB_GETATT: !Sub "${Plain.Arn}"
          NO_DEFAULT: !Ref NoDefault
  Named:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: custom-bin
    Properties:
      FunctionName: !Sub "${Stage}-named"
      MemorySize: 1024
      ReservedConcurrentExecutions: 9
  NotAFunction:
    Type: AWS::SQS::Queue
"#;

#[test]
fn intrinsics_and_globals() {
    let settings = TemplateSettings {
        region: "eu-west-1".into(),
        account_id: "123456789012".into(),
        stack_name: "stack".into(),
        ..TemplateSettings::default()
    };
    let template = Template::parse(INTRINSICS, &settings).expect("parses");
    assert_eq!(template.functions.len(), 2, "only functions are read");

    let plain = function(&template, "Plain");
    assert_eq!(plain.binary, "plain", "binary falls back to the lowercased logical id");
    assert_eq!(plain.handler, "main");
    assert_eq!(plain.memory_mb, 512);
    assert_eq!(plain.timeout_secs, 7);
    assert_eq!(plain.reserved_concurrency, Some(2));
    let expected: BTreeMap<String, Option<String>> = [
        ("GLOBAL_ONLY", Some("dev-global")),
        ("OVERRIDDEN", Some("from-function")),
        ("SHORT_REF", Some("dev")),
        ("LONG_REF", Some("6379")),
        ("LONG_SUB", Some("dev:6379")),
        ("PSEUDO", Some("eu-west-1/123456789012/stack")),
        ("SUB_VARS", Some("6379.dev")),
        ("ESCAPED", Some("${Literal}-dev")),
        ("JOINED", Some("a,dev,3")),
        ("NUMBER", Some("42")),
        ("BOOL", Some("true")),
        ("GETATT", None),
        ("SUB_GETATT", None),
        ("NO_DEFAULT", None),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.map(str::to_owned)))
    .collect();
    assert_eq!(plain.environment, expected);

    let named = function(&template, "dev-named");
    assert_eq!(named.logical_id, "Named");
    assert_eq!(named.binary, "custom-bin");
    assert_eq!(named.memory_mb, 1024);
    assert_eq!(named.reserved_concurrency, Some(9));
    assert_eq!(env(named, "GLOBAL_ONLY").as_deref(), Some("dev-global"));
    assert_eq!(env(named, "OVERRIDDEN").as_deref(), Some("from-globals"));
}

#[test]
fn bad_templates_are_errors_not_panics() {
    let settings = TemplateSettings::default();
    for (yaml, why) in [
        ("Resources: [", "malformed YAML"),
        ("- a list", "not a mapping"),
        ("Parameters: {}", "no Resources"),
        ("Resources: {Q: {Type: AWS::SQS::Queue}}", "no functions"),
        ("Resources: {F: {Type: AWS::Serverless::Function, Properties: {Timeout: soon}}}", "non-numeric Timeout"),
        ("Resources: {F: {Type: AWS::Serverless::Function, Properties: {Timeout: 0}}}", "zero Timeout"),
        (
            "Resources: {F: {Type: AWS::Serverless::Function, Properties: {FunctionName: !GetAtt X.Y}}}",
            "unresolvable name",
        ),
    ] {
        assert!(Template::parse(yaml, &settings).is_err(), "{why} should be rejected");
    }
    assert!(Template::load(Path::new("/nonexistent/template.yaml"), &settings).is_err());
}

#[test]
fn launch_environment_precedence() {
    let template = Template::parse(INTRINSICS, &TemplateSettings::default()).expect("parses");
    let plain = function(&template, "Plain");
    let host: HashMap<String, String> = [
        ("PATH", "/usr/bin"),
        ("HOME", "/home/dev"),
        ("RUST_LOG", "debug"),
        ("SHORT_REF", "from-host"),
        ("GETATT", "arn:from:host"),
        ("UNRELATED", "secret"),
        // Reserved Lambda variables cannot be overridden from the host either.
        ("AWS_LAMBDA_FUNCTION_NAME", "impostor"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let env = launch_environment(plain, &host, "http://127.0.0.1:1/runtime/Plain/0", "eu-north-1", Path::new("/task"));

    assert_eq!(env["PATH"], "/usr/bin");
    assert_eq!(env["HOME"], "/home/dev");
    assert_eq!(env["RUST_LOG"], "debug", "RUST_LOG passes through when the template has none");
    assert_eq!(env["SHORT_REF"], "from-host", "a host variable the template declares wins");
    assert_eq!(env["GETATT"], "arn:from:host", "the host can supply what the template cannot resolve");
    assert!(!env.contains_key("SUB_GETATT"), "unresolvable and not on the host: skipped");
    assert!(!env.contains_key("UNRELATED"), "undeclared host variables stay out");
    assert_eq!(env["LONG_SUB"], "dev:6379");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "Plain");
    assert_eq!(env["AWS_LAMBDA_RUNTIME_API"], "http://127.0.0.1:1/runtime/Plain/0");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "512");
    assert_eq!(env["AWS_LAMBDA_LOG_GROUP_NAME"], "/aws/lambda/Plain");
    assert!(env["AWS_LAMBDA_LOG_STREAM_NAME"].contains("/[$LATEST]"));
    assert_eq!(env["AWS_REGION"], "eu-north-1");
    assert_eq!(env["AWS_DEFAULT_REGION"], "eu-north-1");
    assert_eq!(env["_HANDLER"], "main");
    assert_eq!(env["LAMBDA_TASK_ROOT"], "/task");
    assert_eq!(env["TZ"], ":UTC");

    // A template-declared RUST_LOG is overridden by the host's like any other variable.
    let real = Template::load(real_template(), &TemplateSettings::default()).expect("parses");
    let analyzer = function(&real, "hemostat-analyzer");
    let env = launch_environment(analyzer, &host, "x", "us-east-1", Path::new("/task"));
    assert_eq!(env["RUST_LOG"], "debug");
    let env = launch_environment(analyzer, &HashMap::new(), "x", "us-east-1", Path::new("/task"));
    assert_eq!(env["RUST_LOG"], "info");
    assert!(!env.contains_key("PATH"));
}

#[test]
fn schedule_events() {
    let yaml = r#"
Parameters:
  Every:
    Type: String
    Default: rate(5 minutes)
  On:
    Type: String
    Default: "false"
Resources:
  Exporter:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        Tick:
          Type: Schedule
          Properties:
            Schedule: !Ref Every
        Nightly:
          Type: Schedule
          Properties:
            Schedule: cron(0 3 * * ? *)
            Name: nightly
            State: DISABLED
            Input: '{"full": true}'
        Parameterised:
          Type: Schedule
          Properties:
            Schedule: rate(1 hour)
            Enabled: !Ref On
        Last:
          Type: Schedule
          Properties:
            Schedule: cron(0 0 L * ? *)
        Queue:
          Type: SQS
          Properties:
            Queue: arn:aws:sqs:us-east-1:000000000000:q
"#;
    let template = Template::parse(yaml, &TemplateSettings::default()).expect("parses");
    let events = &template.functions[0].schedules;
    let summary: Vec<(&str, &str, bool, Option<&str>)> =
        events.iter().map(|e| (e.event_id.as_str(), e.rule_name.as_str(), e.enabled, e.input.as_deref())).collect();
    assert_eq!(
        summary,
        [
            ("Tick", "hemostat-local-ExporterTick", true, None),
            ("Nightly", "nightly", false, Some(r#"{"full": true}"#)),
            ("Parameterised", "hemostat-local-ExporterParameterised", false, None),
            ("Last", "hemostat-local-ExporterLast", true, None),
        ],
        "the SQS event is not a schedule"
    );
    assert_eq!(events[0].expression, Expression::Rate(std::time::Duration::from_secs(300)));
    assert!(matches!(events[1].expression, Expression::Cron(_)));
    assert!(matches!(events[3].expression, Expression::Unsupported { .. }));

    for (bad, complaint) in [
        ("Schedule: !Ref Every", "Schedule: rate(5 minutes"),
        ("Schedule: !Ref Every", "Enabled: maybe\n            Schedule: rate(1 minute)"),
        ("Schedule: !Ref Every", "Input: rate(1 minute)\n            Schedule: rate(1 minute)"),
        ("Schedule: !Ref Every", "Name: x"),
    ] {
        let broken = yaml.replacen(bad, complaint, 1);
        let err = Template::parse(&broken, &TemplateSettings::default())
            .err()
            .unwrap_or_else(|| panic!("accepted {complaint:?}"));
        assert!(err.to_string().contains("Exporter.Events.Tick"), "{err}");
    }
}
