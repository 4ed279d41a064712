//! Glue shared by the OMS Spin components: everything between a component's handler and the
//! pure domain crate (`oms-domain`). Storage and messaging sit behind traits ([`Kv`], [`Bus`])
//! with the Spin implementation for Wasm and an in-memory one for native unit tests.
//!
//! Stock is stored per (SKU, location) as a [`StockDoc`] (never a bare `StockLevel`): it
//! records which order holds or has allocated which units, so per-order operations are
//! idempotent under redelivery.

#![deny(missing_docs)]

pub mod aliases;
pub mod api_keys;
pub mod auth;
mod bus;
mod clock;
mod env;
mod http;
mod idempotency;
mod kv;
pub mod order_token;
mod placement;
mod problem;
pub mod purge;
mod record;
mod release;
pub mod retention;
pub mod standard_webhooks;
mod step;
mod stock;
mod stock_moves;

pub use auth::{caller, constant_time_eq, Actor};
pub use bus::{Bus, MemBus, SpinBus};
pub use clock::{new_id, now};
pub use env::{
    for_every_fault, Env, Fault, FaultPlan, FaultyBus, FaultyEnv, FaultyKv, MemEnv, RacingEnv,
    RacingKv, SpinEnv, OWED_STORE,
};
pub use http::{json_body, json_response, path_match, query_param, read_response, Reply};
pub use idempotency::{
    idempotent, idempotent_with, Claim, Repeat, StoredResponse, IDEMPOTENCY_TTL_HOURS,
};
pub use kv::{update_json, Change, Kv, KvError, MemKv, SpinKv};
pub use placement::{inventory_for, pairs, routing_policy, settle, Usable};
pub use problem::{FunctionError, Problem};
pub use record::{keys, OrderRecord, ShipmentRecord, ShipmentStatus};
pub use release::release_cancelled;
pub use step::{create, flush, reconcile, run, Created, Decision, OwedEntry, Reconciled};
pub use stock::{
    commitment_key, update_backorders, update_commitment, update_order_stock, update_stock, views,
    BackorderDoc, Commitment, StockDoc, JOURNAL_KEEP,
};
pub use stock_moves::apply_stock_moves;
