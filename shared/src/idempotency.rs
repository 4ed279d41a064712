//! Idempotency keys and request fingerprints: "same key, same body" replays the stored
//! response, "same key, different body" is a client error.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Why an idempotency check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdempotencyError {
    /// The `Idempotency-Key` header value is empty, too long or not visible ASCII.
    #[error("idempotency key must be 1 to 255 visible ASCII characters")]
    InvalidKey,
    /// The body is not JSON, so it has no canonical form.
    #[error("request body is not valid JSON: {0}")]
    InvalidJson(String),
    /// A stored fingerprint is not 64 lowercase hex digits.
    #[error("fingerprint must be 64 lowercase hex digits")]
    InvalidFingerprint,
    /// The key was already used with a different request body.
    #[error("idempotency key was already used with a different request body")]
    KeyReused,
}

/// The value of an `Idempotency-Key` header: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Parses a key.
    ///
    /// # Errors
    /// [`IdempotencyError::InvalidKey`] when empty, longer than 255 or containing anything
    /// but visible ASCII (so keys are safe inside storage keys and logs).
    pub fn parse(text: &str) -> Result<Self, IdempotencyError> {
        if text.is_empty() || text.len() > 255 || !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(IdempotencyError::InvalidKey);
        }
        Ok(Self(text.to_owned()))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for IdempotencyKey {
    type Error = IdempotencyError;
    fn try_from(s: String) -> Result<Self, IdempotencyError> {
        Self::parse(&s)
    }
}

impl From<IdempotencyKey> for String {
    fn from(k: IdempotencyKey) -> String {
        k.0
    }
}

/// SHA-256 (lowercase hex) of a JSON body's canonical form: object keys sorted recursively
/// (by code point), no insignificant whitespace, strings escaped as serde_json writes them.
///
/// Two bodies that differ only in key order or formatting get the same fingerprint. Numbers
/// are compared as parsed, so `1` and `1.0` differ — which is why money travels as strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Fingerprint(String);

impl Fingerprint {
    /// Fingerprints a parsed JSON value.
    pub fn of_json(value: &Value) -> Self {
        Self(hex::encode(Sha256::digest(
            canonical_json(value).as_bytes(),
        )))
    }

    /// Fingerprints raw body bytes, which must be JSON.
    ///
    /// # Errors
    /// [`IdempotencyError::InvalidJson`] when the bytes are not JSON.
    pub fn of_body(body: &[u8]) -> Result<Self, IdempotencyError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| IdempotencyError::InvalidJson(e.to_string()))?;
        Ok(Self::of_json(&value))
    }

    /// Parses a stored fingerprint.
    ///
    /// # Errors
    /// [`IdempotencyError::InvalidFingerprint`] unless it is 64 lowercase hex digits.
    pub fn parse(text: &str) -> Result<Self, IdempotencyError> {
        let ok = text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(IdempotencyError::InvalidFingerprint)
        }
    }

    /// The hex digest.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Fingerprint {
    type Error = IdempotencyError;
    fn try_from(s: String) -> Result<Self, IdempotencyError> {
        Self::parse(&s)
    }
}

impl From<Fingerprint> for String {
    fn from(f: Fingerprint) -> String {
        f.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The canonical text of a JSON value (see [`Fingerprint`]). Sorting is done here rather than
/// relying on serde_json's map type, whose order depends on a crate feature that another
/// crate in the build may switch on.
fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// What a handler stores under an idempotency key: the request's fingerprint and the response
/// it produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdempotencyRecord<R> {
    /// Fingerprint of the first request made with the key.
    pub fingerprint: Fingerprint,
    /// The response to replay.
    pub response: R,
}

impl<R> IdempotencyRecord<R> {
    /// Decides a repeated request: the stored response when the body is the same.
    ///
    /// # Errors
    /// [`IdempotencyError::KeyReused`] when the body differs (RFC draft
    /// "idempotency-key-header": 422).
    pub fn replay(&self, incoming: &Fingerprint) -> Result<&R, IdempotencyError> {
        if &self.fingerprint == incoming {
            Ok(&self.response)
        } else {
            Err(IdempotencyError::KeyReused)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_form_sorts_keys_recursively_and_drops_whitespace() {
        let v: Value = serde_json::from_str(
            r#"{ "b": [ {"y": 1, "x": "é\n"} ], "a": null, "c": {"z": true, "a": 1.5} }"#,
        )
        .unwrap();
        assert_eq!(
            canonical_json(&v),
            r#"{"a":null,"b":[{"x":"é\n","y":1}],"c":{"a":1.5,"z":true}}"#
        );
    }

    #[test]
    fn same_body_same_fingerprint_different_body_different() {
        let a = Fingerprint::of_body(br#"{"a":1,"b":"2"}"#).unwrap();
        let b = Fingerprint::of_body(b"{\n  \"b\": \"2\",\n  \"a\": 1\n}").unwrap();
        let c = Fingerprint::of_body(br#"{"a":1,"b":"3"}"#).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.as_str().len(), 64);
        // Known vector: SHA-256 of "{}".
        assert_eq!(
            Fingerprint::of_json(&json!({})).as_str(),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert!(Fingerprint::of_body(b"not json").is_err());
    }

    #[test]
    fn record_replays_or_refuses() {
        let fp = Fingerprint::of_json(&json!({"x": 1}));
        let record = IdempotencyRecord {
            fingerprint: fp.clone(),
            response: 201u16,
        };
        assert_eq!(record.replay(&fp), Ok(&201));
        let other = Fingerprint::of_json(&json!({"x": 2}));
        assert_eq!(record.replay(&other), Err(IdempotencyError::KeyReused));
        let stored = serde_json::to_string(&record).unwrap();
        assert_eq!(
            serde_json::from_str::<IdempotencyRecord<u16>>(&stored).unwrap(),
            record
        );
        assert!(serde_json::from_str::<Fingerprint>("\"abc\"").is_err());
    }

    #[test]
    fn keys_are_visible_ascii() {
        assert!(IdempotencyKey::parse("3f1c-9a_b:1").is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("has space").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
    }
}
