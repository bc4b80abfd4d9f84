//! Assignments of secret-named keys: env, JSON, YAML, object dumps, name/value pairs; placeholders left alone.

use super::*;

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
fn configuration_paths_pins_and_variables_set_to_a_secret() {
    let s = fake(32);
    for text in [
        format!("Configuration value OvhConsumerKey:OvhConsumerKey = {s}"),
        format!("[DBG] Configuration value Box:DeveloperToken = {s}"),
        format!(r#"config: user=uma pin = "{s}" (source: env)"#),
        format!("DEBUG dump host=db 'pin': '{s}' (source: vault)"),
        format!(r#"connecting with pin:\"{s}\" (source: /etc/app/config.yaml)"#),
        format!("params region=eu set smtp_pass to {s}"),
        format!("resolved settings: set apiKey to {s} request_id=1"),
        format!("params host=db masterPassword is {}$q", fake(12)),
        format!("changed: [web6] => (item={{'key': 'DB_PASSWORD', 'value': '{s}'}})"),
        format!("host=db <encryptionKey>{s}</encryptionKey> request_id=1"),
        format!(r#"{{"msg":"authentication failed for salesforce_client_secret \"{s}\": invalid credentials"}}"#),
        format!("WARN Api-Key header '{s}' not found in key store"),
    ] {
        let secret = if text.contains("masterPassword") { format!("{}$q", fake(12)) } else { s.clone() };
        hidden(&text, &secret);
    }
    lines_untouched(&[
        "Configuration value Logging:LogLevel = Information",
        "Configuration value Cache:RoutingKey = orders",
        "pin-sha256=\"xZeBxdAsEo/mIQGIVkooQ2sJ4mJc=\"",
        "pin: true",
        "set password to expire in 30 days",
        "apiKey is required",
        "changed: [web6] => (item={'key': 'LOG_LEVEL', 'value': 'debug'})",
        "<primaryKey>id</primaryKey>",
        r#"{"name": "LOG_LEVEL", "value": "debug"}"#,
    ]);
}

#[test]
fn go_json_escapes_of_separators() {
    let (code, verifier, pw) = (fake(40), fake(43), fake(21));
    let body = format!(
        r#"{{"body":"grant_type=authorization_code\u0026code={code}\u0026code_verifier={verifier}\u0026client_id=web"}}"#
    );
    let out = hidden(&body, &code);
    assert!(!out.contains(&verifier) && out.contains(r"\u0026client_id=web"), "{out}");
    let out = hidden(&format!(r#"{{"msg":"loaded [reports] :password =\u003e \"{pw}\" timeout=30s"}}"#), &pw);
    assert!(out.contains(r"=\u003e"), "{out}");
    lines_untouched(&[r#"{"msg":"a \u003c b \u0026\u0026 c \u003e d","code":"E1"}"#]);
}
