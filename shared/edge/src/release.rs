//! The one stock-release path of a cancelled order, whoever cancelled it (the customer or
//! staff through refund's cancel, the expiry sweep of an unpaid reservation).
//!
//! A cancellation keeps the order's stock listed on its record (reservation with any backorder
//! promise, allocated shipments): while it does, the release is pending and the order owes its
//! `order.cancelled` event to reserve, which calls [`release_cancelled`] — on delivery, and on
//! the reconciler's re-drive ([`OrderRecord::owed_step`](oms_domain::OrderRecord::owed_step)).
//! The release runs as a step: the stock documents are released inside the decision (each
//! release idempotent per order, so a re-run after a lost compare-and-swap or a crash releases
//! nothing twice), then the same swap that clears the listing drops the owed work.

use oms_domain::ReservedLine;

use crate::env::Env;
use crate::problem::FunctionError;
use crate::step::{run, Decision};
use crate::stock::{update_backorders, update_order_stock};

/// Releases every hold, allocation and backorder promise a cancelled order's record still
/// lists, then clears the listing on the record. A no-op (apart from publishing what the order
/// still owes) for an order that is not cancelled or was already released.
///
/// # Errors
/// 404 when the order does not exist; storage errors and contention (the release stays
/// pending, owed to the reconciler); a stock document that cannot take the release (500).
pub fn release_cancelled<E: Env>(env: &E, order_id: &str) -> Result<(), FunctionError> {
    run(env, order_id, |record| {
        if !record.release_pending() {
            return Ok(Decision::Unchanged(()));
        }
        release_stock(env, order_id, &record.stock_to_release())?;
        for sku in record.backorder_promises() {
            update_backorders(env.kv(), sku.as_str(), |doc| Some(doc.release(order_id)))?;
        }
        record.stock_released();
        Ok(Decision::Changed(()))
    })
}

/// Gives back what `order` holds or has allocated at each line's (SKU, location) — the hold
/// and the allocation both, since the record may lag a step that turned one into the other.
fn release_stock<E: Env>(
    env: &E,
    order: &str,
    lines: &[ReservedLine],
) -> Result<(), FunctionError> {
    for line in lines {
        update_order_stock(
            env.kv(),
            line.sku.as_str(),
            line.location.as_str(),
            order,
            |d| d.release(order)?.deallocate(order),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{for_every_fault, MemEnv};
    use crate::kv::Kv;
    use crate::record::keys;
    use crate::step::{create, reconcile};
    use crate::stock::{BackorderDoc, StockDoc};
    use chrono::Duration;
    use oms_domain::testkit::sku1_order;
    use oms_domain::{BackorderPolicy, LocationId, OrderId, OrderRecord, OrderStatus, Sku};
    use serde_json::json;
    use std::collections::BTreeMap;
    use uuid::Uuid;

    const ORDER: u128 = 7;

    fn id() -> String {
        Uuid::from_u128(ORDER).to_string()
    }

    fn stock(env: &MemEnv, loc: &str) -> StockDoc {
        env.kv
            .get_json(&keys::stock("SKU-1", loc))
            .unwrap()
            .unwrap_or_default()
    }

    fn stored(env: &MemEnv) -> OrderRecord {
        env.kv.get_json(&keys::order(&id())).unwrap().unwrap()
    }

    /// A backordered order holding 2 units at `a` (of 5) with 1 unit promised on backorder,
    /// then cancelled (its stock still listed: release pending).
    fn cancelled_order(env: &MemEnv) {
        let now = env.now();
        let order = sku1_order(
            OrderId::new(Uuid::from_u128(ORDER)),
            3,
            "1.00",
            "captured",
            now,
        );
        let mut record = OrderRecord::accept(order, Uuid::from_u128(100), now).unwrap();
        let sku = Sku::parse("SKU-1").unwrap();
        let held = vec![ReservedLine {
            sku: sku.clone(),
            location: LocationId::parse("a").unwrap(),
            units: 2,
        }];
        record
            .record_reservation(
                held,
                &BTreeMap::from([(sku, 1)]),
                true,
                Duration::minutes(30),
                Uuid::from_u128(101),
                now,
            )
            .unwrap();
        record
            .transition(OrderStatus::Cancelled, json!({}), Uuid::from_u128(102), now)
            .unwrap();
        create(env, record).unwrap();
        let doc = StockDoc::default().recount(5).unwrap();
        let (doc, _) = doc.hold_up_to(&id(), 2).unwrap();
        env.kv.set_json(&keys::stock("SKU-1", "a"), &doc).unwrap();
        let promise = BackorderDoc::default()
            .promise(&id(), 1, BackorderPolicy::UpTo(1))
            .unwrap();
        env.kv
            .set_json(&BackorderDoc::key("SKU-1"), &promise)
            .unwrap();
        env.bus.sent.borrow_mut().clear();
    }

    #[test]
    fn a_pending_release_is_owed_until_done_and_done_once() {
        let env = MemEnv::new();
        cancelled_order(&env);
        assert!(stored(&env).release_pending());
        // Nobody released it: the reconciler re-drives `order.cancelled`.
        env.advance(Duration::seconds(120));
        let pass = reconcile(&env, Duration::seconds(60), 10).unwrap();
        assert_eq!(pass.redriven, [id()], "{pass:?}");
        assert_eq!(env.published(), ["order.cancelled"]);
        release_cancelled(&env, &id()).unwrap();
        release_cancelled(&env, &id()).unwrap();
        assert_eq!(stock(&env, "a").available(), 5);
        assert!(!stored(&env).release_pending());
        assert!(env.owed.keys().unwrap().is_empty(), "nothing owed any more");
    }

    #[test]
    fn every_fault_in_a_release_still_releases_exactly_once() {
        for_every_fault(
            cancelled_order,
            |env| {
                let _ = release_cancelled(env, &id());
            },
            |env| {
                // The reconciler re-drives `order.cancelled`; reserve releases on delivery.
                env.advance(Duration::seconds(120));
                reconcile(env, Duration::seconds(60), 10).unwrap();
                if env.published().iter().any(|c| c == "order.cancelled") {
                    release_cancelled(env, &id()).unwrap();
                }
            },
            |env, fault| {
                let doc = stock(env, "a");
                assert_eq!(doc.available(), 5, "{fault}: {doc:?}");
                assert_eq!(doc.level.on_hand(), 5, "{fault}: units conserved");
                let promises: BackorderDoc = env
                    .kv
                    .get_json(&BackorderDoc::key("SKU-1"))
                    .unwrap()
                    .unwrap();
                assert_eq!(promises.outstanding(), 0, "{fault}");
                let r = stored(env);
                assert!(!r.lists_stock(), "{fault}");
                assert!(env.owed.keys().unwrap().is_empty(), "{fault}");
            },
        );
    }
}
