//! The redactor's tests: the rules file loads, and for each shape of
//! secret, examples hidden and near misses left alone. Every token here is
//! made up (see [`fake`]).

use std::sync::LazyLock;

use super::{
    lines::{ANNOUNCE, KEY_BEGIN, KEY_END, PUBLIC_BEGIN},
    rules::{RULES, RULES_TOML, load},
    *,
};

fn redact(text: &str) -> (String, u32) {
    Redactor::default().redact(text)
}

/// `text` redacted, asserting none of `secrets` survives and `count`
/// replacements were made.
fn hides(text: &str, secrets: &[&str], count: u32) -> String {
    let (out, n) = redact(text);
    for s in secrets {
        assert!(!out.contains(s), "{s:?} survived in {out:?} (from {text:?})");
    }
    assert_eq!(n, count, "count for {text:?} -> {out:?}");
    out
}

fn untouched(text: &str) {
    assert_eq!(redact(text), (text.to_owned(), 0), "must not be redacted");
}

#[test]
fn builtin_patterns_compile() {
    assert!(RULES.len() > 50);
    LazyLock::force(&KEY_BEGIN);
    LazyLock::force(&KEY_END);
    LazyLock::force(&PUBLIC_BEGIN);
    LazyLock::force(&ANNOUNCE);
    LazyLock::force(&ANSI);
}

#[test]
fn authorization_headers_and_bearer_tokens() {
    assert_eq!(
        hides("GET / Authorization: Bearer abc123.def456-ghi", &["abc123"], 1),
        "GET / Authorization: Bearer [REDACTED]"
    );
    hides("authorization=Basic dXNlcjpwYXNzd29yZA==", &["dXNlcjpw"], 1);
    assert_eq!(
        hides(r#"{"headers": {"Authorization": "Bearer eyJhbGciOi.eyJzdWIiOiIx.sig"}, "x": 1}"#, &["eyJ"], 1),
        r#"{"headers": {"Authorization": "Bearer [REDACTED]"}, "x": 1}"#
    );
    hides("Proxy-Authorization: Digest username=\"bob\", nonce=\"abc\"", &["bob", "nonce"], 1);
    hides("calling api with bearer 9f8e7d6c5b4a3f2e1d0c", &["9f8e7d6c5b4a3f2e1d0c"], 1);
    hides("Cookie: session=4f3a9b2c; theme=dark", &["4f3a9b2c"], 1);
    hides("set-cookie: sid=s%3Aabcdef123456; Path=/; HttpOnly", &["abcdef123456"], 1);
}

#[test]
fn key_formats() {
    hides("using key AKIAIOSFODNN7EXAMPLE for s3", &["AKIAIOSFODNN7EXAMPLE"], 1);
    hides("temp creds ASIAXXXXXXXXXXXXXXXX", &["ASIAXXXXXXXXXXXXXXXX"], 1);
    hides(
        "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        &["wJalrXUtnFEMI", "bPxRfiCYEXAMPLEKEY"],
        1,
    );
    hides(r#"{"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}"#, &["wJalrXUtnFEMI"], 1);
    hides("openai key sk-proj-AbCdEf0123456789AbCdEf0123", &["AbCdEf0123456789"], 1);
    hides("ANTHROPIC sk-ant-api03-AbCdEf0123456789_xyz-AbCdEf", &["api03-AbCdEf", "xyz"], 1);
    hides("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", &["4eC39HqLyjWDarjtT1zdp7dc"], 1);
    hides("push with ghp_abcdefghijklmnopqrstuvwxyz0123456789AB", &["ghp_abc"], 1);
    hides("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", &["11ABCDEFG"], 1);
    hides("glpat-abcdefghij0123456789", &["abcdefghij0123456789"], 1);
    hides("slack xoxb-123456789012-1234567890123-AbCdEfGhIjKl", &["xoxb-1234", "AbCdEfGhIjKl"], 1);
    hides("xoxp-1234567890-abc", &["xoxp-1234567890"], 1);
    hides("posting to https://hooks.slack.com/services/T000/B000/XXXXXXXX", &["T000/B000/XXXXXXXX"], 1);
    hides("maps AIzaSyA-1234567890abcdefghijklmnopqrstu", &["AIzaSyA"], 1);
    hides(
        "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U ok",
        &["eyJhbGci", "dozjgN"],
        1,
    );
}

#[test]
fn private_key_blocks() {
    let pem = "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\nabcdef\n-----END RSA PRIVATE KEY-----\ndone";
    assert_eq!(hides(pem, &["MIIEp", "abcdef"], 1), "key:\n[REDACTED]\ndone");
    // Cut off before its end: redacted to the end of the text.
    hides("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA", &["b3BlbnNz"], 1);
    hides("-----BEGIN PGP PRIVATE KEY BLOCK-----\nlQOYBF\n-----END PGP PRIVATE KEY BLOCK-----", &["lQOYBF"], 1);
    // A public key or certificate is not a secret.
    untouched("-----BEGIN PUBLIC KEY-----");
    untouched("-----BEGIN CERTIFICATE-----");
}

#[test]
fn private_key_blocks_across_log_lines() {
    let r = Redactor::default();
    let mut lines = r.lines();
    let out: Vec<(String, u32)> = [
        "loading key",
        "-----BEGIN EC PRIVATE KEY-----",
        "MHcCAQEEIBkg",
        "AwEHoUQDQgAE",
        "-----END EC PRIVATE KEY----- loaded password=x1",
        "next",
    ]
    .iter()
    .map(|l| lines.redact(l))
    .collect();
    let text: Vec<&str> = out.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(
        text,
        ["loading key", "[REDACTED]", "[REDACTED]", "[REDACTED]", "[REDACTED] loaded password=[REDACTED]", "next"]
    );
    assert_eq!(out.iter().map(|(_, n)| n).sum::<u32>(), 2);
}

#[test]
fn key_bodies_whose_start_the_tail_cut_off() {
    let r = Redactor::default();
    let mut lines = r.lines();
    let body = "MIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB";
    assert_eq!(lines.redact(body), (MARK.to_owned(), 1));
    assert_eq!(lines.redact("-----END RSA PRIVATE KEY-----").1, 0);
    // Ordinary lines of letters, or short ones, stay.
    assert_eq!(lines.redact("abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz").1, 0);
    assert_eq!(lines.redact("deadbeef").1, 0);
}

#[test]
fn passwords_in_urls() {
    assert_eq!(
        hides("connecting to postgres://app:s3cr3t@db:5432/shop", &["s3cr3t"], 1),
        "connecting to postgres://app:***@db:5432/shop"
    );
    assert_eq!(hides("redis://:hunter2@cache:6379/0", &["hunter2"], 1), "redis://:***@cache:6379/0");
    // A password holding '@' is hidden up to the host.
    assert_eq!(hides("amqp://u:p@ss@mq/", &["p@ss", "ss@"], 1), "amqp://u:***@mq/");
    hides("DATABASE_URL=mysql://root:pw1@h/db and https://x:y@z", &["pw1", "x:y"], 2);
    untouched("listening on http://0.0.0.0:8080/health");
    untouched("GET http://api:8080/users/a@b.c");
    untouched("ssh://git@github.com:22/org/repo");
}

#[test]
fn assignments() {
    assert_eq!(
        hides("login failed: password=hunter2 user=bob", &["hunter2"], 1),
        "login failed: password=[REDACTED] user=bob"
    );
    hides("DB_PASSWORD=hunter2", &["hunter2"], 1);
    hides("Password: hunter2", &["hunter2"], 1);
    hides("passwd=abc secret=def token=ghi api_key=jkl apikey=mno", &["abc", "def", "ghi", "jkl", "mno"], 5);
    hides("X-API-Key: 0123abcd", &["0123abcd"], 1);
    hides("client_secret=zzz9&grant_type=client_credentials", &["zzz9"], 1);
    hides("GET /cb?access_token=abc.def&state=1", &["abc.def"], 1);
    hides("Server=db;User Id=sa;Password=P4ss;Database=x", &["P4ss"], 1);
    hides("PASSPHRASE='correct horse battery'", &["correct", "horse"], 1);
    assert_eq!(
        hides(r#"{"user": "bob", "password": "correct horse battery", "n": 1}"#, &["correct", "horse"], 1),
        r#"{"user": "bob", "password": "[REDACTED]", "n": 1}"#
    );
    hides(r#"{"Token":"a\"b c"}"#, &["a\\\"b", "b c"], 1);
    hides("config: {secret: s3, private_key: pk}", &["s3", "pk"], 2);
    hides("mysqld --user=root --password hunter2 --port 3306", &["hunter2"], 1);
    hides("auth with --password=hunter2", &["hunter2"], 1);
    // Already hidden by the application: neither changed nor counted.
    untouched("password=****");
    untouched(r#"password: """#);
}

#[test]
fn near_misses_are_left_alone() {
    for line in [
        "password reset succeeded for user 42",
        "tokenizer loaded (vocab 50257)",
        "max_tokens: 256",
        "token_count=17",
        "passwords do not match",
        "secretary: Jane",
        "secrets mounted: 3",
        "missing Authorization header",
        "authorization failed: invalid credentials",
        "authorization: denied",
        "Bearer authentication required",
        "task-0123456789abcdefghij0123 finished",
        "sk-learn is installed",
        "eyJ is how base64 JSON starts",
        "api.example.com v1.2.3 ok",
        "listening on 0.0.0.0:443",
        "user=bob email=bob@example.com",
        "AKIA is a prefix",
        "the token bucket refilled",
    ] {
        untouched(line);
    }
}

#[test]
fn operator_patterns() {
    let r = Redactor::new(&["acct-[0-9]{6}".into(), r"card=(?P<s>\d{4})".into()]).unwrap();
    assert_eq!(r.redact("user acct-123456 card=4242"), ("user [REDACTED] card=[REDACTED]".into(), 2));
    let err = Redactor::new(&["ok".into(), "(unclosed-hunter2".into()]).unwrap_err().to_string();
    assert!(err.contains("#2"), "{err}");
    assert!(!err.contains("hunter2"), "the pattern is not echoed: {err}");
}

#[test]
fn escapes_and_control_characters_are_removed_first() {
    assert_eq!(hides("\x1b[31mERROR\x1b[0m pass\x1b[1mword=hunter2\r", &["hunter2"], 1), "ERROR password=[REDACTED]");
    assert_eq!(clean("a\x07b\x00c\td\ne\u{9b}f\x1b]0;title\x07g"), "abc\td\nefg");
}

#[test]
fn hostile_input_does_not_break_it() {
    // Long lines, invalid UTF-8 (already lossily decoded), binary.
    let long = format!("{}password=hunter2{}", "a".repeat(100_000), "b".repeat(100_000));
    let (out, n) = redact(&long);
    assert_eq!(n, 1);
    assert!(!out.contains("hunter2"));
    let binary: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let (out, _) = redact(&String::from_utf8_lossy(&binary));
    assert!(!out.chars().any(|c| c.is_control() && c != '\n' && c != '\t'));
    assert_eq!(redact(""), (String::new(), 0));
    let many = "token=x ".repeat(10_000);
    assert_eq!(redact(&many).1, 10_000);
}

// ------------------------------------------------------------------------
// The rules file.

#[test]
fn the_rules_file_loads_every_rule_compiles_and_names_are_unique() {
    let rules = load(RULES_TOML).expect("rules.toml loads");
    let mut names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), rules.len(), "duplicate rule names");
}

#[test]
fn a_broken_rules_file_is_refused_with_the_rule_named() {
    let rule = |name: &str, body: &str| format!("[[rule]]\nname = \"{name}\"\n{body}\n");
    let ok = rule("one", "pattern = 'a(?P<s>b)'\nsecret = \"s\"");
    assert!(load(&ok).is_ok());
    for (file, why) in [
        (String::new(), "missing field"),
        ("[[rule]]\nname = 'x'\npattern = '(unclosed'\n".to_owned(), "\"x\""),
        (format!("{ok}{ok}"), "used twice"),
        (rule("x", "pattern = 'a<NOPE>'"), "unknown part <NOPE>"),
        (rule("x", "pattern = 'a'\nvalidator = 'looks_nice'"), "unknown variant"),
        (rule("x", "pattern = 'a'\nmark = 'stars'"), "unknown variant"),
        (rule("x", "pattern = 'a'\ncolour = 'red'"), "unknown field"),
        (rule("x", "pattern = 'a(?P<t>b)'\nsecret = 's'"), "no group \"s\""),
        (rule("Not Ok", "pattern = 'a'"), "lowercase"),
        ("[[part]]\nname = 'P'\npattern = 'a'\n[[part]]\nname = 'P'\npattern = 'b'\n".to_owned() + &ok, "twice"),
        ("rule = 3".to_owned(), "invalid type"),
        ("[[rule\n".to_owned(), ""),
    ] {
        let err = load(&file).err().unwrap_or_else(|| panic!("{file:?} loaded"));
        assert!(err.contains(why), "{file:?}: {err}");
    }
    // Parts expand in later parts and in rules.
    let rules = load("[[part]]\nname = 'A'\npattern = 'x'\n[[part]]\nname = 'B'\npattern = '<A>y'\n[[rule]]\nname = 'r'\npattern = '<B>z'\n").unwrap();
    assert_eq!(rules[0].re.as_str(), "xyz");
}

#[test]
fn runs_of_plain_rules_are_merged_and_find_what_they_found_one_by_one() {
    let rule = |name: &str, body: &str| format!("[[rule]]\nname = \"{name}\"\n{body}\n");
    let file = [
        rule("a", "pattern = 'aa_[0-9]+'"),
        rule("b", "pattern = '(?i)bb_[0-9]+'"),
        rule("c", "pattern = 'x=(?P<s>[0-9]+)'\nsecret = 's'"),
        rule("d", "pattern = 'dd_[0-9]+'\nmark = 'url'"),
        rule("e", "pattern = 'ee_[0-9]+'\nmark = 'url'"),
        rule("f", "pattern = 'ff_[0-9]+'\nvalidator = 'token'"),
    ]
    .concat();
    let merged = super::rules::merge_plain(load(&file).unwrap());
    let names: Vec<&str> = merged.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["a+b", "c", "d+e", "f"]);
    // The built-in rules, merged, hide exactly what they hide one by one.
    let one_by_one = load(RULES_TOML).unwrap();
    assert!(RULES.len() < one_by_one.len());
    let apply = |rules: &[super::rules::Rule], line: &str| {
        let mut text = clean(line);
        let mut n = 0;
        for rule in rules {
            super::replace(rule, &mut text, &mut n);
        }
        (text, n)
    };
    for line in [
        format!("ghp_{} and xoxb-{} then AKIAZX8QM2LP5RT7WN4K", fake(36), fake(30)),
        format!("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIx{}.{} sk-proj-{}", fake(20), fake(43), fake(40)),
        format!("-----BEGIN PRIVATE KEY----- {} -----END PRIVATE KEY----- glpat-{}", fake(64), fake(20)),
        format!("SG.{}.{} npm_{} hf_{}", fake(22), fake(43), fake(36), fake(34)),
        "nothing to see here: GET /health 200".to_owned(),
    ] {
        assert_eq!(apply(&RULES, &line), apply(&one_by_one, &line), "{line}");
    }
}

// ------------------------------------------------------------------------
// Shapes of secrets, each hidden, each with near misses left alone.

/// A made-up token of `n` characters: letters of both cases and digits,
/// never a real credential.
fn fake(n: usize) -> String {
    "Zx8Qm2Lp5Rt7Wn4Kd9Hs3Vb6Gc1Jf0TyA".chars().cycle().take(n).collect()
}

fn hex(n: usize) -> String {
    "3f9a0c7e51b2d864".chars().cycle().take(n).collect()
}

/// `secret`, inside `text`, is hidden (at least one replacement).
fn hidden(text: &str, secret: &str) -> String {
    assert!(text.contains(secret), "bad example: {secret:?} is not in {text:?}");
    let (out, n) = redact(text);
    assert!(!out.contains(secret), "{secret:?} survived in {out:?}");
    assert!(n >= 1, "nothing counted for {text:?}");
    out
}

fn lines_untouched(lines: &[&str]) {
    let r = Redactor::default();
    for line in lines {
        assert_eq!(r.lines().redact(line), ((*line).to_owned(), 0), "must not be redacted");
    }
}

#[test]
fn env_assignments() {
    for key in [
        "DB_PASS",
        "MYSQL_ROOT_PASSWORD",
        "POSTGRES_PASSWORD",
        "SMTP_PWD",
        "MYSQL_PWD",
        "STRIPE_KEY",
        "MASTER_KEY",
        "JWT_SECRET",
        "GITHUB_TOKEN",
        "AWS_CREDENTIALS",
        "PGPASSWORD",
        "REDIS_PW",
        "api_key",
        "db.password",
        "spring.datasource.password",
    ] {
        for line in [
            format!("{key}=Sup3r-s3cret"),
            format!("export {key}=Sup3r-s3cret"),
            format!("+ {key}=Sup3r-s3cret ./start.sh"),
            format!("docker run -e {key}=Sup3r-s3cret app"),
            format!("  - {key}=Sup3r-s3cret"),
            format!("Environment={key}=Sup3r-s3cret"),
            format!("{key}: Sup3r-s3cret"),
            format!("{key} = Sup3r-s3cret"),
            format!("{key}=\"Sup3r-s3cret\""),
            format!("{key}='Sup3r-s3cret'"),
            format!("ENV {key} Sup3r-s3cret"),
        ] {
            hidden(&line, "Sup3r-s3cret");
        }
    }
    // Values with spaces: an env line to its end, quoted ones to their quote.
    assert_eq!(hides("DB_PASSWORD=correct horse battery", &["horse"], 1), "DB_PASSWORD=[REDACTED]");
    hides("+ export 'DB_PASSWORD=correct horse battery'", &["horse"], 1);
    hides(r#""Env": ["PATH=/usr/bin", "DB_PASSWORD=correct horse", "TZ=UTC"]"#, &["horse"], 1);
    hides("declare -x API_TOKEN=\"abc 123\"", &["abc 123"], 1);
    hides(r#"{"log":"SECRET_KEY=django-insecure-9x!k\n","stream":"stdout"}"#, &["django-insecure"], 1);
    lines_untouched(&[
        "PWD=/home/app",
        "OLDPWD=/",
        "OLDPWD=",
        "pwd: /srv/app",
        "GOOGLE_APPLICATION_CREDENTIALS=/var/secrets/google/key.json",
        "DB_PASSWORD_FILE=/run/secrets/db_password",
        "POSTGRES_PASSWORD_FILE=/run/secrets/pg",
        "MYSQL_RANDOM_ROOT_PASSWORD=yes",
        "MYSQL_ALLOW_EMPTY_PASSWORD=no",
        "DB_PASSWORD=${DB_PASSWORD}",
        "PGPASSWORD=$POSTGRES_PASSWORD psql -h db",
        "ssl.truststore.password = null",
        "password = (sensitive value)",
        "ROUTING_KEY=orders.created",
        "GPG_KEY=A035C8C19219BA821ECEA86B64E628F8D684696D",
        "TLS_KEY=/etc/ssl/private/server.key",
        "SECRETS_DIR=/run/secrets",
        "TOKEN_TTL=3600",
        "keyspace_hits:1024",
        "monkey=1 donkey=2",
        "secretary=Jane",
        "token_type=bearer expires_in=3600",
        "max_tokens=256",
        "bypass=true compass=north",
    ]);
}

#[test]
fn json_and_object_dumps() {
    for line in [
        r#"{"user":"bob","password":"p@ss w0rd"}"#,
        r#"{ "password" : "p@ss w0rd" }"#,
        r#"{'password': 'p@ss w0rd'}"#,
        r#"{:password=>"p@ss w0rd"}"#,
        r#"&{User:bob Password:"p@ss w0rd"}"#,
        r#"{ password: 'p@ss w0rd', host: 'db' }"#,
        r#"<Password>p@ss w0rd</Password>"#,
        r#"<add key="DbPassword" value="p@ss w0rd" />"#,
        r#"password = "p@ss w0rd""#,
    ] {
        hidden(line, "p@ss w0rd");
    }
    hidden("{User:bob Password:hunter2 Host:db}", "hunter2");
    // Keys that are secrets only where they are clearly keys.
    hidden(r#"{"smtp":{"user":"app","pass":"hunter2"}}"#, "hunter2");
    hidden(r#"<Connector port="8443" keystorePass="hunter2" />"#, "hunter2");
    hidden("RootPass: hunter2", "hunter2");
    // A key and its value as two arguments.
    hidden("define('DB_PASSWORD', 'hunter2');", "hunter2");
    hidden("define( 'AUTH_SALT', 'hunter2!@#' );", "hunter2!@#");
    hidden(r#"os.Setenv("API_TOKEN", "hunter2")"#, "hunter2");
    hidden(r#"headers = [("Authorization", "Bearer hunter2")]"#, "hunter2");
    hidden("os.environ['DB_PASSWORD'] = 'hunter2'", "hunter2");
    // A config line's value runs to its end, unless another key follows.
    assert_eq!(hides("password = correct horse battery", &["horse"], 1), "password = [REDACTED]");
    assert_eq!(hides("  secret: two words", &["two words"], 1), "  secret: [REDACTED]");
    assert_eq!(hides("token=abc123 user=bob action=login", &["abc123"], 1), "token=[REDACTED] user=bob action=login");
    hidden("User{name=bob, password=hunter2}", "hunter2");
    // JSON escaped inside JSON, at any depth.
    for line in [
        r#"{"log":"{\"user\":\"bob\",\"password\":\"hunter2!\"}\n"}"#,
        r#"{"msg":"body={\\\"api_key\\\":\\\"hunter2!\\\"}"}"#,
        r#"payload: "{\"client_secret\": \"hunter2!\"}""#,
    ] {
        hidden(line, "hunter2!");
    }
    lines_untouched(&[
        r#"{"level":"info","msg":"token refreshed","expires_in":3600}"#,
        r#"{"error":"invalid password"}"#,
        r#"{"password_length":12,"token_count":3}"#,
        r#"{"password": null}"#,
        r#"{"password": ""}"#,
        r#"Parameters: {"user"=>{"email"=>"a@b.c", "password"=>"[FILTERED]"}}"#,
        "Password: must be at least 8 characters",
        r#"("token", "")"#,
    ]);
}

#[test]
fn passwords_in_urls_of_every_kind() {
    for (url, secret) in [
        ("postgres://app:s3cr3t@db:5432/shop", "s3cr3t"),
        ("postgresql://app:pa/ss+wo=rd@db/shop", "pa/ss+wo=rd"),
        ("mysql://root:p%40ss%2Fw%3Ard@db:3306/x", "p%40ss%2Fw%3Ard"),
        ("mongodb+srv://admin:Zx8Qm2Lp@cluster0.abcde.mongodb.net/db?retryWrites=true", "Zx8Qm2Lp"),
        ("rediss://default:AbC123xYz@cache:6380/0", "AbC123xYz"),
        ("amqp://guest:gu3st!@mq:5672/", "gu3st!"),
        ("https://oauth2:glpat-aaaa@gitlab.example.com/g/r.git", "glpat-aaaa"),
        ("ftp://user:ftp-pass@files.example.com/", "ftp-pass"),
        ("jdbc:mysql://app:j-pass@db:3306/shop", "j-pass"),
        ("http://proxyuser:pr0xy@proxy:3128", "pr0xy"),
        ("smtp://mailer:m4il@smtp.example.com:587", "m4il"),
        ("nats://nats:n4ts@nats:4222", "n4ts"),
        ("https://x-access-token:ghs-t0ken@github.com/o/r.git", "ghs-t0ken"),
    ] {
        assert!(hidden(&format!("connecting to {url}"), secret).contains(":***@"), "{url}");
    }
    // Query strings and form bodies, also URL-encoded.
    for (text, secret) in [
        ("GET /login?user=bob&password=hunter2&next=/", "hunter2"),
        ("POST /oauth/token grant_type=client_credentials&client_id=app&client_secret=cl1ent-s3cret", "cl1ent-s3cret"),
        ("GET /api?api_key=9f8e7d6c5b4a&page=2", "9f8e7d6c5b4a"),
        ("GET /cb#access_token=ya-abc.def&state=1", "ya-abc.def"),
        ("GET /maps/api/geocode/json?address=x&key=k3y-Zx8Qm2", "k3y-Zx8Qm2"),
        ("GET /lab?token=3f9a0c7e51b2d8643f9a0c7e51b2d864", "3f9a0c7e51b2d8643f9a0c7e51b2d864"),
        (
            "https://acct.blob.core.windows.net/c/f?sv=2022-11-02&se=2030-01-01&sp=r&sig=AbC%2Bd3F%2Fgh%3D",
            "AbC%2Bd3F%2Fgh%3D",
        ),
        ("redirect=%2Flogin%3Fuser%3Dbob%26password%3Dhunter2%26x%3D1", "hunter2"),
        ("GET /s3/x?X-Amz-Signature=3f9a0c7e51b2d864&X-Amz-Date=20240101", "3f9a0c7e51b2d864"),
    ] {
        hidden(text, secret);
    }
    lines_untouched(&[
        "listening on http://0.0.0.0:8080/health",
        "GET http://api:8080/users/a@b.c 200",
        "ssh://git@github.com:22/org/repo",
        "git@github.com:org/repo.git",
        "GET /search?q=password+reset&page=2 200",
        "GET /api/tokens?limit=10 200",
        "mailto:bob@example.com",
        "dial tcp 10.0.0.5:5432: connect: connection refused",
    ]);
}

#[test]
fn command_lines() {
    for (line, secret) in [
        ("curl -u admin:cUrl-s3cret https://api.example.com", "cUrl-s3cret"),
        ("curl -sS --user 'admin:cUrl-s3cret' https://api.example.com", "cUrl-s3cret"),
        ("mysql -uroot -pmY-s3cret -h db shop", "mY-s3cret"),
        ("mysqldump --user=root --password=mY-s3cret shop", "mY-s3cret"),
        ("mysqladmin -h localhost -u root -p'mY s3cret' ping", "mY s3cret"),
        ("redis-cli -h cache -a r3dis-s3cret ping", "r3dis-s3cret"),
        ("sshpass -p 'ssh-s3cret' ssh deploy@host", "ssh-s3cret"),
        ("sshpass -pssh-s3cret scp f host:", "ssh-s3cret"),
        ("PGPASSWORD=pg-s3cret psql -h db -U app", "pg-s3cret"),
        ("docker login -u bot -p reg-s3cret registry.example.com", "reg-s3cret"),
        ("mongosh --host db -u admin -p m0ngo-s3cret", "m0ngo-s3cret"),
        ("wget --user=bob --password=w-s3cret https://x", "w-s3cret"),
        ("java -Djavax.net.ssl.keyStorePassword=ks-s3cret -jar app.jar", "ks-s3cret"),
        ("app --db-password ks-s3cret --port 80", "ks-s3cret"),
        (r#""Cmd": ["server", "--auth-token", "tok-s3cret"]"#, "tok-s3cret"),
        ("openssl pkcs12 -export -passout pass:p12-s3cret -out a.p12", "p12-s3cret"),
        ("htpasswd -bc /etc/nginx/.htpasswd admin htp-s3cret", "htp-s3cret"),
        ("rabbitmqctl add_user app rmq-s3cret", "rmq-s3cret"),
        ("mc alias set local http://minio:9000 minioadmin mc-s3cret", "mc-s3cret"),
        ("helm install db bitnami/postgresql --set auth.password=h-s3cret", "h-s3cret"),
        ("ALTER ROLE app WITH LOGIN PASSWORD 'sql-s3cret';", "sql-s3cret"),
        ("CREATE USER 'app'@'%' IDENTIFIED BY 'sql-s3cret';", "sql-s3cret"),
        ("requirepass rds-s3cret", "rds-s3cret"),
        (r#"1700000000.1 [0 10.0.0.2:5123] "AUTH" "default" "rds-s3cret""#, "rds-s3cret"),
        ("ACL SETUSER app on >acl-s3cret ~* +@all", "acl-s3cret"),
        ("machine api.example.com login bob password n3trc-s3cret", "n3trc-s3cret"),
        ("::add-mask::m4sk-s3cret", "m4sk-s3cret"),
        ("SET PASSWORD FOR 'app'@'%' = 'sql-s3cret';", "sql-s3cret"),
        ("CREATE USER 'a'@'%' IDENTIFIED WITH mysql_native_password BY 'sql-s3cret';", "sql-s3cret"),
        ("sqlplus system/0ra-s3cret@//db:1521/XE", "0ra-s3cret"),
        ("ldapsearch -x -D cn=admin,dc=x -w ld4p-s3cret -b dc=x", "ld4p-s3cret"),
        ("smbclient //host/share -U bob%smb-s3cret", "smb-s3cret"),
        ("zip -r -P z1p-s3cret out.zip dir", "z1p-s3cret"),
        ("echo \"st4in-s3cret\" | docker login -u bob --password-stdin", "st4in-s3cret"),
        ("echo 'root:chp-s3cret' | chpasswd", "chp-s3cret"),
        ("aws configure set aws_secret_access_key awsc-s3cret", "awsc-s3cret"),
    ] {
        hidden(line, secret);
    }
    lines_untouched(&[
        "mysql: [Warning] Using a password on the command line interface can be insecure.",
        "docker run -u 1000:1000 -p 8080:80 app",
        "mysql -h db -P 3306 -u app -p",
        "psql -h db -U app -d shop",
        "redis-cli -h cache ping",
        " PASS  src/app.test.js",
        "--- PASS: TestLogin (0.01s)",
        "Step 3/8 : ENV NODE_ENV production",
        "ERR AUTH <password> called without any password configured for the default user.",
        "-NOAUTH Authentication required.",
        "echo \"$REG_PASS\" | docker login -u bob --password-stdin",
        "zip -r out.zip dir",
    ]);
}

#[test]
fn protocol_traces_and_stack_traces() {
    hidden("C: a001 LOGIN bob imap-s3cret", "imap-s3cret");
    hidden("> PASS ftp-s3cret", "ftp-s3cret");
    hidden("C: AUTH PLAIN AGJvYgBzbXRwLXMzY3JldA==", "AGJvYgBzbXRwLXMzY3JldA==");
    hidden("#0 /app/db.php(12): PDO->__construct('mysql:host=db;...', 'app', 'pdo-s3cret')", "pdo-s3cret");
    hidden("#1 mysqli_connect('db', 'app', 'my-s3cret', 'shop')", "my-s3cret");
    hidden(r#"  File "app.py", line 9, in connect: psycopg2.connect(host="db", password="py-s3cret")"#, "py-s3cret");
    lines_untouched(&[
        "Traceback (most recent call last):",
        "psycopg2.OperationalError: FATAL:  password authentication failed for user \"app\"",
        "goroutine 1 [running]:",
        "at com.example.Auth.login(Auth.java:42)",
    ]);
}

#[test]
fn connection_strings_and_java_config() {
    for (line, secret) in [
        ("Server=db;Database=shop;User Id=sa;Password=My P@ss;Encrypt=true", "My P@ss"),
        ("Driver={ODBC Driver 18};Server=db;UID=sa;PWD=0dbc-s3cret;", "0dbc-s3cret"),
        ("Host=db;Username=app;Password=npg-s3cret;Database=shop", "npg-s3cret"),
        (
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=Zx8Qm2Lp5Rt7Wn4Kd9Hs3Vb6Gc1Jf0Ty+a/b==;EndpointSuffix=core.windows.net",
            "Zx8Qm2Lp5Rt7Wn4Kd9Hs3Vb6Gc1Jf0Ty+a/b==",
        ),
        (
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey=Zx8Qm2Lp5Rt7Wn4Kd9Hs3Vb6=",
            "Zx8Qm2Lp5Rt7Wn4Kd9Hs3Vb6=",
        ),
        (
            r#"sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="app" password="k4fka-s3cret";"#,
            "k4fka-s3cret",
        ),
        ("ssl.keystore.password = ks-s3cret", "ks-s3cret"),
        ("spring.datasource.password=spr1ng-s3cret", "spr1ng-s3cret"),
        ("-Dspring.datasource.password=spr1ng-s3cret", "spr1ng-s3cret"),
    ] {
        hidden(line, secret);
    }
}

#[test]
fn headers_and_cookies() {
    for (line, secret) in [
        ("Authorization: Bearer Zx8Qm2Lp5Rt7Wn4Kd9", "Zx8Qm2Lp5Rt7Wn4Kd9"),
        ("authorization: token ghx-abcdef", "ghx-abcdef"),
        ("Authorization: Bot NzkyNzE1.X-hvzA.Ovy4MCQywSkoMRRclStW4xAYK7I", "NzkyNzE1"),
        ("Proxy-Authorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l", "YWxhZGRpbjpvcGVuc2VzYW1l"),
        ("X-Api-Key: 0123abcdef", "0123abcdef"),
        ("x-api-key=0123abcdef", "0123abcdef"),
        ("PRIVATE-TOKEN: glpat-abcdefabcdef", "glpat-abcdefabcdef"),
        ("X-Vault-Token: hvs.abcdef", "hvs.abcdef"),
        ("Cookie: sessionid=9f8e7d6c5b4a; csrftoken=abc", "9f8e7d6c5b4a"),
        ("Set-Cookie: JSESSIONID=9F8E7D6C5B4A; Path=/; HttpOnly", "9F8E7D6C5B4A"),
        (r"send: b'GET / HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer Zx8Qm2Lp5Rt7\r\n\r\n'", "Zx8Qm2Lp5Rt7"),
        (
            "Authorization: AWS4-HMAC-SHA256 Credential=AKIAZX8QM2LP5RT7WN4K/20240101/eu-west-1/s3/aws4_request, Signature=3f9a0c7e",
            "3f9a0c7e",
        ),
    ] {
        hidden(line, secret);
    }
    lines_untouched(&[
        "401: api_key header missing",
        "missing Authorization header",
        "Authorization: denied",
        "WWW-Authenticate: Bearer realm=\"api\"",
        "Cookie consent banner shown",
        "cookies: 3",
    ]);
}

#[test]
fn docker_registry_credentials() {
    let auth = "ZGVwbG95OnJlZy1zM2NyZXQ=";
    for line in [
        format!(r#"{{"auths":{{"registry.example.com":{{"auth":"{auth}"}}}}}}"#),
        format!(r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{auth}", "email": "a@b.c"}}}}}}"#),
        format!(r#"{{\"auths\":{{\"r\":{{\"auth\":\"{auth}\"}}}}}}"#),
    ] {
        hidden(&line, auth);
    }
    hidden(".dockerconfigjson: eyJhdXRocyI6eyJyZWdpc3RyeSI6eyJhdXRoIjoiWkdWd2JHOTUifX19", "eyJhdXRocyI6eyJy");
    hidden(&format!("login with dckr_pat_{}", fake(27)), &fake(27));
    hidden("docker login -u bot --password reg-s3cret", "reg-s3cret");
    lines_untouched(&[
        "Login Succeeded",
        "\"auth\": \"required\"",
        "WARNING! Using --password via the CLI is insecure.",
    ]);
}

#[test]
fn vendor_token_formats() {
    let tokens = [
        format!("AKIA{}", "ZX8QM2LP5RT7WN4K"),
        format!("ASIA{}", "ZX8QM2LP5RT7WN4K"),
        format!("ghp_{}", fake(36)),
        format!("gho_{}", fake(36)),
        format!("ghu_{}", fake(36)),
        format!("ghs_{}", fake(36)),
        format!("ghr_{}", fake(36)),
        format!("github_pat_{}_{}", fake(22), fake(59)),
        format!("glpat-{}", fake(20)),
        format!("xoxb-123456789012-1234567890123-{}", fake(24)),
        format!("xoxp-123456789012-123456789012-1234567890123-{}", hex(32)),
        format!("xoxa-2-{}", fake(20)),
        format!("xoxs-{}", fake(20)),
        format!("xoxr-{}", fake(20)),
        format!("xoxo-{}", fake(20)),
        format!("xapp-1-A0123456789-1234567890123-{}", hex(64)),
        format!("sk_live_{}", fake(24)),
        format!("rk_live_{}", fake(24)),
        format!("sk_test_{}", fake(24)),
        format!("whsec_{}", fake(32)),
        format!("sk-{}", fake(48)),
        format!("sk-proj-{}", fake(80)),
        format!("sk-ant-api03-{}-{}AA", fake(80), fake(10)),
        format!("AIza{}", fake(35)),
        format!("GOCSPX-{}", fake(28)),
        format!("SG.{}.{}", fake(22), fake(43)),
        format!("npm_{}", fake(36)),
        format!("pypi-AgEIcHlwaS5vcmc{}", fake(60)),
        format!("hvs.{}", fake(24)),
        format!("hvb.{}", fake(90)),
        format!("dop_v1_{}", hex(64)),
        format!("shpat_{}", hex(32)),
        format!("shpss_{}", hex(32)),
        format!("hf_{}", fake(34)),
        format!("SK{}", hex(32)),
        format!("key-{}", hex(32)),
        format!("ATATT3{}", fake(180)),
        format!("dckr_pat_{}", fake(27)),
        format!("HRKU-{}", fake(60)),
        format!("glsa_{}_{}", fake(32), hex(8)),
        format!("AGE-SECRET-KEY-1{}", "ZX8QM2LP5RT7WN4KD9HS3VB6GC1JF0TYAZX8QM2LP5RT7WN4KD9HS3VB6GC"),
        format!("ya29.{}", fake(60)),
        format!("IQoJb3JpZ2luX2Vj{}", fake(200)),
        format!("{}.atlasv1.{}", fake(14), fake(67)),
        format!("MTIzNDU2Nzg5MDEyMzQ1Njc4.GAbCdE.{}", fake(38)),
        format!("abc8Q~{}", fake(34)),
        format!("{}-us21", hex(32)),
        format!("sq0atp-{}", fake(22)),
        format!("PMAK-{}-{}", hex(24), hex(34)),
        format!("lin_api_{}", fake(40)),
        format!("sntrys_{}", fake(60)),
        format!("dp.pt.{}", fake(43)),
        format!("sbp_{}", hex(40)),
        format!("pul-{}", hex(40)),
        format!("ATBB{}", fake(32)),
        format!("AAAA{}:{}", fake(7), fake(140)),
        format!("LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQpNSUlFb3dJQkFBS0NBUUVB{}", fake(40)),
        format!("LS0tLS1CRUdJTiBPUEVOU1NIIFBSSVZBVEUgS0VZLS0tLS0K{}", fake(40)),
    ];
    for token in &tokens {
        for line in [format!("using {token} for the api"), format!("\"{token}\""), format!("config={{client:{token}}}")]
        {
            hidden(&line, token);
        }
    }
    // Secrets given by their context.
    let aws = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    hidden(&format!("aws_secret_access_key = {aws}"), aws);
    hidden(&format!(r#""SecretAccessKey": "{aws}""#), aws);
    hidden(&format!("AKIAZX8QM2LP5RT7WN4K,{aws}"), aws);
    hidden(&format!("AWS_SESSION_TOKEN={}", fake(300)), &fake(300));
    hidden(&format!("https://hooks.slack.com/services/T0123ABCD/B0123ABCD/{}", fake(24)), &fake(24));
    hidden(&format!("POST https://discord.com/api/webhooks/123456789012345678/{}", fake(68)), &fake(68));
    let telegram = format!("123456789:AA{}", fake(33));
    hidden(&format!("POST https://api.telegram.org/bot{telegram}/sendMessage"), &telegram);
    hidden(&format!("TELEGRAM_BOT_TOKEN={telegram}"), &telegram);
    hidden(&format!("mailgun key {}-{}-{}", hex(32), hex(8), hex(8)), &hex(32));
    hidden("DD_API_KEY=3f9a0c7e51b2d8643f9a0c7e51b2d864", "3f9a0c7e51b2d864");
    hidden("AZURE_CLIENT_SECRET=abc8Q~Zx8Qm2Lp5Rt7Wn4Kd9Hs3Vb6Gc1Jf0TyA", "abc8Q~Zx8Qm");
    lines_untouched(&[
        "sk-learn is installed",
        "AKIA is a prefix",
        "task-0123456789abcdefghij0123 finished",
        "hf_transfer enabled",
        "npm_config_cache=/root/.npm",
        "key-value store ready",
        "SKU 12 restocked",
        "xoxo hugs",
    ]);
}

#[test]
fn gcp_service_account_json() {
    let key = format!("-----BEGIN PRIVATE KEY-----\\n{}\\n{}\\n-----END PRIVATE KEY-----\\n", fake(64), fake(40));
    let json = format!(
        r#"{{"type": "service_account", "project_id": "p", "private_key_id": "{}", "private_key": "{key}", "client_email": "sa@p.iam.gserviceaccount.com"}}"#,
        hex(40)
    );
    let out = hidden(&json, &fake(64));
    assert!(!out.contains(&fake(40)), "{out}");
    assert!(out.contains("sa@p.iam.gserviceaccount.com") && out.contains("service_account"), "{out}");
    // Printed with spaces for newlines.
    hidden(&format!("key: -----BEGIN RSA PRIVATE KEY----- {} -----END RSA PRIVATE KEY-----", fake(64)), &fake(64));
}

#[test]
fn banners_that_print_credentials() {
    for (line, secret) in [
        ("[Entrypoint] GENERATED ROOT PASSWORD: Gk2r.Bfh7Xs!q", "Gk2r.Bfh7Xs!q"),
        ("Using generated security password: 8e557245-73e2-4286-969a-ff57fe326336", "8e557245"),
        ("Root Token: hvs.Zx8Qm2Lp5Rt7Wn4Kd9Hs3Vb6", "hvs.Zx8Qm2Lp"),
        ("Unseal Key: Zx8Qm2Lp5Rt7Wn4Kd9Hs3Vb6Gc1Jf0TyA=", "Zx8Qm2Lp5Rt7"),
        ("Unseal Key 1: Zx8Qm2Lp5Rt7Wn4Kd9Hs3Vb6Gc1Jf0TyA=", "Zx8Qm2Lp5Rt7"),
        ("standalone | Login with username: admin  password: Zx8Qm2Lp5Rt7", "Zx8Qm2Lp5Rt7"),
        ("RootUser: minioadmin RootPass: m1ni0-s3cret", "m1ni0-s3cret"),
        ("code-server: Password is Zx8Qm2Lp5Rt", "Zx8Qm2Lp5Rt"),
        ("your API key is `sk0-Zx8Qm2Lp5Rt`", "sk0-Zx8Qm2Lp5Rt"),
        ("using token 3f9a0c7e51b2d864 for the api", "3f9a0c7e51b2d864"),
        (" * Debugger PIN: 123-456-789", "123-456-789"),
    ] {
        hidden(line, secret);
    }
    // A secret announced on one line and printed alone on the next.
    let r = Redactor::default();
    let mut lines = r.lines();
    let out: Vec<(String, u32)> = [
        "Please use the following password to proceed to installation:",
        "",
        "3f9a0c7e51b2d8643f9a0c7e51b2d864",
        "This may also be found at: /var/jenkins_home/secrets/initialAdminPassword",
        "next",
    ]
    .iter()
    .map(|l| lines.redact(l))
    .collect();
    assert_eq!(out[2], (MARK.to_owned(), 1));
    assert_eq!(out[3].1, 0);
    assert_eq!(out[4], ("next".to_owned(), 0));
    let mut lines = r.lines();
    lines.redact("Password for the elastic user (reset with `bin/elasticsearch-reset-password -u elastic`):");
    assert_eq!(lines.redact("  x9*Zx8Qm2Lp5Rt+7Wn4K"), (format!("  {MARK}"), 1));
    // Only a lone token: prose after an announcement stays.
    let mut lines = r.lines();
    lines.redact("enter the token:");
    assert_eq!(lines.redact("started server on :8080").1, 0);
    lines_untouched(&[
        "Failed to verify token TokenExpiredError",
        "the password is invalid",
        "token 1234 expired",
        "token bucket refilled",
        "Please enter your password:",
        "Elasticsearch security features have been automatically configured!",
    ]);
}

#[test]
fn key_bodies_after_a_log_prefix() {
    let r = Redactor::default();
    for line in [format!("2024-01-01T00:00:00Z {}", fake(64)), format!("key | {}", fake(70))] {
        let (out, n) = r.lines().redact(&line);
        assert!(!out.contains(&fake(64)) && n == 1, "{out}");
    }
    // A certificate's body is no secret, nor are hashes and ids.
    let mut lines = r.lines();
    for line in ["-----BEGIN CERTIFICATE-----", &fake(64), &fake(64), "Zx8Qm2==", "-----END CERTIFICATE-----"] {
        assert_eq!(lines.redact(line), (line.to_owned(), 0));
    }
    lines_untouched(&[
        "commit 3f2a9b1c4d5e6f708192a3b4c5d6e7f8091a2b3c",
        "3f2a9b1c4d5e6f708192a3b4c5d6e7f8091a2b3c",
        &hex(64),
        &format!("Status: Downloaded newer image; Digest: sha256:{}", hex(64)),
        &format!("{} app-web-1 Up 3 minutes", hex(12)),
        "request 123e4567-e89b-12d3-a456-426614174000 done in 12 ms",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl deploy@ci",
        "-----BEGIN PUBLIC KEY-----",
        "SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8 (ED25519)",
        "client-certificate-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUM=",
        "SSH_KEY=ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ci",
        "integrity sha512-Zx8Qm2Lp5Rt7Wn4Kd9Hs3Vb6Gc1Jf0TyAZx8Qm2Lp5Rt7Wn4Kd9Hs3Vb6Gc1Jf0TyAZx8Qm2Lp5Rt7Wn4Kd9Hs3Vb6Gc1==",
        "h1:Zx8Qm2Lp5Rt7Wn4Kd9Hs3Vb6Gc1Jf0TyAZx8Qm2Lp5=",
    ]);
}

#[test]
fn prose_about_secrets_is_left_alone() {
    lines_untouched(&[
        "FATAL:  password authentication failed for user \"app\"",
        "Access denied for user 'root'@'172.18.0.3' (using password: YES)",
        "invalid password",
        "ERROR: invalid password for user bob",
        "token expired",
        "JWT token expired at 2024-01-01T00:00:00Z",
        "loading tokenizer from /models/bert",
        "Tokenizer: 50257 tokens",
        "api_key header missing",
        "Please provide a valid API key",
        "password reset email sent to bob@example.com",
        "secret \"db-credentials\" not found",
        "Secret db-credentials created",
        "Successfully authenticated with token",
        "Permission denied (publickey,password).",
        "sudo: 3 incorrect password attempts",
        "Authentication failed: bad credentials",
        "vault: permission denied (token lacks policy)",
        "openai.AuthenticationError: Incorrect API key provided",
        "ERROR: duplicate key value violates unique constraint \"users_pkey\"",
        "-----BEGIN CERTIFICATE-----",
        "Saving debug log to /var/log/letsencrypt/letsencrypt.log",
    ]);
}

#[test]
fn every_text_the_collector_sends_is_redacted_alike() {
    // Exec and health output are texts of many lines, redacted line by line
    // as a log is: a key printed whole is one secret (one mark in a text,
    // one per line in a log), an env dump's lines are each redacted.
    let text = format!(
        "HOSTNAME=web\nDB_PASSWORD=hunter2 x\nPWD=/app\n-----BEGIN EC PRIVATE KEY-----\n{}\n-----END EC PRIVATE KEY-----\nok",
        fake(64)
    );
    let (out, n) = redact(&text);
    assert_eq!(out, "HOSTNAME=web\nDB_PASSWORD=[REDACTED]\nPWD=/app\n[REDACTED]\nok");
    assert_eq!(n, 2);
    // The same lines one by one through a log's redactor.
    let r = Redactor::default();
    let mut lines = r.lines();
    let one_by_one: Vec<String> = text.split('\n').map(|l| lines.redact(l).0).collect();
    assert_eq!(
        one_by_one.join("\n"),
        "HOSTNAME=web\nDB_PASSWORD=[REDACTED]\nPWD=/app\n[REDACTED]\n[REDACTED]\n[REDACTED]\nok"
    );
    // What only the line rules knew: a key body whose BEGIN line was cut
    // off, a password announced on the line before.
    let body = format!("{}\n{}", fake(64), fake(40));
    let (out, _) = redact(&format!("tail of the key:\n{body}\n-----END PRIVATE KEY-----"));
    assert!(!out.contains(&fake(40)), "{out}");
    let (out, n) =
        redact("Please use the following password to proceed to installation:\n\n3f9a0c7e51b2d8643f9a0c7e51b2d864\n");
    assert_eq!((out.as_str(), n), ("Please use the following password to proceed to installation:\n\n[REDACTED]\n", 1));
    // Line ends are kept, \r\n made \n (the \r is a control character).
    assert_eq!(redact("a\r\nb\n\n"), ("a\nb\n\n".to_owned(), 0));
}

// ------------------------------------------------------------------------
// Shapes added with the tuning set: each example here is made up, not
// taken from a corpus.

#[test]
fn key_names_with_a_suffix_or_an_auth_word() {
    for (line, secret) in [
        ("WEBHOOK_SECRET_VALUE=Tq4-mmRv8", "Tq4-mmRv8"),
        ("ADMIN_PASSWORD_HASH=$2b$12$Tq4mmRv8abcdefghijk", "$2b$12$Tq4mmRv8abcdefghijk"),
        ("signing.token.b64: VHE0LW1tUnY4", "VHE0LW1tUnY4"),
        ("BASIC_AUTH=ops:Tq4-mmRv8", "ops:Tq4-mmRv8"),
        ("RABBITMQ_ERLANG_COOKIE=TQMMRVEIGHTCOOKIE", "TQMMRVEIGHTCOOKIE"),
        ("redis.auth = Tq4-mmRv8", "Tq4-mmRv8"),
        ("$env:DEPLOY_TOKEN = \"Tq4-mmRv8\"", "Tq4-mmRv8"),
        ("/srv/app/.env:7:db_password=Tq4-mmRv8", "Tq4-mmRv8"),
    ] {
        hidden(line, secret);
    }
    lines_untouched(&[
        "DB_PASSWORD_FILE=/run/secrets/db",
        "API_TOKEN_TTL=900",
        "POSTGRES_HOST_AUTH_METHOD=md5",
        "SECRET_ARN=arn:aws:secretsmanager:us-east-1:210987654321:secret:app-Tq4mmR",
        "auth: required",
        "OAUTH_ISSUER=https://login.example.org/",
    ]);
}

#[test]
fn values_that_are_sentences_or_paths() {
    lines_untouched(&[
        "passwd: password changed.",
        "passwd: password updated successfully",
        "passwd: Authentication token manipulation error",
        "token: expired for user 12",
        "--client-secret flag is deprecated",
        "error reading /etc/app/tls.key: no such file",
        "nginx: [emerg] cannot load certificate key \"/etc/nginx/site.key\": BIO_new_file() failed",
        "policy arn:aws:secretsmanager:eu-central-1:210987654321:secret:prod-db-Tq4mmR attached",
    ]);
    // A secret that is one word stays hidden, followed by words or not.
    hidden("password: Tq4-mmRv8 (rotated)", "Tq4-mmRv8");
    hidden("passwd: tq4mmrv8", "tq4mmrv8");
}

#[test]
fn name_and_value_pairs() {
    for (line, secret) in [
        (r#"{"name": "SMTP_PASSWORD", "value": "Tq4-mmRv8"}"#, "Tq4-mmRv8"),
        (r#"[{"Name":"GRAFANA_TOKEN","Value":"Tq4-mmRv8"}]"#, "Tq4-mmRv8"),
        ("env: [{name: SIGNING_KEY, value: Tq4-mmRv8}]", "Tq4-mmRv8"),
        (r#"{\"name\":\"API_KEY\",\"value\":\"Tq4-mmRv8\"}"#, "Tq4-mmRv8"),
    ] {
        let out = hidden(line, secret);
        assert!(out.contains("alue"), "the key \"value\" is kept: {out}");
    }
    lines_untouched(&[r#"{"name": "LOG_LEVEL", "value": "debug"}"#, r#"{"name": "DB_PASSWORD", "valueFrom": {}}"#]);
    // The same in YAML, the value on the line after the name: a log's lines
    // one by one, or a text.
    let yaml = "env:\n  - name: SMTP_PASSWORD\n    value: Tq4-mmRv8\n  - name: LOG_LEVEL\n    value: debug\n  - name: API_TOKEN\n    valueFrom:\n      secretKeyRef: {name: app, key: token}";
    let (out, n) = redact(yaml);
    assert_eq!(out, yaml.replace("Tq4-mmRv8", MARK));
    assert_eq!(n, 1);
    let r = Redactor::default();
    let mut lines = r.lines();
    let out: Vec<String> = yaml.lines().map(|l| lines.redact(l).0).collect();
    assert_eq!(out.join("\n"), yaml.replace("Tq4-mmRv8", MARK));
    // Only the next line: a `value:` further down is something else's.
    lines_untouched(&["- name: DB_PASSWORD", "  value: ${DB_PASSWORD}"]);
}

#[test]
fn quoting_inside_quoting() {
    for (line, secret) in [
        (r"psql -c 'ALTER ROLE app WITH PASSWORD '\''Tq4-mmRv8'\'';'", "Tq4-mmRv8"),
        (r#"{"query":"CREATE USER app IDENTIFIED BY \"Tq4-mmRv8\""}"#, "Tq4-mmRv8"),
        (r#"{\"msg\":\"ALTER USER x PASSWORD \"Tq4-mmRv8\"\"}"#, "Tq4-mmRv8"),
        ("data=%7B%22client_secret%22%3A%22Tq4-mmRv8%22%7D", "Tq4-mmRv8"),
        ("q=%7B%22password%22%3A%20%22Tq4%2Fmm%2BRv8%22%7D", "Tq4%2Fmm%2BRv8"),
    ] {
        hidden(line, secret);
    }
    lines_untouched(&["q=%7B%22password_policy%22%3A%22strict%22%7D"]);
}

#[test]
fn more_command_lines() {
    for (line, secret) in [
        ("+ az login --service-principal -u 0000aaaa-11bb -p Tq4-mmRv8 --tenant t", "Tq4-mmRv8"),
        ("oc login https://api.ocp:6443 -u dev -p 'Tq4-mmRv8'", "Tq4-mmRv8"),
        ("curl -fsSLu ci:Tq4-mmRv8 https://nexus/repo", "Tq4-mmRv8"),
        ("keytool -list -keystore app.jks -storepass Tq4-mmRv8", "Tq4-mmRv8"),
        ("keytool -genkey -keypass Tq4-mmRv8 -alias x", "Tq4-mmRv8"),
        ("vault login hvs.Tq4mmRv8Tq4mmRv8Tq4mmRv8", "hvs.Tq4mmRv8Tq4mmRv8Tq4mmRv8"),
        ("vault login -no-print s.Tq4mmRv8Tq4mmRv8Tq4mmRv8", "s.Tq4mmRv8Tq4mmRv8Tq4mmRv8"),
        ("level=warn msg=\"retry\" user=ci pass=Tq4-mmRv8", "Tq4-mmRv8"),
        ("host=db;user=app;pwd=Tq4-mmRv8", "Tq4-mmRv8"),
    ] {
        hidden(line, secret);
    }
    lines_untouched(&[
        "vault login -method=userpass username=ops",
        "vault login -method=oidc",
        "Tests: PASS: 12, FAIL: 0",
        "curl --url https://example.org/",
        "az login --identity",
    ]);
}

#[test]
fn go_mysql_dsn_and_jaas_users() {
    hidden("dsn: ops:Tq4-mmRv8@tcp(db:3306)/shop?parseTime=true", "Tq4-mmRv8");
    hidden("sql.Open(\"mysql\", \"ops:Tq4/mm@Rv8@unix(/run/mysqld.sock)/shop\")", "Tq4/mm@Rv8");
    untouched("listening on tcp(0.0.0.0:3306)");
    let jaas = r#"sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="ops" password="Tq4-mmRv8" user_ops="Tq4-mmRv8" user_bob="Bq7-ttRv2";"#;
    let out = hidden(jaas, "Bq7-ttRv2");
    assert!(!out.contains("Tq4-mmRv8"), "{out}");
    // user_* is a password only inside a LoginModule entry.
    untouched(r#"request user_agent="curl/8.4" user_id="42""#);
}

#[test]
fn banners_and_lone_generated_passwords() {
    for (line, secret) in [
        ("New value: Tq4*mmRv8=Zx2", "Tq4*mmRv8=Zx2"),
        ("Admin password set to Tq4mmRv8", "Tq4mmRv8"),
        ("the API key was changed to Tq4mmRv8Zx", "Tq4mmRv8Zx"),
        ("[Note] A temporary password is generated for root@localhost: Tq4;mmRv8", "Tq4;mmRv8"),
        ("using password Tq4mmRv8 for the admin user", "Tq4mmRv8"),
        ("password               Tq4mmRv8Zx", "Tq4mmRv8Zx"),
    ] {
        hidden(line, secret);
    }
    // Alone on a line, the line announcing it gone.
    let r = Redactor::default();
    for (line, secret) in [
        ("Tq4*mmRv8=Zx2_Kp", "Tq4*mmRv8=Zx2_Kp"),
        ("  Tq4_mm-Rv8=Zx2Kp+", "Tq4_mm-Rv8=Zx2Kp+"),
        ("ci-1  | 0a1b2c3d4e5f60718293a4b5c6d7e8f9", "0a1b2c3d4e5f60718293a4b5c6d7e8f9"),
        ("2026-01-02T03:04:05.678Z Tq4*mmRv8=Zx2_Kp", "Tq4*mmRv8=Zx2_Kp"),
    ] {
        let (out, n) = r.lines().redact(line);
        assert!(!out.contains(secret) && n == 1, "{line:?} -> {out:?}");
    }
    lines_untouched(&[
        "New value: 30",
        "password authentication failed for user app",
        "secret rotation complete",
        "HOSTNAME=9c2e4b7d1a0f",
        "LOG_FORMAT=json-Lines2",
        "Ready",
        "PONG",
        "7d3f0e2c9b8a4f61a0b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718",
        "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9",
        "Started in 3.2s",
        "  Release-2026.01_RC2",
        "web-1  | Build_2026_Release1",
        "Reloading secret app-config-v12",
        "POST /v1/auth/token HTTP/1.1 200",
        "GET /password/reset HTTP/2 302",
    ]);
}

#[test]
fn more_vendor_formats() {
    for token in [
        format!("AC{}", hex(32)),
        format!("eyJ2ZXIiOiI4LjE0LjAiLCJhZHIiOlsiMTcyLjE4LjAuMjo5MjAwIl0s{}", fake(60)),
        format!("gsk_{}", fake(52)),
        format!("r8_{}", fake(37)),
        format!("pplx-{}", fake(48)),
        format!("xai-{}", fake(80)),
        format!("pcsk_{}_{}", fake(5), fake(60)),
        format!("tskey-auth-{}-{}", fake(12), fake(30)),
        format!("pscale_tkn_{}", fake(43)),
        format!("ntn_{}", fake(46)),
        format!("pat{}.{}", fake(14), hex(64)),
        format!("figd_{}", fake(40)),
        format!("CFPAT-{}", fake(43)),
        format!("bkua_{}", hex(40)),
        format!("CCIPAT_{}_{}", fake(22), hex(40)),
        format!("nfp_{}", fake(36)),
        format!("fo1_{}", fake(43)),
        format!("sb_secret_{}", fake(31)),
        format!("dapi{}", hex(32)),
        format!("xkeysib-{}-{}", hex(64), fake(16)),
        format!("rubygems_{}", hex(48)),
        format!("EAA{}", fake(120)),
    ] {
        hidden(&format!("token {token} loaded"), &token);
        hidden(&format!("{{\"k\":\"{token}\"}}"), &token);
    }
    let id = hex(40);
    hidden(&format!(r#"  "private_key_id": "{id}","#), &id);
    hidden(&format!(r#"{{\"private_key_id\":\"{id}\"}}"#), &id);
    hidden(&format!("aws_secret_access_key     {}", fake(40)), &fake(40));
    lines_untouched(&[
        "ACCEPTED 12 requests",
        &format!("AC{}", "0".repeat(31)),
        "patch applied to 3 files",
        "r8_ is a prefix",
        "dapi client ready",
        &format!("{{\"client_id\": \"{}\"}}", hex(21)),
    ]);
}

#[test]
fn key_bodies_after_a_log_prefix_at_any_width() {
    let r = Redactor::default();
    for line in [
        format!("app-1  | {}", fake(76)),
        format!("2026-01-02T03:04:05.678901234Z {}", fake(52)),
        format!("2026-01-02T03:04:05Z worker.1 | {}==", fake(58)),
    ] {
        let (out, n) = r.lines().redact(&line);
        assert!(!out.contains(&fake(40)) && n == 1, "{line} -> {out}");
    }
    // A header's base64 value is not a key body.
    lines_untouched(&[&format!("x-amz-id-2: {}", fake(76)), &format!("ETag: {}", fake(44))]);
}

#[test]
fn a_rule_may_apply_only_within_a_context() {
    let rules =
        load("[[rule]]\nname = 'r'\nwithin = 'begin[^;]*'\npattern = 'x=(?P<s>[a-z0-9]+)'\nsecret = 's'\n").unwrap();
    let r = &rules[0];
    let mut text = "x=a1 begin x=b2 x=c3; x=d4 begin x=e5".to_owned();
    let mut n = 0;
    super::replace(r, &mut text, &mut n);
    assert_eq!((text.as_str(), n), ("x=a1 begin x=[REDACTED] x=[REDACTED]; x=d4 begin x=[REDACTED]", 3));
    let err = load("[[rule]]\nname = 'r'\nwithin = '(unclosed'\npattern = 'x'\n").unwrap_err();
    assert!(err.contains("within"), "{err}");
    let err = load("[[rule]]\nname = 'r'\nwithin = '<NOPE>'\npattern = 'x'\n").unwrap_err();
    assert!(err.contains("unknown part <NOPE>"), "{err}");
}

#[test]
fn wrapped_values_sql_functions_plans_and_prompts() {
    for (line, secret) in [
        ("ok: [db] => (item={u'name': u'app', u'password': u'Tq4-mmRv8'})", "Tq4-mmRv8"),
        ("Settings(api_token=SecretStr('Tq4-mmRv8'), debug=False)", "Tq4-mmRv8"),
        ("{:password=>Secret.new(\"Tq4-mmRv8\")}", "Tq4-mmRv8"),
        (r#"<entry key="mail.smtp.password">Tq4-mmRv8</entry>"#, "Tq4-mmRv8"),
        (r#"<setting name="ApiToken" serializeAs="String">Tq4-mmRv8</setting>"#, "Tq4-mmRv8"),
        ("SET PASSWORD FOR 'app'@'%' = PASSWORD('Tq4-mmRv8');", "Tq4-mmRv8"),
        (r#"      ~ admin_password = (sensitive value) -> "Tq4-mmRv8""#, "Tq4-mmRv8"),
        ("useradd -m -p '$6$Tq4mmRv8$abcdef' deploy", "$6$Tq4mmRv8$abcdef"),
        ("127.0.0.1:6379> AUTH Tq4-mmRv8", "Tq4-mmRv8"),
        ("AUTH default Tq4-mmRv8", "Tq4-mmRv8"),
    ] {
        hidden(line, secret);
    }
    lines_untouched(&[
        r#"<entry key="mail.smtp.host">smtp.example.org</entry>"#,
        r#"      ~ instance_type = "t3.small" -> "t3.large""#,
        "ERR AUTH <password> called without any password configured for the default user.",
        "password(): deprecated",
        "useradd -m deploy",
        "(error) NOAUTH Authentication required.",
    ]);
}

// ------------------------------------------------------------------------
// Families added with the second tuning set and from vendors' documented
// credential formats: each example made up (`fake`, `hex`), none taken
// from a corpus.

fn lower(n: usize) -> String {
    fake(n).to_ascii_lowercase()
}

fn upper(n: usize) -> String {
    fake(n).to_ascii_uppercase()
}

#[test]
fn an_aws_secret_shortly_after_its_key_id() {
    let secret = fake(40);
    for line in [
        // The Go SDK's static credentials provider, in an error.
        format!("using static credentials provider (AKID \"AKIAZX8QM2LP5RT7WN4K\", secret \"{secret}\"): denied"),
        format!("| AKIAZX8QM2LP5RT7WN4K | {secret} | active |"),
        format!("access_key_id=AKIAZX8QM2LP5RT7WN4K region=eu-west-1 key {secret}"),
    ] {
        let out = hidden(&line, &secret);
        assert!(!out.contains("AKIAZX8QM2LP5RT7WN4K"), "{out}");
    }
    // A commit (40 hexadecimal digits) near a key id is not its secret.
    let sha = hex(40);
    let (out, _) = redact(&format!("AKIAZX8QM2LP5RT7WN4K rotated in commit {sha}"));
    assert!(out.contains(&sha), "{out}");
}

#[test]
fn basic_credentials_given_to_http_clients() {
    let token = hex(32);
    for (line, secret) in [
        (format!("auth=(\"AC{}\", \"{token}\")", hex(32)), token.as_str()),
        (format!("client = Client('AC{}', '{token}')", hex(32)), token.as_str()),
        (format!("curl -u AC{}:{token} https://api.twilio.com/", hex(32)), token.as_str()),
        ("requests.get(url, auth=('ops', 'Tq4-mmRv8'))".to_owned(), "Tq4-mmRv8"),
        ("session.auth = HTTPBasicAuth(\"ops\", \"Tq4-mmRv8\")".to_owned(), "Tq4-mmRv8"),
        ("HTTPDigestAuth(user, 'Tq4-mmRv8')".to_owned(), "Tq4-mmRv8"),
        ("aiohttp.BasicAuth(login=\"ops\", password=\"Tq4-mmRv8\")".to_owned(), "Tq4-mmRv8"),
    ] {
        hidden(&line, secret);
    }
    lines_untouched(&[
        "requests.get(url, auth=(user, password))",
        "auth=(\"ops\", \"\")",
        "HTTPBasicAuth is deprecated, use auth=",
        &format!("GET /2010-04-01/Accounts/{{sid}}/Messages/SM{}.json 200", hex(32)),
    ]);
}

#[test]
fn sentry_dsns() {
    let key = hex(32);
    for line in [
        format!("SENTRY_DSN=https://{key}@o4504012345.ingest.us.sentry.io/4508765432"),
        format!("sentry_sdk.init(dsn=\"https://{key}@o12.ingest.de.sentry.io/42\")"),
        format!("  dsn: https://{key}:{}@sentry.example.org/14", hex(31) + "a"),
        format!("SENTRY_DSN=http://{key}@sentry.internal:9000/3"),
    ] {
        let out = hidden(&line, &key);
        assert!(!out.contains(&(hex(31) + "a")), "{out}");
    }
    lines_untouched(&[
        "see https://sentry.io/organizations/acme/issues/4508765432/",
        "POST https://o4504012345.ingest.us.sentry.io/api/4508765432/envelope/ 200",
        &format!("event {key} sent to project 42"),
    ]);
}

#[test]
fn headers_inside_an_escaped_request_dump() {
    let value = hex(64);
    hidden(
        &format!(r"DumpRequest: POST /hook HTTP/1.1\r\nHost: ci\r\nX-Webhook-Secret: {value}\r\nContent-Length: 2\r\n"),
        &value,
    );
    hidden(&format!(r#"{{"log":"config loaded\nAPI_TOKEN={value}\n"}}"#), &value);
    // A key-named file in a Windows path is no assignment.
    lines_untouched(&[
        r"C:\ProgramData\app\api.key: access is denied",
        r"\\fileserver\certs\tls.key: The network path was not found",
    ]);
}

#[test]
fn cookies_and_session_ids() {
    let sid = lower(26);
    for line in [
        format!("request cookies: PHPSESSID={sid}; _ga=GA1.1.123.456"),
        format!("cookies={{'sessionid': '{sid}', 'csrftoken': 'x'}}"),
        format!("GET /shop/cart;jsessionid={} HTTP/1.1", upper(32)),
        format!("jar: laravel_session={sid}"),
        format!("Set-Cookie: __Host-session={sid}; Path=/; Secure; HttpOnly"),
        format!("Set-Cookie: _shop_session={sid}; path=/"),
    ] {
        let (out, n) = redact(&line);
        assert!(!out.contains(&sid) && !out.contains(&upper(32)) && n >= 1, "{line} -> {out}");
    }
    lines_untouched(&[
        "Set-Cookie: session=; Max-Age=0; Path=/",
        "Set-Cookie: theme=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/",
        "cookies: 3 set, 0 rejected",
        "cookies: disabled in this browser",
        "assumed role session=ci-2231 for arn:aws:iam::123456789012:role/deploy",
        "sessionid cookie missing",
    ]);
}

#[test]
fn passwords_of_more_command_lines() {
    for (line, secret) in [
        ("/opt/mssql-tools18/bin/sqlcmd -S localhost -U sa -P 'Tq4-mmRv8' -C -Q 'SELECT 1'", "Tq4-mmRv8"),
        ("bcp dbo.orders out orders.dat -S db -U sa -PTq4-mmRv8 -c", "Tq4-mmRv8"),
        ("tsql -H db -p 1433 -U sa -P Tq4-mmRv8", "Tq4-mmRv8"),
        ("mosquitto_pub -h broker -u sensor -P Tq4-mmRv8 -t t -m 1", "Tq4-mmRv8"),
        ("ipmitool -I lanplus -H 10.0.0.9 -U admin -P Tq4-mmRv8 chassis status", "Tq4-mmRv8"),
        ("unzip -P Tq4-mmRv8 backup.zip", "Tq4-mmRv8"),
        ("cqlsh cassandra 9042 -u cassandra -p Tq4-mmRv8", "Tq4-mmRv8"),
        ("rabbitmqadmin -H mq -u admin -p Tq4-mmRv8 list queues", "Tq4-mmRv8"),
        ("rdesktop -u admin -p Tq4-mmRv8 winhost", "Tq4-mmRv8"),
        ("ss-server -s 0.0.0.0 -p 8388 -k Tq4-mmRv8 -m aes-256-gcm", "Tq4-mmRv8"),
        ("/usr/bin/ssserver -s [::]:8388 -k 'Tq4 mmRv8' -m chacha20-ietf-poly1305", "Tq4 mmRv8"),
        ("openssl enc -aes-256-cbc -k Tq4-mmRv8 -in a -out a.enc", "Tq4-mmRv8"),
        ("xfreerdp /v:rdp.example.org /u:ops /p:Tq4-mmRv8 /cert:ignore", "Tq4-mmRv8"),
        ("xfreerdp /v:h /u:ops /gp:Tq4-mmRv8 /g:gw", "Tq4-mmRv8"),
        ("wfreerdp /v:h /u:ops /pth:3f9a0c7e51b2d8643f9a0c7e51b2d864", "3f9a0c7e51b2d8643f9a0c7e51b2d864"),
        (r"net use Z: \\files\share Tq4-mmRv8 /user:CORP\ops", "Tq4-mmRv8"),
        ("ngrok config add-authtoken 2Tq4mmRv8Zx2Kp_3Tq4mmRv8Zx2Kp9", "2Tq4mmRv8Zx2Kp_3Tq4mmRv8Zx2Kp9"),
        ("./ngrok authtoken 2Tq4mmRv8Zx2Kp_3Tq4mmRv8Zx2Kp9", "2Tq4mmRv8Zx2Kp_3Tq4mmRv8Zx2Kp9"),
        ("ngrok http 80 --authtoken 2Tq4mmRv8Zx2Kp_3Tq4mmRv8Zx2Kp9", "2Tq4mmRv8Zx2Kp_3Tq4mmRv8Zx2Kp9"),
        ("curl --oauth2-bearer Tq4mmRv8Zx2Kp https://api", "Tq4mmRv8Zx2Kp"),
        ("kubeadm join cp:6443 --control-plane --certificate-key 3f9a0c7e51b2d864", "3f9a0c7e51b2d864"),
        ("app --dbpassword Tq4-mmRv8 --port 80", "Tq4-mmRv8"),
    ] {
        hidden(line, secret);
    }
    // Both of SNMPv3's passphrases.
    hides(
        "snmpwalk -v3 -l authPriv -u mon -a SHA -A Tq4-mmRv8 -x AES -X Zx2-kpQ7w 10.0.0.1",
        &["Tq4-mmRv8", "Zx2-kpQ7w"],
        2,
    );
    lines_untouched(&[
        "sqlcmd -S localhost -U sa -Q \"SELECT 1\"",
        "mosquitto_sub -h broker -t 'sensors/#' -v",
        "ssserver -c /etc/shadowsocks-rust/config.json",
        "xfreerdp /v:rdp.example.org /u:ops /cert:ignore",
        "snmpwalk -v2c -c public 10.0.0.1 system",
        "ipmitool -I lanplus -H bmc -U admin sdr list",
        "unzip -o release.zip -d /srv",
        "openssl enc -d -aes-256-cbc -in a.enc -pass file:/run/secrets/k",
        "ngrok http 8080",
        r"net use Z: \\files\share /persistent:yes",
        "rabbitmqadmin list queues",
    ]);
}

#[test]
fn netrc_and_pgpass_lines() {
    let r = Redactor::default();
    for (line, secret) in [
        ("password Zx8$q!mR3vT", "Zx8$q!mR3vT"),
        ("  password Tq4#mm^Rv8", "Tq4#mm^Rv8"),
        ("db.example.org:5432:shop:app:Tq4-mm:Rv8", "Tq4-mm:Rv8"),
        ("*:*:*:replicator:Tq4mmRv8", "Tq4mmRv8"),
        ("10.0.0.5:*:*:ops:Tq4-mmRv8", "Tq4-mmRv8"),
        ("db-1  | localhost:5432:*:postgres:Tq4-mmRv8", "Tq4-mmRv8"),
    ] {
        let (out, n) = r.lines().redact(line);
        assert!(!out.contains(secret) && n == 1, "{line} -> {out}");
    }
    lines_untouched(&[
        "password required",
        "password changed for user ops",
        "root:x:0:0:root:/root:/bin/bash",
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin",
        "12:30:45 worker started",
        "redis:6379 is up",
    ]);
}

#[test]
fn password_hashes() {
    for hash in [
        format!("$2b$12${}", fake(53)),
        format!("$2y$05${}", fake(53)),
        format!("$6${}${}", fake(16), fake(86)),
        format!("$5$rounds=5000${}${}", fake(16), fake(43)),
        format!("$1${}${}", fake(8), fake(22)),
        format!("$apr1${}${}", fake(8), fake(22)),
        format!("$y$j9T${}${}", fake(22), fake(43)),
        format!("$argon2id$v=19$m=65536,t=3,p=4${}${}", fake(22), fake(43)),
        format!("$scrypt$ln=16,r=8,p=1${}${}", fake(22), fake(43)),
        format!("$pbkdf2-sha256$29000${}${}", fake(22), fake(43)),
        format!("pbkdf2_sha256$870000${}${}=", fake(22), fake(43)),
        format!("scrypt:32768:8:1${}${}", fake(16), hex(128)),
        format!("pbkdf2:sha256:600000${}${}", fake(16), hex(64)),
        format!("SCRAM-SHA-256$4096:{}==${}=:{}=", fake(22), fake(43), fake(43)),
        format!("md5{}", hex(32)),
        format!("{{SSHA}}{}", fake(32)),
    ] {
        for line in [format!("admin:{hash}"), format!("INSERT INTO users VALUES ('ops', '{hash}')")] {
            hidden(&line, &hash);
        }
    }
    let shadow = format!("root:$6${}${}:19523:0:99999:7:::", fake(16), fake(86));
    assert!(hidden(&shadow, &fake(86)).ends_with(":19523:0:99999:7:::"));
    lines_untouched(&[
        "UPDATE users SET password_hash = $1, updated_at = now() WHERE id = $2",
        "echo $1 $2 $6",
        "save $5 on your next order",
        &format!("sha256:{}", hex(64)),
        &format!("md5: {}", hex(32)),
        "pbkdf2 iterations raised to 600000",
        "hashing passwords with argon2id (m=65536, t=3, p=4)",
        "host all all all scram-sha-256",
    ]);
}

#[test]
fn key_bodies_in_the_cri_log_format() {
    let r = Redactor::default();
    for line in [
        format!("2026-01-02T03:04:05.123456789Z stdout F {}", fake(64)),
        format!("2026-01-02T03:04:05.123456789Z stderr F {}==", fake(30)),
        format!("{}=", fake(27)),
    ] {
        let (out, n) = r.lines().redact(&line);
        assert!(!out.contains(&fake(27)) && n == 1, "{line} -> {out}");
    }
    lines_untouched(&[
        "2026-01-02T03:04:05.123456789Z stdout F Started server on :8080",
        "2026-01-02T03:04:05.123456789Z stdout P partial line",
        "dGVzdA==",
        "abcdefghijklmnopqrstuvwx==",
    ]);
}

#[test]
fn placeholders_where_a_secret_would_go() {
    lines_untouched(&[
        "Authorization: Bearer <token>",
        "Authorization: Bearer ${API_TOKEN}",
        "  -H 'Authorization: Bearer $TOKEN'",
        "Authorization: Basic {{ .Values.basicAuth }}",
        "token: <your-token-here>",
        "password=xxxxxxxx",
        "PASSWORD=XXXXXXXX",
        "password: !vault |",
        "auth_token: !!null",
        "password: ~",
        "password=%(DB_PASSWORD)s",
        "password_hash=<omitted>",
        "token: {token}",
        "token={TOKEN}",
        "SELECT id FROM users WHERE api_key_hash = ? LIMIT 1",
        "UPDATE accounts SET token = :token WHERE id = :id",
        "WHERE password = @password",
        "ENABLE_API_KEY_AUTH=1",
        "REQUIRE_CLIENT_SECRET=0",
        "admin password: (not set)",
        "db password: (see /run/secrets/db)",
    ]);
    // Brackets around a random value, or ODBC's braces, hold a secret.
    hidden("password: <Tq4-mmRv8>", "Tq4-mmRv8");
    hidden("Driver={ODBC Driver 18 for SQL Server};Server=db;UID=sa;PWD={Tq4;mm}}Rv8};", "Tq4;mm}}Rv8");
    hidden("Server=db;User Id=sa;Password=\"Tq4;mmRv8\";", "Tq4;mmRv8");
}

#[test]
fn nonces_and_public_keys_named_like_keys() {
    lines_untouched(&[
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
        "added authorized key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ops@bastion",
        "host key: ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTY=",
    ]);
}

#[test]
fn configuration_dumps_keys_and_connection_strings() {
    for (line, secret) in [
        // Spring Boot's actuator.
        (
            r#"{"name":"applicationConfig","properties":{"spring.datasource.password":{"value":"Tq4-mmRv8","origin":"class path resource [application.yml] - 7:17"}}}"#,
            "Tq4-mmRv8",
        ),
        (r#""DB_PASSWORD":{"value":"Tq4-mmRv8","origin":"System Environment Property \"DB_PASSWORD\""}"#, "Tq4-mmRv8"),
        // A JSON Web Key's private members.
        (
            &format!(r#"{{"kty":"RSA","e":"AQAB","n":"{}","d":"{}","p":"{}"}}"#, lower(86), fake(43), fake(44)),
            &fake(43),
        ),
        (&format!(r#"{{"kty":"oct","alg":"HS256","k":"{}"}}"#, fake(43)), &fake(43)),
        (&format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{}","d":"{}"}}"#, hex(43), fake(42)), &fake(42)),
        // A kubeconfig's client key, whatever its kind.
        (&format!("    client-key-data: {}", fake(120)), &fake(120)),
        // Oracle, SQL Server and Snowflake connection strings.
        ("jdbc:oracle:thin:scott/Tq4-mmRv8@//db:1521/ORCLPDB1", "Tq4-mmRv8"),
        ("jdbc:sqlserver://db:1433;databaseName=shop;user=sa;password=Tq4-mmRv8;encrypt=true", "Tq4-mmRv8"),
        ("jdbc:snowflake://acct.snowflakecomputing.com/?user=app&password=Tq4-mmRv8&warehouse=wh", "Tq4-mmRv8"),
        ("snowflake://app:Tq4-mmRv8@acct-eu/db/public", "Tq4-mmRv8"),
        // PagerDuty's integration key.
        (&format!(r#"{{"routing_key": "{}", "event_action": "trigger"}}"#, lower(32)), &lower(32)),
        // Digest and SigV4 credentials as clients log them.
        (
            r#"Authorization: Digest username="ops", realm="api", nonce="dcd98b71", uri="/", response="6629fae49393a05397450978507c4ef1""#,
            "6629fae49393a05397450978507c4ef1",
        ),
        (
            "{'Authorization': 'AWS4-HMAC-SHA256 Credential=AKIAZX8QM2LP5RT7WN4K/20260102/eu-west-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=3f9a0c7e51b2d864'}",
            "3f9a0c7e51b2d864",
        ),
        (&format!("X-Amz-Security-Token: IQoJb3JpZ2luX2VjE{}", fake(60)), &fake(60)),
        ("Authorization: GenieKey 0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9", "0a1b2c3d-4e5f"),
        ("Authorization: SSWS 00Tq4mmRv8Zx2Kp", "00Tq4mmRv8Zx2Kp"),
        // An OAuth authorization code, an Azure Functions key.
        ("GET /oauth/callback?code=4/0AX4XfWhTq4mmRv8Zx2Kp&state=af0ifjsldkj", "4/0AX4XfWhTq4mmRv8Zx2Kp"),
        ("POST https://fn.azurewebsites.net/api/hook?code=Tq4mmRv8Zx2Kp9Tq4mmRv8Zx2Kp9%3D%3D", "Tq4mmRv8Zx2Kp9"),
    ] {
        hidden(line, secret);
    }
    lines_untouched(&[
        r#""spring.datasource.url":{"value":"jdbc:postgresql://db:5432/shop","origin":"env"}"#,
        r#""spring.datasource.password":{"value":"******","origin":"env"}"#,
        &format!(r#"{{"keys":[{{"kty":"RSA","kid":"k1","use":"sig","e":"AQAB","n":"{}"}}]}}"#, fake(86)),
        &format!(r#"{{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}}"#, fake(43), hex(43)),
        &format!("    client-certificate-data: {}", fake(120)),
        "jdbc:oracle:thin:@//db:1521/ORCLPDB1",
        "routing_key=orders.created",
        "WWW-Authenticate: Digest realm=\"api\", qop=\"auth\", nonce=\"dcd98b7102dd2f0e\"",
        "GET /callback?code=invalid_request&state=x 400",
        "GET /status?code=200",
    ]);
}

#[test]
fn putty_and_ssh2_private_keys() {
    let ppk = format!(
        "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: ops\nPublic-Lines: 2\n{}\n{}\nPrivate-Lines: 2\n{}\n{}\nPrivate-MAC: {}\nok",
        fake(64),
        fake(12),
        lower(64),
        lower(10),
        hex(64)
    );
    let (out, n) = redact(&ppk);
    assert!(out.contains(&fake(64)) && out.contains(&fake(12)), "the public lines stay: {out}");
    assert!(!out.contains(&lower(64)) && !out.contains(&lower(10)), "{out}");
    assert!(out.ends_with("\nok"), "{out}");
    assert_eq!(n, 1);
    // A log's lines one by one, after a compose prefix or not.
    let r = Redactor::default();
    let mut lines = r.lines();
    let out: Vec<String> = ppk.lines().map(|l| lines.redact(l).0).collect();
    assert_eq!(out[4], fake(64));
    assert_eq!(out[7], MARK);
    assert_eq!(out[8], MARK);
    assert_eq!(out[10], "ok");
    // ssh.com's format.
    let ssh2 = format!(
        "---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----\nComment: \"ops\"\n{}\n---- END SSH2 ENCRYPTED PRIVATE KEY ----\nok",
        fake(70)
    );
    assert_eq!(hides(&ssh2, &[&fake(70)], 1), "[REDACTED]\nok");
    untouched("---- BEGIN SSH2 PUBLIC KEY ----");
}

#[test]
fn more_vendor_token_formats() {
    for token in [
        format!("hcxik_{}", fake(58)),
        format!("hcamk_{}", fake(26)),
        format!("cmVmdGtuOjAxOjE3{}", fake(48)),
        format!("AKCp{}", fake(69)),
        format!("ops_eyJzaWduSW5BZGRyZXNzIjoi{}", fake(200)),
        "A3-TQ4MMR-ZX2KPQ-7WN4K-D9HS3-VB6GC-1JF0T".to_owned(),
        format!("rnd_{}", fake(24)),
        format!("pat-na1-{}-{}-{}-{}-{}", hex(8), hex(4), hex(4), hex(4), hex(12)),
        format!("sl.{}", fake(140)),
        format!("{}AZDO{}", fake(76), fake(4)),
        format!("00D{}!{}", fake(15), fake(96)),
        format!("access_token$production${}${}", lower(16), hex(32)),
        format!("oauth:{}", lower(30)),
        format!("oy2{}", lower(43)),
        format!("sk.eyJ1Ijoib3BzIiwiYSI6{}.{}", fake(20), fake(22)),
        format!("EAAA{}", fake(60)),
        format!("ABSKQmVkcm9ja0FQSUtleS{}", fake(100)),
        format!("bedrock-api-key-{}", fake(200)),
        format!("v1.0-{}-{}", hex(24), hex(146)),
        format!("eyJhIjoi{}", fake(120)),
        format!("LTAI{}", fake(20)),
        format!("AKID{}", fake(32)),
        format!("SCW{}", upper(17)),
        format!("lsv2_pt_{}_{}", hex(32), hex(10)),
        format!("squ_{}", hex(40)),
        format!("sgp_{}", fake(64)),
        format!("cio{}", fake(32)),
        format!("CLOJARS_{}", lower(60)),
        format!("napi_{}", lower(64)),
        format!("FLWSECK-{}-X", hex(32)),
        format!("EZAK{}", fake(54)),
        format!("shippo_live_{}", hex(40)),
        format!("tfp_{}", fake(59)),
        format!("md-{}", fake(22)),
        format!("NRII-{}", fake(32)),
        format!("NRIQ-{}", fake(32)),
        format!("{}NRAL", hex(36)),
    ] {
        hidden(&format!("token {token} loaded"), &token);
        hidden(&format!("{{\"k\":\"{token}\"}}"), &token);
    }
    lines_untouched(&[
        "hcaik_ is the prefix of ingest keys",
        "oauth:2 flow selected",
        "GET https://sl.example.com/status 200",
        "pat-na1- tokens are private app tokens",
        "SCWATCHER started",
        "class md-button md-primary",
        "LTAI prefix",
        "AKID \"AKIA\" in message",
        "NRAK is a user key prefix",
        "eyJhbGciOiJSUzI1NiJ9 is a header",
    ]);
}
