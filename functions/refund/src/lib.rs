//! refund: the Spin component for everything that unwinds an order — cancellations before
//! shipment (releasing the stock held for it), partial and full refunds (never above captured
//! minus refunded, `Idempotency-Key` required) and returns with inspection before refund
//! (`requested → received → inspected → refunded`, accepted units restocked where they
//! shipped from). It emits `order.cancelled`, `order.partially_refunded`, `order.refunded`
//! and `return.*` events.
//!
//! Handlers are written over [`oms_edge::Kv`] and [`oms_edge::Bus`] with the clock and ids
//! passed in ([`Ctx`]), so they run natively in unit tests on `MemKv`/`MemBus`; only the Spin
//! entry point (`entry.rs`) touches the host. Every state change saves first and publishes
//! second, and every step can be repeated: a retry after a crash completes the step and never
//! refunds, releases or restocks twice (see each module's notes).

mod cancel;
mod context;
mod entry;
mod inspection;
mod ledger;
mod order_store;
mod problems;
mod refunds;
mod requests;
mod returns;
mod routes;
mod stock_moves;

pub use context::Ctx;
pub use routes::handle;

#[cfg(test)]
mod tests;
