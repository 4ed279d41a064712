//! refund: the Spin component for everything that unwinds an order — cancellations before
//! shipment (the stock released by `oms_edge::release_cancelled`), partial and full refunds
//! (never above captured minus refunded, `Idempotency-Key` required) and returns with
//! inspection before refund (`requested → received → inspected → refunded`, accepted units
//! restocked where they shipped from). It emits `order.cancelled`,
//! `order.partially_refunded`, `order.refunded` and `return.*` events.
//!
//! Every handler is parse → decide → persist: the decision is an `OrderRecord` method
//! (`cancel`, `refund`, `request_return`, `receive_return`, `inspect_return` in
//! `oms-domain`'s `order_record/payment.rs`), run through the one step runner
//! ([`oms_edge::run`]), which stores the change with its events in one compare-and-swap and
//! publishes them from the order's outbox. A step repeated for the same cause — the same
//! request, a retry after a crash, a concurrent duplicate — finds its own effect on the order
//! and changes nothing, so nothing is refunded, released or restocked twice. Handlers are
//! generic over [`oms_edge::Env`]: `SpinEnv` in the component, `MemEnv` / `FaultyEnv` in
//! the native tests.

mod cancel;
mod entry;
mod inspection;
mod problems;
mod refunds;
mod requests;
mod returns;
mod routes;

pub use routes::router;

#[cfg(test)]
mod tests;
