//! The email sink against a real SMTP server (aiosmtpd, installed by
//! scripts/python-tools.sh): STARTTLS required and the server's certificate
//! checked against a CA made with openssl for the test, AUTH, the message's
//! subject and body, and the documented answers: 250 accepted, 451 retried,
//! 550 and 535 final, an untrusted certificate never sent to.

use std::time::Duration;

use hemostat_alert::{AlertError, Config, try_sinks};
use hemostat_e2e::SmtpServer;

const USER: &str = SmtpServer::USER;
const PASSWORD: &str = SmtpServer::PASSWORD;

/// The settings of a sink sending to `to` through `server`.
fn config(server: &SmtpServer, to: &str, password: &str, trust: bool) -> Config {
    let ca = server.ca().display().to_string();
    let port = server.port.to_string();
    let env = move |name: &str| -> Option<String> {
        match name {
            "ALERT_SMTP_HOST" => Some("127.0.0.1".into()),
            "ALERT_SMTP_PORT" => Some(port.clone()),
            "ALERT_SMTP_USERNAME" => Some(USER.into()),
            "ALERT_SMTP_PASSWORD" => Some(password.into()),
            "ALERT_SMTP_FROM" => Some("HemoStat <hemostat@example.com>".into()),
            "ALERT_SMTP_TO" => Some(to.into()),
            "ALERT_SMTP_CA_CERT" if trust => Some(ca.clone()),
            "ALERT_HTTP_TIMEOUT" => Some("3s".into()),
            "ALERT_RETRY_BASE" => Some("100ms".into()),
            _ => None,
        }
    };
    Config::from_source(&env).unwrap()
}

async fn send(config: &Config) -> Result<hemostat_alert::Delivered, AlertError> {
    let mut tried = try_sinks(config, "h1", Some("email")).await.expect("email is configured");
    tried.remove(0).result
}

#[tokio::test]
async fn a_notice_is_mailed_over_starttls_with_auth() {
    let server = SmtpServer::start();
    let config = config(&server, "ops@example.com, Oncall <oncall@example.com>", PASSWORD, true);
    assert!(!format!("{config:?}").contains(PASSWORD), "the password is a secret");
    let delivered = send(&config).await.expect("delivered");
    assert_eq!(delivered.attempts, 1);
    let got = server.received();
    assert_eq!(got.len(), 1, "{got:?}");
    let m = &got[0];
    assert_eq!(m["tls"], true, "STARTTLS before the message");
    assert_eq!(m["auth"], USER);
    assert_eq!(m["mail_from"], "hemostat@example.com");
    assert_eq!(m["rcpt_tos"], serde_json::json!(["ops@example.com", "oncall@example.com"]));
    let data = m["data"].as_str().unwrap();
    assert!(data.contains("Subject: HemoStat: notification test (h1)"), "{data}");
    assert!(data.contains("Content-Type: text/plain"), "{data}");
    assert!(data.contains("Kind: notification_test") && data.contains("this sink works"), "{data}");
}

#[tokio::test]
async fn smtp_answers_451_is_retried_550_and_535_are_final() {
    let server = SmtpServer::start();
    let busy = send(&config(&server, "busy@example.com", PASSWORD, true)).await.expect("accepted on the retry");
    assert_eq!(busy.attempts, 2, "451 once, then 250");

    let err = send(&config(&server, "refuse@example.com", PASSWORD, true)).await.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(matches!(err, AlertError::Refused { status: 550, .. }), "{shown}");

    let err = send(&config(&server, "ops@example.com", "wrong-Pa55", true)).await.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(matches!(err, AlertError::Refused { status: 535, .. }), "{shown}");
    assert!(!shown.contains("wrong-Pa55"), "{shown}");
    assert_eq!(server.received().len(), 1, "only the retried one got through");
}

#[tokio::test]
async fn an_untrusted_certificate_gets_nothing() {
    let server = SmtpServer::start();
    // The system's roots do not know the test CA: the TLS handshake fails,
    // and no message, no password is ever sent in the clear.
    let config = Config {
        max_attempts: 2,
        notify_deadline: Duration::from_secs(5),
        ..config(&server, "ops@example.com", PASSWORD, false)
    };
    let err = send(&config).await.unwrap_err();
    assert!(matches!(err, AlertError::GaveUp { attempts: 2, .. }), "{err}");
    assert!(server.received().is_empty());
}

#[test]
fn email_settings_are_checked_at_start_up() {
    let no_rcpt = |name: &str| (name == "ALERT_SMTP_HOST").then(|| "mail.example.com".to_owned());
    let err = Config::from_source(&no_rcpt).unwrap_err().to_string();
    assert!(err.contains("ALERT_SMTP_TO"), "{err}");
    let bad_to = |name: &str| match name {
        "ALERT_SMTP_HOST" => Some("mail.example.com".to_owned()),
        "ALERT_SMTP_TO" => Some("not an address".to_owned()),
        _ => None,
    };
    let err = Config::from_source(&bad_to).unwrap_err().to_string();
    assert!(err.contains("ALERT_SMTP_TO") && err.contains("not an address"), "{err}");
}
