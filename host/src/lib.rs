//! `oms-host`: a Spin-compatible local runtime on wasmtime (`oms up`).
//!
//! It runs the app a Spin manifest v2 describes: HTTP triggers, Redis triggers on an embedded
//! durable queue, cron triggers (as Spin's cron trigger plugin), key-value on embedded SQLite,
//! variables (and a generated staff token on loopback, see [`staff_token`]), and outbound HTTP
//! limited to each component's grant — enough of Spin for the OMS components to run unchanged,
//! locally and in tests.

pub mod bindings;
pub mod cron_trigger;
mod error;
pub mod http_cache;
pub mod http_trigger;
pub mod key_value;
pub mod loader;
pub mod manifest;
pub mod metrics;
pub mod outbound;
pub mod queue;
pub mod redis_client;
pub mod redis_trigger;
pub mod routes;
pub mod runtime;
pub mod runtime_config;
pub mod schedule;
pub mod staff_token;
pub mod up;
pub mod variables;

pub use error::Error;
