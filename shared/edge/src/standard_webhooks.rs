//! Standard Webhooks (<https://www.standardwebhooks.com/>), both directions: notify **signs**
//! the webhooks it sends and intake **verifies** the ones marketplaces send. One secret format
//! for both — `whsec_` followed by the base64 of a 24 to 64 byte key — and one signed content:
//! `"{webhook-id}.{webhook-timestamp}.{body}"`, HMAC-SHA256, sent as
//! `webhook-signature: v1,<base64>`. A header may carry several space-separated signatures
//! (a sender rotating its secret signs with both): one match is enough. A timestamp further
//! than [`TOLERANCE_SECONDS`] from now is refused, so a captured delivery cannot be replayed
//! later.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The prefix of every secret.
const PREFIX: &str = "whsec_";
/// Key sizes the Standard Webhooks spec allows (bytes, after base64 decoding).
const KEY_BYTES: std::ops::RangeInclusive<usize> = 24..=64;
/// Size of a generated key.
pub const GENERATED_KEY_BYTES: usize = 24;
/// How far a delivery's `webhook-timestamp` may be from now (the spec's recommendation).
pub const TOLERANCE_SECONDS: i64 = 5 * 60;

/// Why a secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// It does not start with `whsec_`.
    #[error("must start with \"whsec_\" followed by a base64 key")]
    Prefix,
    /// The part after `whsec_` is not standard base64.
    #[error("the part after \"whsec_\" is not valid base64")]
    Base64,
    /// The key is shorter or longer than the spec allows.
    #[error("the key must be 24 to 64 bytes, got {0}")]
    Length(usize),
}

/// Why a delivery was refused; [`VerifyError::header`] names the header at fault (for the
/// 401 problem document).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A required header is absent or empty.
    #[error("the {0} header is missing")]
    Missing(&'static str),
    /// `webhook-timestamp` is not a unix timestamp in seconds.
    #[error("webhook-timestamp is not a unix timestamp")]
    Timestamp,
    /// `webhook-timestamp` is outside the tolerance (a replay, or clock skew).
    #[error(
        "webhook-timestamp is outside the {TOLERANCE_SECONDS} s tolerance (replayed or clock skew)"
    )]
    Stale,
    /// No `v1` signature in the header matches the body.
    #[error("no v1 signature matches the body")]
    NoMatch,
}

impl VerifyError {
    /// The header the problem is in.
    pub fn header(&self) -> &'static str {
        match self {
            VerifyError::Missing(h) => h,
            VerifyError::Timestamp | VerifyError::Stale => "webhook-timestamp",
            VerifyError::NoMatch => "webhook-signature",
        }
    }
}

/// The three Standard Webhooks headers of one delivery, as received.
#[derive(Debug, Clone, Copy, Default)]
pub struct WebhookHeaders<'a> {
    /// `webhook-id`: the message id, the same on every redelivery.
    pub id: Option<&'a str>,
    /// `webhook-timestamp`: unix seconds when the attempt was signed.
    pub timestamp: Option<&'a str>,
    /// `webhook-signature`: space-separated `v1,<base64>` entries.
    pub signature: Option<&'a str>,
}

/// A signing secret, `whsec_<base64 key>`. Its `Debug` form never shows the key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WebhookSecret {
    text: String,
    key: Vec<u8>,
}

impl WebhookSecret {
    /// Parses `whsec_<base64>`.
    ///
    /// # Errors
    /// [`SecretError`] for a missing prefix, bad base64, or a key of the wrong size.
    pub fn parse(text: &str) -> Result<WebhookSecret, SecretError> {
        let encoded = text.strip_prefix(PREFIX).ok_or(SecretError::Prefix)?;
        let key = STANDARD.decode(encoded).map_err(|_| SecretError::Base64)?;
        if !KEY_BYTES.contains(&key.len()) {
            return Err(SecretError::Length(key.len()));
        }
        Ok(WebhookSecret {
            text: text.to_string(),
            key,
        })
    }

    /// A secret from fresh random bytes (the caller supplies the randomness).
    pub fn from_key(key: [u8; GENERATED_KEY_BYTES]) -> WebhookSecret {
        WebhookSecret {
            text: format!("{PREFIX}{}", STANDARD.encode(key)),
            key: key.to_vec(),
        }
    }

    /// The secret as configured (`whsec_…`).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn mac(&self, webhook_id: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC accepts keys of any length");
        for part in [
            webhook_id.as_bytes(),
            b".",
            timestamp.as_bytes(),
            b".",
            body,
        ] {
            mac.update(part);
        }
        mac
    }

    /// The `webhook-signature` header value for one delivery attempt.
    pub fn sign(&self, webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mac = self.mac(webhook_id, &timestamp.to_string(), body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    /// Verifies a delivery: all three headers present, the timestamp within
    /// [`TOLERANCE_SECONDS`] of `now`, and one `v1` signature matching (compared in constant
    /// time). Returns the `webhook-id`, the message's identity across redeliveries.
    ///
    /// # Errors
    /// [`VerifyError`], naming the header at fault.
    pub fn verify<'a>(
        &self,
        headers: &WebhookHeaders<'a>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<&'a str, VerifyError> {
        let present = |value: Option<&'a str>, name| {
            value
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .ok_or(VerifyError::Missing(name))
        };
        let id = present(headers.id, "webhook-id")?;
        let timestamp = present(headers.timestamp, "webhook-timestamp")?;
        let signatures = present(headers.signature, "webhook-signature")?;
        let seconds: i64 = timestamp.parse().map_err(|_| VerifyError::Timestamp)?;
        if (now.timestamp() - seconds).abs() > TOLERANCE_SECONDS {
            return Err(VerifyError::Stale);
        }
        let matches = signatures.split_whitespace().any(|entry| {
            entry
                .strip_prefix("v1,")
                .and_then(|sig| STANDARD.decode(sig).ok())
                .is_some_and(|sig| self.mac(id, timestamp, body).verify_slice(&sig).is_ok())
        });
        if matches {
            Ok(id)
        } else {
            Err(VerifyError::NoMatch)
        }
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(whsec_…)")
    }
}

impl TryFrom<String> for WebhookSecret {
    type Error = SecretError;
    fn try_from(s: String) -> Result<Self, SecretError> {
        WebhookSecret::parse(&s)
    }
}

impl From<WebhookSecret> for String {
    fn from(s: WebhookSecret) -> String {
        s.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).unwrap()
    }

    fn headers<'a>(id: &'a str, ts: &'a str, sig: &'a str) -> WebhookHeaders<'a> {
        WebhookHeaders {
            id: Some(id),
            timestamp: Some(ts),
            signature: Some(sig),
        }
    }

    #[test]
    fn signs_and_verifies_the_standard_webhooks_reference_example() {
        // The example of the Standard Webhooks specification and its reference libraries.
        let secret = WebhookSecret::parse(SPEC_SECRET).unwrap();
        assert_eq!(
            secret.sign(SPEC_ID, 1_614_265_330, SPEC_BODY),
            SPEC_SIGNATURE
        );
        let h = headers(SPEC_ID, "1614265330", SPEC_SIGNATURE);
        assert_eq!(secret.verify(&h, SPEC_BODY, at(1_614_265_330)), Ok(SPEC_ID));
    }

    #[test]
    fn any_of_several_signatures_may_match_during_a_rotation() {
        let old = WebhookSecret::from_key([1; GENERATED_KEY_BYTES]);
        let new = WebhookSecret::from_key([2; GENERATED_KEY_BYTES]);
        let both = format!(
            "{} {}",
            old.sign("m", 100, b"{}"),
            new.sign("m", 100, b"{}")
        );
        for secret in [&old, &new] {
            assert_eq!(
                secret.verify(&headers("m", "100", &both), b"{}", at(100)),
                Ok("m")
            );
        }
        let junk = format!("v1a,xyz v1,!!! {}", new.sign("m", 100, b"{}"));
        assert_eq!(
            new.verify(&headers("m", "100", &junk), b"{}", at(100)),
            Ok("m")
        );
        let other = WebhookSecret::from_key([3; GENERATED_KEY_BYTES]);
        assert_eq!(
            other.verify(&headers("m", "100", &both), b"{}", at(100)),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn every_part_of_the_signed_content_matters() {
        let secret = WebhookSecret::from_key([7; GENERATED_KEY_BYTES]);
        let sig = secret.sign("id", 10, b"{}");
        assert_eq!(
            secret.verify(&headers("id", "10", &sig), b"{}", at(10)),
            Ok("id")
        );
        for (id, ts, body) in [
            ("id2", "10", &b"{}"[..]),
            ("id", "11", b"{}"),
            ("id", "10", b"{ }"),
        ] {
            assert_eq!(
                secret.verify(&headers(id, ts, &sig), body, at(10)),
                Err(VerifyError::NoMatch),
                "{id} {ts}"
            );
        }
    }

    #[test]
    fn missing_headers_bad_and_stale_timestamps_name_their_header() {
        let secret = WebhookSecret::from_key([7; GENERATED_KEY_BYTES]);
        let sig = secret.sign("id", 1000, b"{}");
        let ok = headers("id", "1000", &sig);
        for (h, header) in [
            (WebhookHeaders { id: None, ..ok }, "webhook-id"),
            (
                WebhookHeaders {
                    id: Some(" "),
                    ..ok
                },
                "webhook-id",
            ),
            (
                WebhookHeaders {
                    timestamp: None,
                    ..ok
                },
                "webhook-timestamp",
            ),
            (
                WebhookHeaders {
                    timestamp: Some("soon"),
                    ..ok
                },
                "webhook-timestamp",
            ),
            (
                WebhookHeaders {
                    signature: None,
                    ..ok
                },
                "webhook-signature",
            ),
        ] {
            assert_eq!(
                secret.verify(&h, b"{}", at(1000)).unwrap_err().header(),
                header
            );
        }
        let edge = 1000 + TOLERANCE_SECONDS;
        assert_eq!(secret.verify(&ok, b"{}", at(edge)), Ok("id"));
        assert_eq!(
            secret.verify(&ok, b"{}", at(edge + 1)),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            secret.verify(&ok, b"{}", at(1000 - TOLERANCE_SECONDS - 1)),
            Err(VerifyError::Stale)
        );
    }

    #[test]
    fn generated_secrets_round_trip_and_bad_ones_are_refused() {
        let secret = WebhookSecret::from_key([1; GENERATED_KEY_BYTES]);
        assert!(secret.as_str().starts_with("whsec_"));
        assert_eq!(WebhookSecret::parse(secret.as_str()).unwrap(), secret);
        assert_eq!(
            WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            Err(SecretError::Prefix)
        );
        assert_eq!(
            WebhookSecret::parse("whsec_not base64!"),
            Err(SecretError::Base64)
        );
        assert_eq!(
            WebhookSecret::parse("whsec_c2hvcnQ="),
            Err(SecretError::Length(5))
        );
        assert!(
            !format!("{secret:?}").contains(&secret.as_str()[6..]),
            "Debug never shows the key"
        );
    }
}
