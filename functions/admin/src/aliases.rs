//! Channel SKU aliases (staff): which SKU a marketplace's variant or product is, for lines
//! the marketplace sends without a usable SKU (see `oms_edge::aliases`).
//!
//! - `PUT /v1/admin/channels/{channel}/aliases/{kind}/{external_id}` `{"sku": "SKU-1"}` →
//!   200 with the alias (created or replaced);
//! - `GET /v1/admin/channels/{channel}/aliases` → 200 `{"channel", "aliases": [...]}`;
//! - `DELETE /v1/admin/channels/{channel}/aliases/{kind}/{external_id}` → 204, 404 when
//!   there is none.
//!
//! `kind` is `variant` or `product`. An order already held for an unmapped item is not
//! changed by adding an alias: staff release its `unmapped_item` hold, which maps its lines
//! through the aliases then.

use chrono::{DateTime, Utc};
use oms_domain::{ChannelId, Sku};
use oms_edge::aliases::{self, AliasKind};
use oms_edge::{json_response, FunctionError, Kv, Problem};
use serde_json::{json, Value};
use spin_sdk::http::Response;

fn invalid(field: &str, reason: impl Into<String>) -> FunctionError {
    crate::reference_data::invalid(field, reason).into()
}

fn channel(text: &str) -> Result<ChannelId, FunctionError> {
    ChannelId::parse(text).map_err(|e| invalid("channel", e.to_string()))
}

fn target(kind: &str, id: &str) -> Result<AliasKind, FunctionError> {
    let kind = kind.parse::<AliasKind>().map_err(|e| invalid("kind", e))?;
    aliases::check_external_id(id).map_err(|e| invalid("external_id", e))?;
    Ok(kind)
}

/// `PUT …/aliases/{kind}/{external_id}`.
///
/// # Errors
/// 422 naming the path part or `/sku` at fault; storage errors.
pub fn put(
    kv: &impl Kv,
    channel_text: &str,
    kind: &str,
    id: &str,
    body: &Value,
    now: DateTime<Utc>,
) -> Result<Response, FunctionError> {
    let channel = channel(channel_text)?;
    let kind = target(kind, id)?;
    let sku = match body.get("sku").and_then(Value::as_str) {
        Some(s) => Sku::parse(s).map_err(|e| invalid("/sku", e.to_string()))?,
        None => {
            return Err(Problem::field(
                422,
                "validation",
                "Invalid request",
                "/sku",
                "missing",
                "send {\"sku\": \"<our SKU>\"}",
            )
            .into())
        }
    };
    if let Some(fields) = body.as_object() {
        crate::keys::reject_unknown(fields, &["sku"])?;
    }
    let alias = aliases::put(kv, &channel, kind, id, sku, now)?;
    Ok(json_response(200, &view(&channel, &alias)))
}

/// `GET …/aliases`.
///
/// # Errors
/// 422 for a malformed channel; storage errors.
pub fn list(kv: &impl Kv, channel_text: &str) -> Result<Response, FunctionError> {
    let channel = channel(channel_text)?;
    let all: Vec<Value> = aliases::list(kv, &channel)?
        .iter()
        .map(|a| view(&channel, a))
        .collect();
    Ok(json_response(
        200,
        &json!({"channel": channel.as_str(), "aliases": all}),
    ))
}

/// `DELETE …/aliases/{kind}/{external_id}`.
///
/// # Errors
/// 404 when there is no such alias; 422 for a malformed path; storage errors.
pub fn delete(
    kv: &impl Kv,
    channel_text: &str,
    kind: &str,
    id: &str,
) -> Result<Response, FunctionError> {
    let channel = channel(channel_text)?;
    let kind_parsed = target(kind, id)?;
    if !aliases::remove(kv, &channel, kind_parsed, id)? {
        return Err(Problem::not_found("alias", &format!("{channel}/{kind}/{id}")).into());
    }
    Ok(Response::builder().status(204).build())
}

fn view(channel: &ChannelId, a: &aliases::Alias) -> Value {
    json!({
        "channel": channel.as_str(),
        "kind": a.kind,
        "external_id": a.external_id,
        "sku": a.sku,
        "updated_at": a.updated_at,
    })
}
