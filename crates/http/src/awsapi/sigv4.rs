//! Verifies AWS Signature Version 4 on AWS requests: the canonical request is rebuilt from
//! what arrived and signed with the configured secret; signatures are compared in constant
//! time. <https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html>

use aws_lc_rs::{digest, hmac};
use axum::http::{HeaderMap, Method, Uri};
use subtle::ConstantTimeEq;

use super::{AwsError, AwsSettings};

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// AWS refuses a signature dated more than 15 minutes from its clock.
const MAX_SKEW_SECONDS: i64 = 15 * 60;

/// The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header.
#[derive(Debug, PartialEq, Eq)]
struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Option<Authorization<'_>> {
    let rest = value.strip_prefix(ALGORITHM)?.trim_start();
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (key, v) = part.trim().split_once('=')?;
        match key {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => return None,
        }
    }
    let mut scope = credential?.split('/');
    let auth = Authorization {
        access_key_id: scope.next()?,
        date: scope.next()?,
        region: scope.next()?,
        service: scope.next()?,
        signed_headers: signed?.split(';').collect(),
        signature: signature?,
    };
    (scope.next()? == "aws4_request" && scope.next().is_none()).then_some(auth)
}

/// Without a secret any credentials are accepted, as local emulators do; with one, the
/// request must carry a valid signature by the configured access key id, scoped to
/// `service` (the signing name: `sqs`, `dynamodb` for DynamoDB and its Streams, `sns`).
pub fn verify(
    settings: &AwsSettings,
    service: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), AwsError> {
    let Some(secret) = settings.secret() else {
        return Ok(());
    };
    let Some(value) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(AwsError::auth(
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
        ));
    };
    let auth = parse_authorization(value).ok_or_else(|| {
        AwsError::auth(
            "IncompleteSignature",
            "The request signature does not conform to AWS standards (AWS4-HMAC-SHA256 with Credential, SignedHeaders and Signature).",
        )
    })?;
    if auth.access_key_id != settings.access_key_id {
        return Err(AwsError::auth(
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        ));
    }
    let amz_date = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            AwsError::auth(
                "IncompleteSignature",
                "The request must carry an X-Amz-Date header.",
            )
        })?;
    check_date(amz_date, auth.date)?;
    if auth.region != settings.region || auth.service != service {
        return Err(AwsError::auth(
            "SignatureDoesNotMatch",
            format!(
                "Credential should be scoped to a valid region and service: this server is region {} (--aws-region).",
                settings.region
            ),
        ));
    }
    if !auth.signed_headers.contains(&"host") {
        return Err(AwsError::auth(
            "IncompleteSignature",
            "The Host header must be signed.",
        ));
    }
    let canonical = canonical_request(method, uri, headers, &auth.signed_headers, body);
    let scope = format!(
        "{}/{}/{}/aws4_request",
        auth.date, auth.region, auth.service
    );
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex::encode(digest::digest(&digest::SHA256, canonical.as_bytes()))
    );
    let key = signing_key(secret, auth.date, auth.region, auth.service);
    let expected = hex::encode(hmac::sign(&key, string_to_sign.as_bytes()));
    if expected.as_bytes().ct_eq(auth.signature.as_bytes()).into() {
        Ok(())
    } else {
        tracing::info!("an AWS request with a wrong signature was refused");
        Err(AwsError::auth(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
        ))
    }
}

/// `X-Amz-Date` (`20150830T123600Z`) must be within 15 minutes of now and on the
/// credential scope's date.
fn check_date(amz_date: &str, scope_date: &str) -> Result<(), AwsError> {
    let parsed = chrono::NaiveDateTime::parse_from_str(amz_date, "%Y%m%dT%H%M%SZ")
        .map_err(|_| {
            AwsError::auth(
                "IncompleteSignature",
                "X-Amz-Date is not in the format YYYYMMDD'T'HHMMSS'Z'.",
            )
        })?
        .and_utc();
    if !amz_date.starts_with(scope_date) {
        return Err(AwsError::auth(
            "SignatureDoesNotMatch",
            "The credential scope's date is not the date of X-Amz-Date.",
        ));
    }
    let skew = (chrono::Utc::now() - parsed).num_seconds().abs();
    if skew > MAX_SKEW_SECONDS {
        return Err(AwsError::auth(
            "SignatureDoesNotMatch",
            format!(
                "Signature expired: {amz_date} is more than 15 minutes from the server's time."
            ),
        ));
    }
    Ok(())
}

fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> hmac::Key {
    let mut key = format!("AWS4{secret}").into_bytes();
    for part in [date, region, service, "aws4_request"] {
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), part.as_bytes());
        key = tag.as_ref().to_vec();
    }
    hmac::Key::new(hmac::HMAC_SHA256, &key)
}

/// Method, URI path, sorted query, the signed headers (lower-case names, values trimmed
/// with inner runs of spaces collapsed, repeated headers joined by commas), the signed
/// header list and the payload's SHA-256.
fn canonical_request(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    signed_headers: &[&str],
    body: &[u8],
) -> String {
    let path = if uri.path().is_empty() {
        "/".to_owned()
    } else {
        uri.path()
            .split('/')
            .map(|segment| uri_encode(&percent_decode(segment)))
            .collect::<Vec<_>>()
            .join("/")
    };
    let mut query: Vec<(String, String)> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(k)),
                uri_encode(&percent_decode(v)),
            )
        })
        .collect();
    query.sort();
    let query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut canonical_headers = String::new();
    for name in signed_headers {
        let values: Vec<String> = headers
            .get_all(*name)
            .iter()
            .map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    // Always the hash of the body that arrived, never a client's `X-Amz-Content-Sha256`:
    // trusting that header would let a captured request carry another body under its
    // signature (a wrong header value then fails the signature, as it should).
    let payload_hash = hex::encode(digest::digest(&digest::SHA256, body));
    format!(
        "{method}\n{path}\n{query}\n{canonical_headers}\n{}\n{payload_hash}",
        signed_headers.join(";")
    )
}

/// RFC 3986 encoding as SigV4 wants it: everything but unreserved characters.
fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits stays as it is.
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of AWS's SigV4 test suite ("get-vanilla"), whose inputs and
    /// signature AWS publishes: secret `wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY`, scope
    /// `20150830/us-east-1/service/aws4_request`.
    #[test]
    fn the_signature_of_aws_s_vanilla_get_example_is_reproduced() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "example.amazonaws.com".parse().unwrap());
        headers.insert("x-amz-date", "20150830T123600Z".parse().unwrap());
        let uri: Uri = "/".parse().unwrap();
        let canonical =
            canonical_request(&Method::GET, &uri, &headers, &["host", "x-amz-date"], b"");
        let string_to_sign = format!(
            "{ALGORITHM}\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n{}",
            hex::encode(digest::digest(&digest::SHA256, canonical.as_bytes()))
        );
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830",
            "us-east-1",
            "service",
        );
        assert_eq!(
            hex::encode(hmac::sign(&key, string_to_sign.as_bytes())),
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn an_authorization_header_is_split_into_its_scope_and_signature() {
        let auth = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/sqs/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc",
        )
        .unwrap();
        assert_eq!(auth.access_key_id, "AKID");
        assert_eq!(auth.region, "us-east-1");
        assert_eq!(auth.service, "sqs");
        assert_eq!(auth.signed_headers, vec!["host", "x-amz-date"]);
        assert_eq!(auth.signature, "abc");
        assert!(parse_authorization("AWS4-HMAC-SHA256 Credential=AKID/x/aws4_request").is_none());
    }
}
