//! Marketplace webhook intake: `POST /v1/channels/{channel}/orders`.
//!
//! Each channel (Spin variable `channel_secrets`, JSON `{"<channel>": {"kind", "secret"}}`)
//! signs its deliveries one of two ways, checked on the raw body before anything is parsed:
//! - `shopify`: `X-Shopify-Hmac-Sha256` = base64 HMAC-SHA256 of the body with the secret;
//!   the body is Shopify's `orders/create` payload, mapped to our order.
//! - `standard` (Standard Webhooks): `webhook-id`, `webhook-timestamp` (within 5 minutes) and
//!   `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` with the
//!   `whsec_` key; the body is our own order JSON.
//!
//! A bad or missing signature is a 401 and nothing is stored. A redelivery (same Shopify order
//! id, or same `webhook-id`) answers 200 with the order first created, never a second order:
//! the channel's external id is claimed by compare-and-swap before the order is created.

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use oms_domain::{ChannelId, Order, OrderId};
use oms_edge::{
    json_response, keys, new_id, now, path_match, update_json, Change, FunctionError, Kv, Problem,
    SpinBus, SpinKv,
};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Sha256;
use spin_sdk::http::{Request, Response};

/// How far a Standard Webhooks timestamp may be from now.
const TOLERANCE_SECONDS: i64 = 5 * 60;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Shopify,
    Standard,
}

#[derive(Debug, Clone, Deserialize)]
struct ChannelConfig {
    kind: Kind,
    secret: String,
}

fn unauthorized(field: &str, reason: &str) -> FunctionError {
    Problem::field(
        401,
        "bad-signature",
        "Signature verification failed",
        field,
        "bad_signature",
        reason,
    )
    .into()
}

/// Handles one marketplace delivery.
///
/// # Errors
/// 404 unknown channel, 401 bad signature, 400 unreadable body, 422 invalid order.
pub fn intake(req: &Request) -> Result<Response, FunctionError> {
    let raw_channel = path_match(req, "channel").unwrap_or_default();
    let channel =
        ChannelId::parse(&raw_channel).map_err(|_| Problem::not_found("channel", &raw_channel))?;
    let configs: HashMap<String, ChannelConfig> = spin_sdk::variables::get("channel_secrets")
        .map_err(|e| FunctionError::Internal(format!("channel_secrets: {e}")))
        .and_then(|s| {
            serde_json::from_str(&s).map_err(|e| {
                FunctionError::Internal(format!("channel_secrets is not valid JSON: {e}"))
            })
        })?;
    let config = configs
        .get(channel.as_str())
        .ok_or_else(|| Problem::not_found("channel", channel.as_str()))?;
    let header = |name: &str| {
        req.header(name)
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    let body = req.body();
    let now = now();

    let (external, order_json) = match config.kind {
        Kind::Shopify => {
            verify_shopify(
                header("x-shopify-hmac-sha256").as_deref(),
                body,
                &config.secret,
            )?;
            let payload = parse(body)?;
            let external = payload
                .get("id")
                .map(|v| v.to_string().trim_matches('"').to_string())
                .filter(|s| !s.is_empty() && s != "null")
                .ok_or_else(|| {
                    Problem::field(
                        422,
                        "validation",
                        "Invalid request",
                        "/id",
                        "missing",
                        "the Shopify order id is required",
                    )
                })?;
            (external, map_shopify(&channel, &payload)?)
        }
        Kind::Standard => {
            let id = verify_standard(
                header("webhook-id"),
                header("webhook-timestamp"),
                header("webhook-signature"),
                body,
                &config.secret,
                now,
            )?;
            let mut payload = parse(body)?;
            payload["channel"] = json!(channel.as_str());
            (id, payload)
        }
    };
    let kv = SpinKv::open_default()?;
    let bus = SpinBus::open().map_err(FunctionError::Internal)?;
    take_in(&kv, &bus, &channel, &external, &order_json, now)
}

fn parse(body: &[u8]) -> Result<Value, FunctionError> {
    serde_json::from_slice(body).map_err(|e| {
        Problem::field(
            400,
            "malformed",
            "Malformed request",
            "body",
            "invalid_json",
            format!("not valid JSON: {e}"),
        )
        .into()
    })
}

/// Claims the external id, then creates the order; a claim already present is a redelivery.
fn take_in(
    kv: &impl Kv,
    bus: &impl oms_edge::Bus,
    channel: &ChannelId,
    external: &str,
    order_json: &Value,
    now: DateTime<Utc>,
) -> Result<Response, FunctionError> {
    let claim_key = keys::intake(channel.as_str(), external);
    let candidate = new_id();
    let claimed = update_json(kv, &claim_key, |cur: Option<String>| match cur {
        Some(existing) => Ok::<_, FunctionError>(Change::Keep(Err(existing))),
        None => Ok(Change::Write(candidate.to_string(), Ok(()))),
    })?;
    if let Err(existing) = claimed {
        return Ok(json_response(
            200,
            &json!({"id": existing, "status": "duplicate", "external_id": external}),
        ));
    }
    let outcome = Order::from_request(order_json, OrderId::new(candidate), now)
        .map_err(|v| {
            FunctionError::from(Problem::invalid(
                "the marketplace order is invalid (fields refer to the order after mapping)",
                &v.0,
            ))
        })
        .and_then(|o| crate::intake::store_and_publish(kv, bus, o, new_id(), now));
    match outcome {
        Ok(stored) => Ok(crate::respond(&stored)),
        Err(e) => {
            // Not taken in: free the claim so a corrected redelivery can be.
            kv.delete(&claim_key)?;
            Err(e)
        }
    }
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac
}

fn verify_shopify(signature: Option<&str>, body: &[u8], secret: &str) -> Result<(), FunctionError> {
    let signature = signature
        .ok_or_else(|| unauthorized("X-Shopify-Hmac-Sha256", "the signature header is missing"))?;
    let given = B64
        .decode(signature.trim())
        .map_err(|_| unauthorized("X-Shopify-Hmac-Sha256", "the signature is not base64"))?;
    hmac_sha256(secret.as_bytes(), &[body])
        .verify_slice(&given)
        .map_err(|_| {
            unauthorized(
                "X-Shopify-Hmac-Sha256",
                "the signature does not match the body",
            )
        })
}

/// Verifies a Standard Webhooks delivery; its `webhook-id`.
fn verify_standard(
    id: Option<String>,
    timestamp: Option<String>,
    signatures: Option<String>,
    body: &[u8],
    secret: &str,
    now: DateTime<Utc>,
) -> Result<String, FunctionError> {
    let id = id
        .filter(|s| !s.is_empty())
        .ok_or_else(|| unauthorized("webhook-id", "the header is missing"))?;
    let ts_text =
        timestamp.ok_or_else(|| unauthorized("webhook-timestamp", "the header is missing"))?;
    let ts: i64 = ts_text
        .trim()
        .parse()
        .map_err(|_| unauthorized("webhook-timestamp", "not a unix timestamp"))?;
    if (now.timestamp() - ts).abs() > TOLERANCE_SECONDS {
        return Err(unauthorized(
            "webhook-timestamp",
            "outside the 5-minute tolerance (replayed or clock skew)",
        ));
    }
    let signatures =
        signatures.ok_or_else(|| unauthorized("webhook-signature", "the header is missing"))?;
    let key = B64
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .map_err(|_| FunctionError::Internal("channel secret is not whsec_<base64>".into()))?;
    let signed_prefix = format!("{id}.{ts_text}.");
    let valid = signatures.split_whitespace().any(|entry| {
        entry
            .strip_prefix("v1,")
            .and_then(|sig| B64.decode(sig).ok())
            .is_some_and(|sig| {
                hmac_sha256(&key, &[signed_prefix.as_bytes(), body])
                    .verify_slice(&sig)
                    .is_ok()
            })
    });
    if valid {
        Ok(id)
    } else {
        Err(unauthorized(
            "webhook-signature",
            "no v1 signature matches the body",
        ))
    }
}

fn money_field(v: &Value, field: &str) -> Result<Decimal, FunctionError> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Null => "0".into(),
        _ => String::new(),
    };
    text.parse().map_err(|_| {
        Problem::field(
            422,
            "validation",
            "Invalid request",
            field,
            "invalid_format",
            "expected a decimal amount",
        )
        .into()
    })
}

/// Maps Shopify's `orders/create` payload to our order JSON. Shopify's own totals are kept
/// (grand total, tax, discounts), so an inconsistent payload fails our exact total check.
fn map_shopify(channel: &ChannelId, p: &Value) -> Result<Value, FunctionError> {
    let items = p["line_items"].as_array().cloned().unwrap_or_default();
    let mut lines = Vec::new();
    let mut subtotal = Decimal::ZERO;
    let mut line_discounts = Decimal::ZERO;
    for (i, item) in items.iter().enumerate() {
        let price = money_field(&item["price"], &format!("/line_items/{i}/price"))?;
        let discount = money_field(
            &item["total_discount"],
            &format!("/line_items/{i}/total_discount"),
        )?;
        let quantity = item["quantity"].as_u64().unwrap_or(0);
        subtotal += price * Decimal::from(quantity);
        line_discounts += discount;
        lines.push(json!({"sku": item["sku"], "quantity": quantity, "unit_price": price.to_string(), "discount": discount.to_string()}));
    }
    let total_discounts = money_field(&p["total_discounts"], "/total_discounts")?;
    let shipping: Decimal = p["shipping_lines"]
        .as_array()
        .map(|ls| {
            ls.iter()
                .enumerate()
                .map(|(i, l)| money_field(&l["price"], &format!("/shipping_lines/{i}/price")))
                .sum::<Result<Decimal, _>>()
        })
        .transpose()?
        .unwrap_or(Decimal::ZERO);
    let tax = money_field(&p["total_tax"], "/total_tax")?;
    let total = money_field(&p["total_price"], "/total_price")?;
    let status = match p["financial_status"].as_str() {
        Some("paid") => "captured",
        Some("authorized") => "authorized",
        other => {
            return Err(Problem::field(
                422,
                "validation",
                "Invalid request",
                "/financial_status",
                "not_allowed",
                format!("only paid or authorized orders are taken in (got {other:?})"),
            )
            .into())
        }
    };
    let order_discount = total_discounts - line_discounts;
    let discounts = if order_discount > Decimal::ZERO {
        json!([{"code": "shopify", "amount": order_discount.to_string()}])
    } else {
        json!([])
    };
    let a = &p["shipping_address"];
    let mut address = json!({"country": a["country_code"], "postal_code": a["zip"], "line1": a["address1"], "city": a["city"]});
    if let (Some(lat), Some(lon)) = (a["latitude"].as_f64(), a["longitude"].as_f64()) {
        address["coordinates"] = json!({"lat": lat, "lon": lon});
    }
    let name = [
        p["customer"]["first_name"].as_str(),
        p["customer"]["last_name"].as_str(),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    let mut customer = json!({"email": p["email"]});
    if !name.is_empty() {
        customer["name"] = json!(name);
    }
    Ok(json!({
        "channel": channel.as_str(),
        "customer": customer,
        "currency": p["currency"],
        "lines": lines,
        "shipping": {"method": "standard", "amount": shipping.to_string(), "address": address},
        "discounts": discounts,
        "tax": tax.to_string(),
        "totals": {
            "subtotal": subtotal.to_string(), "discount": total_discounts.to_string(),
            "shipping": shipping.to_string(), "tax": tax.to_string(), "grand_total": total.to_string()
        },
        "payment": {"reference": format!("shopify:{}", p["id"]), "status": status, "amount": total.to_string()},
        "metadata": {"shopify_order_id": p["id"].to_string(), "shopify_order_name": p["name"].as_str().unwrap_or_default()},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shopify_signature_is_the_base64_hmac_of_the_raw_body() {
        let body = br#"{"id":1}"#;
        let sig = B64.encode(hmac_sha256(b"secret", &[body]).finalize().into_bytes());
        assert!(verify_shopify(Some(&sig), body, "secret").is_ok());
        assert!(verify_shopify(Some(&sig), br#"{"id":2}"#, "secret").is_err());
        assert!(verify_shopify(None, body, "secret").is_err());
    }

    #[test]
    fn standard_webhooks_checks_signature_and_timestamp() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let key = B64.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let now = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
        let body = br#"{"a":1}"#;
        let sig = B64.encode(
            hmac_sha256(&key, &[b"msg_1.1700000000.", body])
                .finalize()
                .into_bytes(),
        );
        let header = format!("v1,bogus v1,{sig}");
        let ok = verify_standard(
            Some("msg_1".into()),
            Some("1700000000".into()),
            Some(header.clone()),
            body,
            secret,
            now,
        );
        assert_eq!(ok.unwrap(), "msg_1");
        let late = now + chrono::Duration::minutes(6);
        assert!(verify_standard(
            Some("msg_1".into()),
            Some("1700000000".into()),
            Some(header),
            body,
            secret,
            late
        )
        .is_err());
    }
}
