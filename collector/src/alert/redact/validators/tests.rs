use super::*;

#[test]
fn words_split_on_separators_and_humps() {
    assert_eq!(words("DB_PASSWORD"), ["db", "password"]);
    assert_eq!(words("primaryKey"), ["primary", "key"]);
    assert_eq!(words("-Dssl.keyStorePassword"), ["dssl", "key", "store", "password"]);
    assert_eq!(words("x-api-key"), ["x", "api", "key"]);
}

#[test]
fn values_that_hold_no_secret() {
    for (key, value) in [
        ("PWD", "/home/app"),
        ("OLDPWD", "/"),
        ("pwd", "~/src"),
        ("GOOGLE_APPLICATION_CREDENTIALS", "/secrets/sa.json"),
        ("SSL_KEY", "/etc/ssl/private/server.key"),
        ("DB_PASSWORD", "${DB_PASSWORD}"),
        ("DB_PASSWORD", "$DB_PASSWORD"),
        ("DB_PASSWORD", "%DB_PASSWORD%"),
        ("MYSQL_RANDOM_ROOT_PASSWORD", "yes"),
        ("ssl.truststore.password", "null"),
        ("password", "(sensitive"),
        ("password", "<redacted>"),
        ("ROUTING_KEY", "orders.created"),
        ("primaryKey", "id"),
        ("GPG_KEY", "A035C8C19219BA821ECEA86B64E628F8D684696D"),
        ("KMS_KEY", "arn:aws:kms:eu-west-1:123456789012:key/abc"),
        ("SSH_KEY", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ci"),
        ("password", "xxxxxxxx"),
        ("password", "********"),
        ("token", "<your-token-here>"),
        ("token", "<TOKEN>"),
        ("token", "{token}"),
        ("password", "%(DB_PASSWORD)s"),
        ("password_hash", "$1"),
        ("api_key_hash", "?"),
        ("token", ":token"),
        ("password", "@password"),
        ("password", "!vault |"),
        ("auth_token", "!!null"),
        ("password", "~"),
        ("password", "(not set)"),
        ("ENABLE_API_KEY_AUTH", "1"),
        ("password", "file:/run/secrets/db"),
        ("password", "env:DB_PASSWORD"),
        ("DB_PASSWORD", "op://prod/db/password"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ] {
        assert!(!assigned_value(key, value), "{key}={value} is no secret");
    }
    for (key, value) in [
        ("PWD", "s3cr3t"),
        ("DB_PWD", "/Xk9aB3"),
        ("PWD", "hunter2 x"),
        ("DB_PASSWORD", "/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        ("DB_PASSWORD", "$ecret1"),
        ("MASTER_KEY", "0123456789abcdef"),
        ("apiKey", "abc"),
        ("password", "hunter2"),
        ("password", "{p@ss;w0rd}"),
        ("password", "<Tq4-mmRv8>"),
        ("password", "(Tq4-mmRv8)"),
        ("token", "x1"),
        ("password", "$ecret"),
        ("password", "Xxxxxxxx1"),
    ] {
        assert!(assigned_value(key, value), "{key}={value} is a secret");
    }
}

#[test]
fn windows_paths_and_escaped_line_breaks() {
    assert!(windows_path(r"open C:\app\certs\"));
    assert!(windows_path(r"\\files\certs\"));
    assert!(!windows_path(r"POST /hook HTTP/1.1\r\nHost: ci\r\"));
    assert!(!windows_path("a/"));
}

#[test]
fn cookies_that_are_set_or_cleared() {
    assert!(sets_a_cookie("sid=Tq4mmRv8; Path=/"));
    assert!(sets_a_cookie("theme=dark"));
    assert!(sets_a_cookie("Tq4mmRv8Zx2Kp9"));
    assert!(!sets_a_cookie("session=; Max-Age=0; Path=/"));
    assert!(!sets_a_cookie("consent"));
}

#[test]
fn ports_and_paths_are_not_url_passwords() {
    assert!(port_and_path("8080/users/a"));
    assert!(!port_and_path("123456"));
    assert!(!port_and_path("pa/ss"));
}
