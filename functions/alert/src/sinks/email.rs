//! Email over SMTP, STARTTLS required: the server must offer it and its
//! certificate must verify (the system's roots, or `ALERT_SMTP_CA_CERT` for a
//! relay with a private CA); a server without STARTTLS gets nothing, never
//! plain text. A plain-text message: the title as the subject, the text,
//! fields and evidence as the body. Answers (RFC 5321): 2xx accepted, 4xx
//! (451 local error, 421 service not available, 452 insufficient storage)
//! retried, 5xx (550 mailbox unavailable, 535 authentication failed) final;
//! a connection or TLS failure is retried.

use std::time::Duration;

use hemostat_protocol::secret::Secret;
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::header::ContentType,
    transport::smtp::{
        authentication::Credentials,
        client::{Certificate, Tls, TlsParameters},
        extension::ClientId,
    },
};

use super::{Answer, plain_text};
use crate::{config::Smtp, error::AlertError, notice::Notice};

#[derive(Debug)]
pub struct Email {
    smtp: Smtp,
}

impl Email {
    pub fn new(smtp: Smtp) -> Self {
        Email { smtp }
    }

    fn transport(&self, timeout: Duration) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
        let mut tls = TlsParameters::builder(self.smtp.host.clone());
        if let Some(pem) = &self.smtp.ca_pem {
            let ca = Certificate::from_pem(pem).map_err(|e| format!("ALERT_SMTP_CA_CERT: {e}"))?;
            tls = tls.add_root_certificate(ca);
        }
        let tls = tls.build_rustls().map_err(|e| format!("TLS settings: {e}"))?;
        // `builder_dangerous` only means "no TLS preset": STARTTLS is then
        // required by `Tls::Required`.
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(self.smtp.host.clone())
            .port(self.smtp.port)
            .tls(Tls::Required(tls))
            .hello_name(ClientId::Domain("hemostat".into()))
            .timeout(Some(timeout));
        if let (Some(user), Some(password)) = (&self.smtp.username, &self.smtp.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        Ok(builder.build())
    }

    /// The message for `notice`.
    pub fn message(&self, notice: &Notice) -> Result<Message, AlertError> {
        let mut builder = Message::builder()
            .from(self.smtp.from.clone())
            .subject(notice.title.clone())
            .header(ContentType::TEXT_PLAIN)
            .user_agent(concat!("HemoStat-Alert/", env!("CARGO_PKG_VERSION")).into());
        for to in &self.smtp.to {
            builder = builder.to(to.clone());
        }
        builder
            .body(format!("{}\n\n-- \nHemoStat · {}\n", plain_text(notice), notice.kind))
            .map_err(|e| AlertError::Config { name: "ALERT_SMTP_TO", reason: e.to_string() })
    }

    /// One attempt, read as an [`Answer`], with the SMTP reply code (0
    /// when there was none).
    pub async fn attempt(&self, message: Message, timeout: Duration) -> (Answer, u16) {
        let transport = match self.transport(timeout) {
            Ok(t) => t,
            Err(detail) => return (Answer::Refused { detail }, 0),
        };
        match transport.send(message).await {
            Ok(_) => (Answer::Accepted, 250),
            Err(e) => {
                let code = e.status().and_then(|c| c.to_string().parse().ok()).unwrap_or(0);
                let answer = if e.is_permanent() {
                    Answer::Refused { detail: e.to_string() }
                } else if e.is_timeout() {
                    Answer::Retry { after: None, why: format!("timed out after {timeout:?}") }
                } else {
                    Answer::Retry { after: None, why: e.to_string() }
                };
                (answer, code)
            }
        }
    }

    pub fn secrets(&self) -> Vec<&Secret> {
        self.smtp.password.iter().collect()
    }
}
