//! Standard Webhooks signing (<https://www.standardwebhooks.com/>): a `whsec_` secret and the
//! `webhook-signature: v1,<base64 HMAC-SHA256>` of `"{webhook-id}.{webhook-timestamp}.{body}"`.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The prefix of every secret.
const PREFIX: &str = "whsec_";
/// Key sizes the Standard Webhooks spec allows (bytes, after base64 decoding).
const KEY_BYTES: std::ops::RangeInclusive<usize> = 24..=64;
/// Size of a generated key.
pub const GENERATED_KEY_BYTES: usize = 24;

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

/// A subscriber's signing secret, `whsec_<base64 key>`. Its `Debug` form never shows the key.
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

    /// The secret as the subscriber configures it (`whsec_…`).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The `webhook-signature` header value for one delivery attempt.
    pub fn sign(&self, webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC accepts keys of any length");
        mac.update(webhook_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
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

    #[test]
    fn signs_the_standard_webhooks_reference_example() {
        // The example of the Standard Webhooks specification and its reference libraries.
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = secret.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn every_part_of_the_signed_content_matters() {
        let secret = WebhookSecret::from_key([7; GENERATED_KEY_BYTES]);
        let base = secret.sign("id", 10, b"{}");
        assert_ne!(base, secret.sign("id2", 10, b"{}"));
        assert_ne!(base, secret.sign("id", 11, b"{}"));
        assert_ne!(base, secret.sign("id", 10, b"{ }"));
        assert_ne!(
            base,
            WebhookSecret::from_key([8; GENERATED_KEY_BYTES]).sign("id", 10, b"{}")
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
