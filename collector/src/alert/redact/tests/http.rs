//! HTTP: Authorization headers, cookies, request dumps and protocol traces.

use super::*;

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
fn basic_authentication_objects() {
    let s = format!("{}/{}=", fake(20), fake(10));
    hidden(&format!("trino.dbapi.connect(host='trino', user='hana', auth=BasicAuthentication('hana', '{s}'))"), &s);
    untouched("auth=BasicAuthentication(user, password)");
}
