//! insights: KPIs and order search, both projections of the lifecycle events.
//!
//! - **Projection** (a queue handler on every `order.*` and `return.*` channel, and on
//!   notify's `webhook.delivered` / `webhook.dead_lettered`): each message is applied once per
//!   id ([`projection`]): KPI deltas go to sharded counter documents updated by
//!   compare-and-swap ([`kpi`]), and the order moves between the search postings of its
//!   status ([`search`]). At-least-once delivery is fine; what a crash leaves half-done is
//!   finished by the redelivery.
//! - **HTTP** (staff only; [`api`]): `GET /v1/kpis` (JSON), `GET /v1/kpis/metrics`
//!   (Prometheus text 0.0.4, [`metrics`]), `GET /v1/search/orders?q=&email=&status=&channel=&limit=&cursor=`.
//!
//! Storage (the `default` store, keys prefixed `kpi:` and `search:`) never needs the store's
//! key list: counters are [`kpi::SHARDS`] documents; the search index is bounded pages of
//! postings per term and hour with a directory per term, and a row per order read by id. See [`search`]
//! for the layout and how a query walks it.

// The spin-sdk export macros expand to the FFI glue (export_name, unsafe) of the component
// ABI; nothing else in this crate is unsafe.
#![allow(unsafe_code)]

pub mod api;
pub mod kpi;
pub mod message;
pub mod metrics;
pub mod projection;
pub mod search;

#[cfg(test)]
mod tests;

use std::rc::Rc;

use oms_edge::{FunctionError, SpinKv};
use spin_sdk::http::{Request, Response};
use spin_sdk::{http_component, redis_component};

use crate::message::Message;
use crate::projection::Handled;

#[http_component]
fn handle_http(req: Request) -> Response {
    match SpinKv::open_default() {
        Ok(kv) => api::router(Rc::new(kv)).handle(req),
        Err(e) => FunctionError::from(e).response(),
    }
}

#[redis_component]
fn on_message(message: bytes::Bytes) -> anyhow::Result<()> {
    let Some(parsed) = Message::parse(&message) else {
        // Never becomes readable: retrying would only dead-letter it. Acknowledge and trace.
        eprintln!(
            "insights: dropping a message that is neither an event nor a webhook outcome ({} bytes)",
            message.len()
        );
        return Ok(());
    };
    let kv = SpinKv::open_default()?;
    if projection::handle(&kv, &parsed)? == Handled::NoOrder {
        eprintln!(
            "insights: message {} names order {}, which is not in the store; ignored",
            parsed.id(),
            parsed.order_id()
        );
    }
    Ok(())
}
