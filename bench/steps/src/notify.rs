//! notify: an event envelope serialized as a webhook body and signed per Standard Webhooks by
//! `oms_edge::standard_webhooks` — the module `functions/notify` signs each delivery with
//! before it POSTs (`webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`
//! with the key of a `whsec_` secret). Outputs the headers and the body.

use oms_domain::EventEnvelope;
use oms_edge::standard_webhooks::WebhookSecret;
use serde::{Deserialize, Serialize};

use crate::Error;

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
    let secret = WebhookSecret::parse(&input.secret)?;
    // The body notify POSTs: the envelope, serialized once per event.
    let body = serde_json::to_string(&input.event)?;
    let webhook_id = input.event.id().to_string();
    Ok(serde_json::to_vec(&Delivery {
        webhook_signature: secret.sign(&webhook_id, input.timestamp, body.as_bytes()),
        webhook_id,
        webhook_timestamp: input.timestamp.to_string(),
        body,
    })?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{input, Step};
    use oms_edge::standard_webhooks::{SecretError, WebhookHeaders};
    use serde_json::Value;

    #[test]
    fn the_delivery_carries_the_event_and_verifies_as_a_receiver_checks_it() {
        let out: Value = serde_json::from_slice(&run(&input(Step::Notify)).unwrap()).unwrap();
        let body = out["body"].as_str().unwrap();
        let event: EventEnvelope = serde_json::from_str(body).unwrap();
        assert_eq!(out["webhook-id"], event.id().to_string());
        assert_eq!(out["webhook-timestamp"], "1748779205");
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let headers = WebhookHeaders {
            id: out["webhook-id"].as_str(),
            timestamp: out["webhook-timestamp"].as_str(),
            signature: out["webhook-signature"].as_str(),
        };
        let at = chrono::DateTime::from_timestamp(1_748_779_205, 0).unwrap();
        assert!(secret.verify(&headers, body.as_bytes(), at).is_ok());
    }

    #[test]
    fn secrets_without_the_prefix_or_of_the_wrong_size_are_refused() {
        for (secret, why) in [
            ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", SecretError::Prefix),
            ("whsec_c2hvcnQ=", SecretError::Length(5)),
            ("whsec_not base64!", SecretError::Base64),
        ] {
            let mut doc: Value = serde_json::from_slice(&input(Step::Notify)).unwrap();
            doc["secret"] = secret.into();
            assert!(
                matches!(run(doc.to_string().as_bytes()), Err(Error::Secret(e)) if e == why),
                "{secret}"
            );
        }
    }
}
