//! Shopify deliveries: the `X-Shopify-Hmac-Sha256` signature (base64 HMAC-SHA256 of the raw
//! body with the app's secret) and the mapping of Shopify's `orders/create` payload to our
//! order document.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use oms_domain::ChannelId;
use oms_edge::{FunctionError, Problem};
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};
use sha2::Sha256;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "X-Shopify-Hmac-Sha256";

fn unauthorized(reason: &str) -> FunctionError {
    crate::marketplace::unauthorized(SIGNATURE_HEADER, reason)
}

/// Checks the signature of a delivery (constant-time comparison).
///
/// # Errors
/// 401 naming the header when it is missing, not base64, or does not match the body.
pub fn verify(signature: Option<&str>, body: &[u8], secret: &str) -> Result<(), FunctionError> {
    let signature = signature.ok_or_else(|| unauthorized("the signature header is missing"))?;
    let given = B64
        .decode(signature.trim())
        .map_err(|_| unauthorized("the signature is not base64"))?;
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    mac.verify_slice(&given)
        .map_err(|_| unauthorized("the signature does not match the body"))
}

/// Shopify's id of the order (`id`, a number or a string): the external id of the delivery.
///
/// # Errors
/// 422 naming `/id` when it is missing or empty.
pub fn external_id(payload: &Map<String, Value>) -> Result<String, FunctionError> {
    match payload.get("id") {
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(Problem::field(
            422,
            "validation",
            "Invalid request",
            "/id",
            "missing",
            "the Shopify order id is required",
        )
        .into()),
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
pub fn to_order(channel: &ChannelId, p: &Value) -> Result<Value, FunctionError> {
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

    fn sign(secret: &[u8], body: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap();
        mac.update(body);
        B64.encode(mac.finalize().into_bytes())
    }

    #[test]
    fn the_signature_is_the_base64_hmac_of_the_raw_body() {
        let body = br#"{"id":1}"#;
        let sig = sign(b"secret", body);
        assert!(verify(Some(&sig), body, "secret").is_ok());
        assert!(verify(Some(&sig), br#"{"id":2}"#, "secret").is_err());
        assert!(verify(Some("not base64!"), body, "secret").is_err());
        assert!(verify(None, body, "secret").is_err());
    }

    #[test]
    fn the_external_id_is_the_shopify_order_id() {
        let p = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(
            external_id(&p(json!({"id": 820982911946154508_u64}))).unwrap(),
            "820982911946154508"
        );
        assert_eq!(external_id(&p(json!({"id": "gid-1"}))).unwrap(), "gid-1");
        assert!(external_id(&p(json!({"id": null}))).is_err());
        assert!(external_id(&p(json!({}))).is_err());
    }
}
