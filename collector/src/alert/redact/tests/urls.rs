//! Passwords in URLs, connection strings, DSNs and credential files.

use super::*;

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
fn urls_escaped_encoded_or_with_a_token_for_user() {
    let token = fake(32);
    // JSON-escaped slashes (PHP's json_encode).
    hidden(&format!(r#"{{"url":"rediss:\/\/:{token}@cache.example.net:6380\/0"}}"#), &token);
    // A token as the URL's user (NATS token auth).
    hidden(&format!("NATS_URL=nats://{token}@nats:4222"), &token);
    // A URL with credentials percent-encoded in another URL's parameter,
    // its password's own escapes doubled.
    let secret = format!("{}%252F{}%253D", fake(12), fake(10));
    hidden(&format!("GET /redirect?next=https%3A%2F%2Fann%3A{secret}%40api.example.net%2Fhook HTTP/1.1"), &secret);
    // An ODBC connection string percent-encoded as a parameter.
    let pwd = format!("{}%40{}%23x", fake(9), fake(8));
    hidden(&format!("create_engine('mssql+pyodbc:///?odbc_connect=DRIVER%3Dx%3BUID%3Dsa%3BPWD%3D{pwd}')"), &pwd);
    lines_untouched(&[
        // A user that is a name, not a token.
        "cloning https://deploy@git.example.com/org/repo.git",
        // A URL in a parameter without credentials: a port, not a password.
        "GET /redirect?next=https%3A%2F%2Fapi.example.net%3A8443%2Fhook%40x HTTP/1.1",
        r#"{"url":"https:\/\/example.com\/a"}"#,
        "odbc_connect=DRIVER%3Dx%3BUID%3Dsa%3BTrusted_Connection%3Dyes",
    ]);
}

#[test]
fn jaas_users_on_lines_of_their_own() {
    let (a, b) = (fake(14), format!("{}.{}", lower(8), fake(8)));
    let r = Redactor::default();
    let mut log = r.lines();
    for line in ["KafkaServer {", "  org.apache.kafka.common.security.plain.PlainLoginModule required"] {
        log.redact(line);
    }
    assert!(!log.redact(&format!("web-1  |     user_admin=\"{a}\"")).0.contains(&a));
    assert!(!log.redact(&format!("    user_sync=\"{b}\";")).0.contains(&b));
    lines_untouched(&["    user_agent=\"curl/8.5.0\" status=200", "user_id=\"42\" logged in"]);
}
