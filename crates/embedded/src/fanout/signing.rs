//! SNS message signatures: an RSA key pair and a self-signed certificate kept in the data
//! directory, `SignatureVersion` 2 (SHA256withRSA) over SNS's canonical string, and the
//! certificate served at `SigningCertURL` so consumers verify with their SNS code.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine as _;
use serde_json::{Map, Value};

pub const SIGNATURE_VERSION: &str = "2";
const KEY_FILE: &str = "signing-key.pem";
const CERT_FILE: &str = "signing-cert.pem";
/// SNS signs with 2048-bit RSA keys.
const KEY_SIZE: rcgen::RsaKeySize = rcgen::RsaKeySize::_2048;

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("cannot read or write {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot generate the signing key")]
    Generate(#[source] rcgen::Error),
    #[error("the signing key or certificate is not valid")]
    Certificate(#[source] rcgen::Error),
    #[error("the signing key cannot be used with SHA256withRSA")]
    Key(String),
}

/// Canonical strings whose signature is kept: a message fans out to its subscribers within
/// moments, so this spans many messages times any number of subscribers (about 1.5 MB).
const RECENT_SIGNATURES: usize = 4096;

/// Signatures of recent canonical strings, by the strings' SHA-256. A notification's
/// canonical string has no subscription in it (SNS signs `Message`, `MessageId`, `Subject`,
/// `Timestamp`, `TopicArn` and `Type`), so one signature serves every subscriber.
#[derive(Default)]
struct Recent {
    cells: HashMap<[u8; 32], Arc<OnceLock<String>>>,
    order: VecDeque<[u8; 32]>,
}

impl Recent {
    fn cell(&mut self, key: [u8; 32]) -> Arc<OnceLock<String>> {
        if let Some(cell) = self.cells.get(&key) {
            return Arc::clone(cell);
        }
        if self.order.len() >= RECENT_SIGNATURES
            && let Some(oldest) = self.order.pop_front()
        {
            self.cells.remove(&oldest);
        }
        self.order.push_back(key);
        Arc::clone(self.cells.entry(key).or_default())
    }
}

/// Signs envelopes; holds the private key and the PEM certificate consumers download.
pub struct Signer {
    key: aws_lc_rs::signature::RsaKeyPair,
    cert_pem: String,
    /// `SimpleNotificationService-<fingerprint>.pem`: a new key gets a new URL, so a
    /// consumer's certificate cache never serves a stale one.
    cert_name: String,
    recent: Mutex<Recent>,
    /// RSA signatures made since start (each costs about 0.3 ms of CPU).
    signatures: AtomicU64,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("cert_name", &self.cert_name)
            .finish_non_exhaustive()
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> SigningError + '_ {
    move |source| SigningError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes `contents` so that only the owner can read it, atomically (temp file + rename).
fn write_private(path: &Path, contents: &[u8]) -> Result<(), SigningError> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(io_error(&tmp))?;
    file.write_all(contents).map_err(io_error(&tmp))?;
    file.sync_all().map_err(io_error(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_error(path))?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

impl Signer {
    /// Loads the key pair and certificate from `dir`, creating them on first use.
    pub fn load_or_create(dir: &Path) -> Result<Signer, SigningError> {
        let key_path = dir.join(KEY_FILE);
        let cert_path = dir.join(CERT_FILE);
        let key_pem = match std::fs::read_to_string(&key_path) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, KEY_SIZE)
                    .map_err(SigningError::Generate)?;
                let pem = key.serialize_pem();
                let _ = std::fs::remove_file(&cert_path);
                write_private(&key_path, pem.as_bytes())?;
                tracing::info!(path = %key_path.display(), "created the message signing key");
                pem
            }
            Err(e) => return Err(io_error(&key_path)(e)),
        };
        let key_pair = rcgen::KeyPair::from_pem_and_sign_algo(&key_pem, &rcgen::PKCS_RSA_SHA256)
            .map_err(SigningError::Certificate)?;
        let cert_pem = match std::fs::read_to_string(&cert_path) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
                    .map_err(SigningError::Certificate)?;
                params
                    .distinguished_name
                    .push(rcgen::DnType::CommonName, "orderflow SNS message signing");
                params.not_before = rcgen::date_time_ymd(2024, 1, 1);
                params.not_after = rcgen::date_time_ymd(2124, 1, 1);
                let cert = params
                    .self_signed(&key_pair)
                    .map_err(SigningError::Certificate)?;
                let pem = cert.pem();
                write_private(&cert_path, pem.as_bytes())?;
                pem
            }
            Err(e) => return Err(io_error(&cert_path)(e)),
        };
        let key = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&key_pair.serialize_der())
            .map_err(|e| SigningError::Key(e.to_string()))?;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cert_pem.as_bytes());
        let fingerprint: String = digest.as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Signer {
            key,
            cert_pem,
            cert_name: format!("SimpleNotificationService-{fingerprint}.pem"),
            recent: Mutex::default(),
            signatures: AtomicU64::new(0),
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The file name under `/sns/` the certificate is served at.
    pub fn cert_name(&self) -> &str {
        &self.cert_name
    }

    pub fn cert_url(&self, public_url: &str) -> String {
        format!(
            "{}/sns/{}",
            public_url.trim_end_matches('/'),
            self.cert_name
        )
    }

    /// RSA signatures made since start.
    pub fn signatures_made(&self) -> u64 {
        self.signatures.load(Ordering::Relaxed)
    }

    /// SHA256withRSA (PKCS #1 v1.5) of `text`, base64-encoded.
    pub fn sign(&self, text: &str) -> String {
        self.signatures.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("orderflow_signatures_total").increment(1);
        let mut signature = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                text.as_bytes(),
                &mut signature,
            )
            .expect("an RSA key of ours signs any message");
        base64::engine::general_purpose::STANDARD.encode(signature)
    }

    /// The signature of `canonical`, made once however many subscribers ask for it: the
    /// first caller signs while any others asking for the same string wait for its result.
    fn sign_once(&self, canonical: &str) -> String {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
        let key: [u8; 32] = digest.as_ref().try_into().expect("SHA-256 is 32 bytes");
        let cell = self.recent.lock().expect("signatures lock").cell(key);
        cell.get_or_init(|| self.sign(canonical)).clone()
    }

    /// Adds `SignatureVersion`, `Signature` and `SigningCertURL` to an SNS envelope.
    pub fn sign_envelope(&self, envelope: &mut Map<String, Value>, public_url: &str) {
        let Some(canonical) = canonical_string(envelope) else {
            return;
        };
        envelope.insert(
            "SignatureVersion".into(),
            Value::String(SIGNATURE_VERSION.into()),
        );
        envelope.insert(
            "Signature".into(),
            Value::String(self.sign_once(&canonical)),
        );
        envelope.insert(
            "SigningCertURL".into(),
            Value::String(self.cert_url(public_url)),
        );
    }
}

/// SNS's string to sign: the listed keys present in the envelope, in byte order, each as
/// `Key\nvalue\n`. `None` for a message type SNS does not sign.
pub fn canonical_string(envelope: &Map<String, Value>) -> Option<String> {
    let keys: &[&str] = match envelope.get("Type")?.as_str()? {
        "Notification" => &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ],
        "SubscriptionConfirmation" | "UnsubscribeConfirmation" => &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ],
        _ => return None,
    };
    let mut out = String::new();
    for key in keys {
        // Subject is signed only when the message has one.
        if let Some(Value::String(value)) = envelope.get(*key) {
            out.push_str(key);
            out.push('\n');
            out.push_str(value);
            out.push('\n');
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_canonical_string_lists_the_signed_keys_in_byte_order() {
        let envelope = json!({
            "Type": "Notification",
            "MessageId": "m-1",
            "TopicArn": "arn:t",
            "Subject": "OrderCreated",
            "Message": "{\"a\":1}\nline",
            "Timestamp": "2026-01-01T00:00:00.000Z",
            "UnsubscribeURL": "http://x",
            "MessageAttributes": {}
        });
        assert_eq!(
            canonical_string(envelope.as_object().unwrap()).unwrap(),
            "Message\n{\"a\":1}\nline\nMessageId\nm-1\nSubject\nOrderCreated\nTimestamp\n2026-01-01T00:00:00.000Z\nTopicArn\narn:t\nType\nNotification\n"
        );
        let mut no_subject = envelope.as_object().unwrap().clone();
        no_subject.insert("Subject".into(), Value::Null);
        assert!(!canonical_string(&no_subject).unwrap().contains("Subject"));
    }

    fn verifier(signer: &Signer) -> aws_lc_rs::signature::UnparsedPublicKey<Vec<u8>> {
        aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            aws_lc_rs::signature::KeyPair::public_key(&signer.key)
                .as_ref()
                .to_vec(),
        )
    }

    fn notification(message_id: &str, subscription: usize) -> Map<String, Value> {
        json!({
            "Type": "Notification",
            "MessageId": message_id,
            "TopicArn": "arn:t",
            "Subject": "OrderCreated",
            "Message": "{}",
            "Timestamp": "2026-01-01T00:00:00.000Z",
            "UnsubscribeURL": format!("http://x/unsubscribe?SubscriptionArn=arn:t:{subscription}"),
            "MessageAttributes": {}
        })
        .as_object()
        .unwrap()
        .clone()
    }

    #[test]
    fn a_message_is_signed_once_whatever_the_number_of_subscribers() {
        let dir = tempfile::tempdir().unwrap();
        let signer = Signer::load_or_create(dir.path()).unwrap();
        let public = verifier(&signer);
        let mut signatures = std::collections::HashSet::new();
        std::thread::scope(|s| {
            let envelopes: Vec<_> = (0..100)
                .map(|sub| {
                    let signer = &signer;
                    s.spawn(move || {
                        let mut e = notification("m-1", sub);
                        signer.sign_envelope(&mut e, "http://x");
                        e
                    })
                })
                .collect();
            for e in envelopes {
                let e = e.join().unwrap();
                let signature = base64::engine::general_purpose::STANDARD
                    .decode(e["Signature"].as_str().unwrap())
                    .unwrap();
                public
                    .verify(canonical_string(&e).unwrap().as_bytes(), &signature)
                    .expect("each subscriber's envelope verifies");
                signatures.insert(e["Signature"].clone());
            }
        });
        assert_eq!(
            signer.signatures_made(),
            1,
            "100 subscribers, one signature"
        );
        assert_eq!(signatures.len(), 1);
        let mut other = notification("m-2", 0);
        signer.sign_envelope(&mut other, "http://x");
        assert_eq!(
            signer.signatures_made(),
            2,
            "another message is signed anew"
        );
        assert_ne!(other["Signature"], *signatures.iter().next().unwrap());
    }

    #[test]
    fn the_kept_signatures_are_bounded() {
        let mut recent = Recent::default();
        for i in 0..RECENT_SIGNATURES + 10 {
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&(i as u64).to_le_bytes());
            recent.cell(key);
        }
        assert_eq!(recent.cells.len(), RECENT_SIGNATURES);
        assert_eq!(recent.order.len(), RECENT_SIGNATURES);
    }

    #[test]
    fn a_key_is_created_once_owner_only_and_its_signatures_verify() {
        let dir = tempfile::tempdir().unwrap();
        let signer = Signer::load_or_create(dir.path()).unwrap();
        let again = Signer::load_or_create(dir.path()).unwrap();
        assert_eq!(
            signer.cert_name(),
            again.cert_name(),
            "the same key on reload"
        );
        assert!(signer.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        #[cfg(unix)]
        for file in [KEY_FILE, CERT_FILE] {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{file}: {mode:o}");
        }
        let signature = base64::engine::general_purpose::STANDARD
            .decode(signer.sign("hello"))
            .unwrap();
        let public = aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            aws_lc_rs::signature::KeyPair::public_key(&signer.key)
                .as_ref()
                .to_vec(),
        );
        public.verify(b"hello", &signature).unwrap();
        assert!(public.verify(b"hellO", &signature).is_err());
    }
}
