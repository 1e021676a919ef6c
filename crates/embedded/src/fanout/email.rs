//! `email` subscriptions: a readable message per order, sent through an SMTP relay with
//! lettre (STARTTLS whenever the relay offers it), and SNS's confirmation mail.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use orderflow_core::OrderCreated;

/// How to reach the relay; from `orderflow serve --smtp-*`.
#[derive(Clone)]
pub struct SmtpConfig {
    /// `smtp://host[:port]` (STARTTLS when offered; `?tls=required` insists, `?tls=none`
    /// never), or `smtps://host[:port]` (TLS from the first byte). Credentials may be in it.
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// The sender, `orderflow <orders@example.com>` or a bare address.
    pub from: String,
    /// Extra CA certificates (PEM) to trust for the relay, besides the system's.
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("url", &redact_url(&self.url))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("redacted"));
            }
            url.to_string()
        }
        Err(_) => "<unparsable>".into(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error("--smtp-url is not a URL like smtp://host:port or smtps://host:port: {0}")]
    Url(String),
    #[error("--smtp-from is not an e-mail address: {0}")]
    From(String),
    #[error("cannot read the CA file {path}")]
    CaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up TLS for the relay")]
    Tls(#[source] lettre::transport::smtp::Error),
}

/// Sends the mails of every `email` subscription through one pooled relay connection.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

/// Decodes `%XX` escapes in the relay URL's credentials.
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

impl Mailer {
    pub fn new(config: &SmtpConfig) -> Result<Mailer, SmtpError> {
        let url = url::Url::parse(&config.url).map_err(|e| SmtpError::Url(e.to_string()))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| SmtpError::Url("no host".into()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let implicit_tls = match url.scheme() {
            "smtp" => false,
            "smtps" => true,
            other => return Err(SmtpError::Url(format!("unknown scheme {other}"))),
        };
        let port = url.port().unwrap_or(if implicit_tls { 465 } else { 25 });
        let username = config
            .username
            .clone()
            .or_else(|| (!url.username().is_empty()).then(|| percent_decode(url.username())));
        let password = config
            .password
            .clone()
            .or_else(|| url.password().map(percent_decode));
        let mode = url
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        let mut tls = TlsParameters::builder(host.clone());
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path).map_err(|source| SmtpError::CaFile {
                path: path.clone(),
                source,
            })?;
            tls = tls.add_root_certificate(Certificate::from_pem(&pem).map_err(SmtpError::Tls)?);
        }
        let tls = tls.build_rustls().map_err(SmtpError::Tls)?;
        let tls = match (implicit_tls, mode.as_deref()) {
            (true, _) => Tls::Wrapper(tls),
            (false, Some("none")) => Tls::None,
            (false, Some("required")) => Tls::Required(tls),
            // Credentials never cross the network in clear: with them, a remote relay must
            // offer STARTTLS. A relay on this machine may go without.
            (false, _) if username.is_some() && !loopback => Tls::Required(tls),
            (false, None | Some("opportunistic")) => Tls::Opportunistic(tls),
            (false, Some(other)) => {
                return Err(SmtpError::Url(format!(
                    "tls={other}: use opportunistic, required or none"
                )));
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .tls(tls)
            .timeout(Some(config.timeout));
        if let Some(user) = username {
            builder = builder.credentials(Credentials::new(user, password.unwrap_or_default()));
        }
        let from = Mailbox::from_str(&config.from).map_err(|e| SmtpError::From(e.to_string()))?;
        Ok(Mailer {
            transport: builder.build(),
            from,
        })
    }

    pub async fn send(&self, to: &str, subject: &str, body: String) -> Result<(), String> {
        let to = Mailbox::from_str(to).map_err(|e| format!("bad recipient {to}: {e}"))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| format!("cannot build the mail: {e}"))?;
        self.transport.send(message).await.map(|_| ()).map_err(|e| {
            format!(
                "the SMTP relay refused the mail: {}",
                orderflow_core::error_chain(&e)
            )
        })
    }
}

/// SNS's subscription confirmation mail.
pub fn confirmation_mail(topic_arn: &str, subscribe_url: &str) -> (String, String) {
    (
        "orderflow notification - subscription confirmation".into(),
        format!(
            "You have chosen to subscribe to the topic:\n{topic_arn}\n\n\
             To confirm this subscription, click or visit the link below \
             (if this was in error no action is necessary):\n\n{subscribe_url}\n\n\
             Nothing is sent to this address until the subscription is confirmed.\n"
        ),
    )
}

/// A person-readable mail for one notification: for an `OrderCreated` event the order mail
/// that SNS's `email` protocol also delivers (`orderflow_core::mail`), any other message as
/// it is (its control characters made visible); then our unsubscribe link, where SNS puts its own.
pub fn notification_mail(
    topic_arn: &str,
    subject: &str,
    message: &str,
    unsubscribe_url: &str,
) -> (String, String) {
    let footer = format!(
        "\n--\nYou receive this because this address is subscribed to {topic_arn}.\n\
         To stop receiving these messages, open:\n{unsubscribe_url}\n"
    );
    match OrderCreated::from_message(message).map(|event| event.mail()) {
        Some(mail) => (mail.subject, format!("{}{footer}", mail.body)),
        None => (
            subject.to_owned(),
            format!("{}\n{footer}", orderflow_core::mail::visible(message)),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPIC: &str = "arn:aws:sns:eu-west-1:123456789012:POC-Topic";

    fn config(url: &str) -> SmtpConfig {
        SmtpConfig {
            url: url.into(),
            username: None,
            password: None,
            from: "orderflow <orders@example.com>".into(),
            ca_file: None,
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn relay_urls_are_checked() {
        Mailer::new(&config("smtp://127.0.0.1:2525")).unwrap();
        Mailer::new(&config("smtps://mail.example.com")).unwrap();
        Mailer::new(&config("smtp://user:p%40ss@mail.example.com:587")).unwrap();
        for bad in ["http://x", "smtp://", "not a url", "smtp://h?tls=maybe"] {
            assert!(Mailer::new(&config(bad)).is_err(), "{bad}");
        }
        let mut bad_from = config("smtp://127.0.0.1:25");
        bad_from.from = "nobody".into();
        assert!(Mailer::new(&bad_from).is_err());
    }

    #[test]
    fn a_password_never_shows_in_debug_output() {
        let mut c = config("smtp://u:secret1@h:25");
        c.password = Some("secret2".into());
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("secret1") && !shown.contains("secret2"),
            "{shown}"
        );
    }

    #[test]
    fn an_order_mail_names_the_order_its_items_and_its_total() {
        let message = serde_json::json!({
            "type": "OrderCreated",
            "order": {
                "orderID": "ord-1", "customerId": "cust-42", "customerEmail": "ada@example.com",
                "items": [{"sku": "BOOK-1", "quantity": 3, "unitPrice": 19.99}, {"sku": "PEN", "quantity": 1, "unitPrice": 0.1}],
                "currency": "EUR", "total": 60.07, "status": "STORED",
                "receivedAt": "2026-01-01T00:00:00.000Z", "storedAt": "2026-01-01T00:00:01.000Z"
            }
        })
        .to_string();
        let (subject, body) = notification_mail(TOPIC, "OrderCreated", &message, "http://u");
        assert_eq!(subject, "Order ord-1 received: 60.07 EUR");
        for expected in [
            "ord-1",
            "BOOK-1",
            "59.97",
            "PEN",
            "0.10",
            "Total:     60.07 EUR",
            "http://u",
        ] {
            assert!(body.contains(expected), "{expected} not in:\n{body}");
        }
        let core = OrderCreated::from_message(&message).unwrap().mail();
        assert_eq!(subject, core.subject, "the subject SNS mails too");
        assert!(
            body.starts_with(&core.body),
            "the text SNS mails too, then our footer:\n{body}"
        );
        let (subject, body) = notification_mail(TOPIC, "S", "plain text", "http://u");
        assert_eq!(subject, "S");
        assert!(body.starts_with("plain text"));
        assert!(body.contains(&format!("subscribed to {TOPIC}.")), "{body}");
    }
}
