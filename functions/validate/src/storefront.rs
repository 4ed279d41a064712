//! Storefront orders (`POST /v1/orders`): parse, price-check against the catalog, store
//! through the step runner under the id derived from the `Idempotency-Key`, answer 202. The
//! rules and their problem documents are `oms_domain::storefront`, which the browser package
//! (`shared/browser`) runs too.
//!
//! The id comes from the intent ([`OrderId::for_storefront`]), so whatever happened to an
//! earlier attempt — stopped at its deadline, crashed after the write, answer lost — a retry
//! finds the same order instead of making a second. The `order.validated` event is owed by
//! the order (its outbox): a refused publish does not undo the order, the reconciler sends it.

use oms_domain::{
    storefront, Catalog, ChannelId, Fingerprint, IdempotencyKey, Order, OrderRecord, Sku,
};
use oms_edge::{
    create, idempotent_with, keys, order_token, Env, FunctionError, Kv, Problem, Repeat,
    StoredResponse,
};
use serde_json::Value;
use std::collections::BTreeMap;

use crate::receipt::Accepted;

/// Places an order at most once per key: the first success replays; the same key with
/// another body is a 422 (also after a 5xx, and also once the key's entry is gone: the order
/// it made is compared); a 4xx is not kept, so a corrected body may reuse the key.
///
/// Repeats do not wait for an unfinished first attempt ([`Repeat::Rerun`]): every attempt
/// writes only the order named by the key, so overlapping attempts converge on it.
///
/// # Errors
/// 422 with every violation (shape, totals, catalog prices) or for a reused key; storage
/// errors (5xx: retry with the same key).
pub fn place<E: Env>(
    env: &E,
    key: &IdempotencyKey,
    body: &Value,
) -> Result<StoredResponse, FunctionError> {
    idempotent_with(
        env.kv(),
        &keys::idempotency(&scope(body), key.as_str()),
        &Fingerprint::of_json(body),
        || env.now(),
        Repeat::Rerun,
        || accept(env, key, body),
    )
}

/// The key space of the request: its channel (as the order id is), so two storefront
/// channels never share keys. Issue 12 adds the caller's identity to the scope. A body
/// without a readable channel gets the bare scope: it fails validation, and a 4xx is never
/// kept under the key.
pub fn scope(body: &Value) -> String {
    match body
        .get("channel")
        .and_then(Value::as_str)
        .map(ChannelId::parse)
    {
        Some(Ok(channel)) => format!("orders:{channel}"),
        _ => "orders".into(),
    }
}

/// One attempt: validate, then create the order if it is not there yet.
fn accept<E: Env>(
    env: &E,
    key: &IdempotencyKey,
    body: &Value,
) -> Result<StoredResponse, FunctionError> {
    let order = storefront::order(body, key, env.now()).map_err(Problem::from)?;
    if let Err(problem) = storefront::check_prices(&catalog_for(env.kv(), &order)?, &order) {
        // Prices may have changed since an earlier attempt stored this very order: that
        // order stands, and its retry is answered as such, not refused.
        let earlier: Option<OrderRecord> =
            env.kv().get_json(&keys::order(&order.id().to_string()))?;
        return match earlier {
            Some(r) if r.order().same_request(&order) => {
                Ok(Accepted::of(&r, order_token::issue(env.kv(), r.order().id())?).stored())
            }
            _ => Err(Problem::from(problem).into()),
        };
    }
    // Before the order is stored: it is never left without a token to give out.
    let token = order_token::issue(env.kv(), order.id())?;
    let record = OrderRecord::take_in_by(order.clone(), "storefront", env.now())
        .map_err(|e| FunctionError::Internal(e.to_string()))?;
    let created = create(env, record)?;
    if !created.new && !created.record.order().same_request(&order) {
        return Err(Problem::field(
            422,
            "idempotency-key-reused",
            "Idempotency-Key reused",
            "Idempotency-Key",
            "key_reused",
            "this key already placed an order with a different request body",
        )
        .into());
    }
    Ok(Accepted::of(&created.record, token).stored())
}

/// The catalog prices of the order's SKUs (`catalog:{sku}` = `{"USD": "19.99"}`).
fn catalog_for(kv: &impl Kv, order: &Order) -> Result<Catalog, FunctionError> {
    let skus: Vec<Sku> = order.units_by_sku().into_keys().collect();
    let stored = kv.get_many(
        &skus
            .iter()
            .map(|s| keys::catalog(s.as_str()))
            .collect::<Vec<_>>(),
    )?;
    let mut catalog = Catalog::new();
    for (sku, raw) in skus.into_iter().zip(stored) {
        let Some(raw) = raw else { continue };
        let prices: BTreeMap<String, String> = serde_json::from_slice(&raw)?;
        storefront::add_prices(&mut catalog, &sku, &prices);
    }
    Ok(catalog)
}
