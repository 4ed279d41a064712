//! Expiry of unpaid reservations. An order whose payment is only authorized holds stock until
//! its reservation's `expires_at` (`reservation_ttl_minutes` after reservation). The sweeper —
//! run by the app's cron trigger (`[[trigger.cron]]` in spin.toml), or on demand by
//! `POST /v1/reservations/expire` (admin token) from any scheduler (a Kubernetes CronJob,
//! cron + curl) — cancels every such order that is still `reserved` or `backordered` past its
//! expiry, through the step runner (`order.cancelled` in the order's outbox, its stock still
//! listed: release pending), then releases the stock on the one release path
//! ([`release_cancelled`]). An order's index entry is dropped only after that — the order is
//! cancelled with its stock released, or no longer expirable (paid, routed, gone) — so a
//! crash anywhere leaves the entry for the next sweep, and the order owes its
//! `order.cancelled` to the reconciler meanwhile (see `OrderRecord::owed_step`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use oms_edge::{
    keys, release_cancelled, run, update_json, Change, Decision, Env, FunctionError, Kv,
};
use serde::Serialize;

/// What one sweep did.
#[derive(Debug, Default, Serialize)]
pub struct Swept {
    /// Orders this sweep cancelled.
    pub expired: Vec<String>,
    /// Index entries not yet due.
    pub pending: usize,
    /// Orders that failed this time (their entries stay for the next sweep).
    pub failed: Vec<String>,
}

type Index = BTreeMap<String, DateTime<Utc>>;

/// Sweeps the index once. An order that fails is logged and left in the index; the others
/// are still swept.
///
/// # Errors
/// Reading the index failed.
pub fn sweep<E: Env>(env: &E) -> Result<Swept, FunctionError> {
    let now = env.now();
    let index: Index = env.kv().get_json(keys::EXPIRING)?.unwrap_or_default();
    let mut swept = Swept::default();
    for (order_id, at) in &index {
        if *at > now {
            swept.pending += 1;
            continue;
        }
        match expire_one(env, order_id, *at, now) {
            Ok(true) => swept.expired.push(order_id.clone()),
            Ok(false) => {}
            Err(e) => {
                eprintln!("reserve: expiring order {order_id} failed: {e:?}; next sweep");
                swept.failed.push(order_id.clone());
            }
        }
    }
    Ok(swept)
}

/// Cancels one order if its reservation lapsed, releases what a cancelled order still lists,
/// then drops its index entry (only if it still says `at`); whether this call cancelled it.
fn expire_one<E: Env>(
    env: &E,
    order_id: &str,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, FunctionError> {
    let event_id = env.new_id();
    let cancelled = run(env, order_id, |record| {
        let expired = record
            .expire_reservation(event_id, now)
            .map_err(|e| FunctionError::Internal(e.to_string()))?;
        Ok(if expired {
            Decision::Changed(true)
        } else {
            Decision::Unchanged(false)
        })
    });
    let cancelled = match cancelled {
        Err(FunctionError::Problem(p)) if p.status == 404 => false,
        other => {
            let cancelled = other?;
            // Whoever cancelled it (this sweep, an earlier one that crashed, a customer's
            // cancel), stock it still lists goes back before the entry goes.
            release_cancelled(env, order_id)?;
            cancelled
        }
    };
    update_json(env.kv(), keys::EXPIRING, |cur: Option<Index>| {
        let mut index = cur.unwrap_or_default();
        // Only if unchanged: a re-reservation may have set a new expiry meanwhile.
        if index.get(order_id) == Some(&at) {
            index.remove(order_id);
            Ok::<_, FunctionError>(Change::Write(index, ()))
        } else {
            Ok(Change::Keep(()))
        }
    })?;
    Ok(cancelled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reservation::handle;
    use crate::reservation::tests::{doc, one_id, order, sent, setup, status, stored, ttl};
    use chrono::Duration;
    use oms_domain::OrderStatus;
    use oms_edge::{for_every_fault, reconcile, MemEnv};
    use uuid::Uuid;

    /// An unpaid (authorized) order of 3 units reserved at `a` (5 on hand).
    fn reserved_unpaid(env: &MemEnv) -> String {
        setup(env, &[("a", 5)]);
        let id = order(env, 1, 3, "authorized");
        handle(env, &id, ttl()).unwrap();
        id
    }

    fn index(env: &MemEnv) -> Index {
        env.kv.get_json(keys::EXPIRING).unwrap().unwrap_or_default()
    }

    #[test]
    fn an_expired_unpaid_reservation_is_cancelled_and_released_a_paid_one_kept() {
        let env = MemEnv::new();
        let id = reserved_unpaid(&env);
        assert_eq!(index(&env).len(), 1);
        let early = sweep(&env).unwrap();
        assert_eq!((early.expired.len(), early.pending), (0, 1));
        env.advance(ttl());
        let swept = sweep(&env).unwrap();
        assert_eq!(swept.expired, std::slice::from_ref(&id));
        assert_eq!(status(&env, &id), OrderStatus::Cancelled);
        assert_eq!(doc(&env, "a").available(), 5);
        assert!(index(&env).is_empty());
        assert_eq!(sent(&env, "order.cancelled").len(), 1);
        assert!(sweep(&env).unwrap().expired.is_empty(), "once");

        let paid = MemEnv::new();
        setup(&paid, &[("a", 5)]);
        let id = order(&paid, 1, 3, "captured");
        handle(&paid, &id, ttl()).unwrap();
        assert!(index(&paid).is_empty(), "a paid reservation never expires");
    }

    #[test]
    fn every_fault_in_a_sweep_still_cancels_and_releases_exactly_once() {
        let id = Uuid::from_u128(1).to_string();
        for_every_fault(
            |env| {
                reserved_unpaid(env);
                env.advance(ttl() + Duration::seconds(1));
            },
            |env| {
                let _ = sweep(env);
            },
            |env| {
                // The next sweep alone finishes the job (its entry stayed); the
                // reconciler then finds nothing left to do.
                sweep(env).unwrap();
                env.advance(Duration::seconds(120));
                let pass = reconcile(env, Duration::seconds(60), 100).unwrap();
                assert!(pass.redriven.is_empty(), "{pass:?}");
            },
            |env, fault| {
                let r = stored(env, &id);
                assert_eq!(r.status(), OrderStatus::Cancelled, "{fault}");
                assert!(!r.lists_stock() && r.outbox().is_empty(), "{fault}");
                let a = doc(env, "a");
                assert!(a.holds.is_empty(), "{fault}: {a:?}");
                assert_eq!((a.available(), a.level.on_hand()), (5, 5), "{fault}");
                assert!(index(env).is_empty(), "{fault}");
                assert!(env.owed.keys().unwrap().is_empty(), "{fault}: nothing owed");
                one_id(env, "order.cancelled", fault);
            },
        );
    }

    /// The defect: a sweep that cancelled, then died before releasing, dropped the entry.
    /// Now the entry stays until the stock is back, and the order owes its release meanwhile.
    #[test]
    fn a_sweep_that_dies_after_the_cancel_keeps_the_entry_and_owes_the_release() {
        let env = MemEnv::new();
        let id = reserved_unpaid(&env);
        env.advance(ttl());
        run(&env, &id, |r| {
            r.expire_reservation(env.new_id(), env.now())
                .map_err(|e| FunctionError::Internal(e.to_string()))?;
            Ok(Decision::Changed(()))
        })
        .unwrap();
        assert_eq!(index(&env).len(), 1, "the entry is still there");
        assert!(stored(&env, &id).release_pending());
        assert_eq!(
            stored(&env, &id)
                .owed_step()
                .map(|e| e.event_type().as_str()),
            Some("order.cancelled")
        );
        let swept = sweep(&env).unwrap();
        assert!(swept.expired.is_empty(), "cancelled before, released now");
        assert_eq!(doc(&env, "a").available(), 5);
        assert!(index(&env).is_empty());
    }
}
