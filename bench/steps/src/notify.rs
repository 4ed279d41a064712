//! notify: an event envelope serialized as a webhook body and signed per Standard Webhooks
//! (`webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` with the key of a
//! `whsec_` secret) — what `functions/notify` does for each subscriber before it POSTs. Outputs
//! the headers and the body.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use oms_domain::EventEnvelope;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::Error;

/// Key sizes the Standard Webhooks specification allows, in bytes.
const KEY_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    /// The event, as it comes off the queue.
    event: EventEnvelope,
    /// The subscriber's secret, `whsec_<base64 key>`.
    secret: String,
    /// The attempt's time, in Unix seconds.
    timestamp: i64,
}

#[derive(Serialize)]
struct Delivery {
    #[serde(rename = "webhook-id")]
    webhook_id: String,
    #[serde(rename = "webhook-timestamp")]
    webhook_timestamp: String,
    #[serde(rename = "webhook-signature")]
    webhook_signature: String,
    body: String,
}

/// Signs the event in `input`; the delivery's headers and body as JSON.
pub(crate) fn run(input: &[u8]) -> Result<Vec<u8>, Error> {
    let input: Input = serde_json::from_slice(input)?;
    let key = secret_key(&input.secret)?;
    let body = serde_json::to_string(&input.event)?;
    let webhook_id = input.event.id().to_string();
    let webhook_signature = sign(&key, &webhook_id, input.timestamp, body.as_bytes())?;
    Ok(serde_json::to_vec(&Delivery {
        webhook_id,
        webhook_timestamp: input.timestamp.to_string(),
        webhook_signature,
        body,
    })?)
}

/// The key of a `whsec_<base64>` secret.
fn secret_key(secret: &str) -> Result<Vec<u8>, Error> {
    let key = secret
        .strip_prefix("whsec_")
        .and_then(|encoded| STANDARD.decode(encoded).ok())
        .ok_or(Error::Secret)?;
    if KEY_BYTES.contains(&key.len()) {
        Ok(key)
    } else {
        Err(Error::Secret)
    }
}

/// The `webhook-signature` header value.
fn sign(key: &[u8], webhook_id: &str, timestamp: i64, body: &[u8]) -> Result<String, Error> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| Error::Secret)?;
    mac.update(webhook_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{input, Step};
    use serde_json::Value;

    const REFERENCE_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn signs_the_standard_webhooks_reference_example() {
        let key = secret_key(REFERENCE_SECRET).unwrap();
        let signature = sign(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(
            signature.unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn the_delivery_carries_the_event_and_its_signature() {
        let out: Value = serde_json::from_slice(&run(&input(Step::Notify)).unwrap()).unwrap();
        let body = out["body"].as_str().unwrap();
        let event: EventEnvelope = serde_json::from_str(body).unwrap();
        assert_eq!(out["webhook-id"], event.id().to_string());
        assert_eq!(out["webhook-timestamp"], "1748779205");
        let key = secret_key(REFERENCE_SECRET).unwrap();
        let expected = sign(
            &key,
            &event.id().to_string(),
            1_748_779_205,
            body.as_bytes(),
        );
        assert_eq!(out["webhook-signature"], expected.unwrap());
    }

    #[test]
    fn secrets_without_the_prefix_or_of_the_wrong_size_are_refused() {
        assert!(matches!(
            secret_key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            Err(Error::Secret)
        ));
        assert!(matches!(secret_key("whsec_c2hvcnQ="), Err(Error::Secret)));
        assert!(matches!(
            secret_key("whsec_not base64!"),
            Err(Error::Secret)
        ));
    }
}
