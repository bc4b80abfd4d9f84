//! The redactor's tests: the rules file loads, and for each shape of
//! secret, examples hidden and near misses left alone.

use std::sync::LazyLock;

use super::{
    lines::{KEY_BEGIN, KEY_END},
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
    assert!(RULES.len() > 10);
    LazyLock::force(&KEY_BEGIN);
    LazyLock::force(&KEY_END);
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
