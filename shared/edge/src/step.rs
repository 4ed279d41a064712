//! The step runner: the one place where a lifecycle step touches the order — load, finish
//! what is owed, decide, one compare-and-swap that stores the new state **with the events it
//! emits** (the order's outbox), publish, mark published. Every function supplies only its
//! decision.
//!
//! # Design: the outbox and the owed-work index
//!
//! - **Outbox.** Events are recorded on the order (timeline + outbox) by the domain methods,
//!   so the write that changes the order is the write that owes its events. Publishing
//!   happens after that write; a second write removes the published ids. A crash, a deadline
//!   or a refused publish in between leaves them in the outbox: the next step on the order
//!   (any step, any function) publishes them first, and the reconciler finds the rest.
//! - **Owed-work index.** The reconciler must find orders that owe work without scanning every
//!   key, so a dedicated store ([`OWED_STORE`](crate::OWED_STORE)) holds one entry per order
//!   that owes work: events to publish or a next step to run
//!   ([`OrderRecord::owes_work`]). The entry is written **before** the order's
//!   compare-and-swap, and the order records its key (`marker`). An entry is deleted only
//!   by the one write that made it unnecessary — a step whose swap left the order resting
//!   deletes the entry it superseded — or by the reconciler when the order no longer names
//!   it. A step never deletes an entry another writer may still be relying on: a new entry
//!   gets a fresh random key, and a losing writer deletes only the entry it created itself.
//!   A crash between any two of these writes leaves at worst an entry naming an order that
//!   rests (the reconciler drops it), never an order that owes work without an entry.
//! - **Owed stock moves.** A change whose consequence is a write to stock documents (a
//!   shipment left, a return restocked) records the moves on the order in the same swap
//!   ([`oms_domain::StockMove`]); they are applied after it and cleared; the reconciler
//!   applies any a crash left pending.
//! - **Re-drive.** An order standing in a status whose next step has not run
//!   ([`OrderRecord::owed_step`]: `validated` → reserve, `reserved` → route …) has that
//!   step's trigger event published again, with its original id; every step is idempotent
//!   on the order's state, so a re-drive of a step that did run changes nothing. This is
//!   what makes the lifecycle independent of the transport's delivery guarantee (real
//!   Spin's Redis trigger delivers at most once).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::bus::Bus;
use crate::env::Env;
use crate::kv::Kv;
use crate::problem::{FunctionError, Problem};
use crate::purge;
use crate::record::keys;
use oms_domain::OrderRecord;

/// What a step's decision did to the order (given as `&mut`).
#[derive(Debug)]
pub enum Decision<R> {
    /// The order changed: store it (with its new outbox events), then publish.
    Changed(R),
    /// Nothing to change (e.g. the step already ran): only finish what is owed.
    Unchanged(R),
}

/// Compare-and-swap rounds before a step gives up (409).
const MAX_ROUNDS: usize = 64;

/// An entry of the owed-work index: which order, and since when it owes work.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OwedEntry {
    /// The order.
    pub order: String,
    /// When the entry was written or last re-driven.
    pub since: DateTime<Utc>,
    /// How many times the reconciler re-drove the order through this entry.
    #[serde(default)]
    pub redriven: u32,
}

/// Loads an order for a step.
fn load<E: Env>(
    env: &E,
    id: &str,
) -> Result<(Option<OrderRecord>, <E::Kv as Kv>::Cas), FunctionError> {
    let key = keys::order(id);
    let (raw, cas) = env.kv().read(&key)?;
    let record = match raw {
        None => None,
        Some(bytes) => Some(
            serde_json::from_slice(&bytes)
                .map_err(|e| FunctionError::Internal(format!("order {id} is unreadable: {e}")))?,
        ),
    };
    Ok((record, cas))
}

fn encode(record: &OrderRecord) -> Result<Vec<u8>, FunctionError> {
    serde_json::to_vec(record).map_err(|e| FunctionError::Internal(e.to_string()))
}

/// Writes the index entry `next` needs (before its swap): reuses the entry the current
/// value names, or creates one with a fresh key. Returns the key and whether it is new (a
/// losing writer deletes only an entry it created); `None` when `next` rests.
fn mark<E: Env>(
    env: &E,
    current: &OrderRecord,
    next: &OrderRecord,
) -> Result<Option<(String, bool)>, FunctionError> {
    if !next.owes_work() {
        return Ok(None);
    }
    let id = next.order().id().to_string();
    let (key, new) = match current.marker() {
        Some(k) => (k.to_string(), false),
        None => (format!("{id}/{}", env.new_id().simple()), true),
    };
    let entry = OwedEntry {
        order: id,
        since: env.now(),
        redriven: 0,
    };
    env.owed()
        .set_json(&key, &entry)
        .map_err(FunctionError::from)?;
    Ok(Some((key, new)))
}

/// Deletes index entries nobody needs any more; a failure only leaves work for the
/// reconciler (which drops entries the order does not name), so it is logged, not returned.
fn unmark<E: Env>(env: &E, key: &str) {
    if let Err(e) = env.owed().delete(key) {
        eprintln!("step: could not drop owed-work entry {key}: {e}; the reconciler will");
    }
}

/// Runs one step on an existing order: `decide` gets the current state (it may run again
/// after a lost compare-and-swap, so any write it makes outside the order must be idempotent
/// for this order and step). Events owed from earlier steps are published too.
///
/// # Errors
/// 404 when the order does not exist; `decide`'s error (nothing stored); a storage error;
/// 409 when the order kept changing under the step.
pub fn run<E: Env, R>(
    env: &E,
    order_id: &str,
    mut decide: impl FnMut(&mut OrderRecord) -> Result<Decision<R>, FunctionError>,
) -> Result<R, FunctionError> {
    for _ in 0..MAX_ROUNDS {
        // One purge per round for what `decide` wrote (stock) and the order's swap: after the
        // swap, before the order's events go out (see `purge`).
        let round = purge::batch(|| -> Result<_, FunctionError> {
            let (record, cas) = load(env, order_id)?;
            let Some(record) = record else {
                return Err(Problem::not_found("order", order_id).into());
            };
            let mut next = record.clone();
            Ok(match decide(&mut next)? {
                Decision::Unchanged(r) => Some((r, record)),
                Decision::Changed(r) => {
                    let stored = commit(env, &record, next, cas)?;
                    if let Some(stored) = &stored {
                        purge::wrote(&keys::order(&stored.order().id().to_string()));
                    }
                    stored.map(|stored| (r, stored))
                }
            })
        })?;
        if let Some((r, record)) = round {
            finish(env, &record);
            return Ok(r);
        }
    }
    Err(Problem::conflict("the order kept changing; retry").into())
}

/// Swaps `next` in for `current` with the index entry it needs; the value stored, or `None`
/// when another writer got there first (then nothing was stored and our own new entry is gone
/// again).
fn commit<E: Env>(
    env: &E,
    current: &OrderRecord,
    mut next: OrderRecord,
    cas: <E::Kv as Kv>::Cas,
) -> Result<Option<OrderRecord>, FunctionError> {
    let marked = mark(env, current, &next)?;
    next.written_after(current, marked.as_ref().map(|(key, _)| key.clone()));
    if !env.kv().swap(cas, &encode(&next)?)? {
        if let Some((key, true)) = marked {
            unmark(env, &key);
        }
        return Ok(None);
    }
    if let Some(old) = current.marker() {
        if next.marker() != Some(old) {
            unmark(env, old);
        }
    }
    Ok(Some(next))
}

/// What creating an order found.
#[derive(Debug)]
pub struct Created {
    /// The order as stored (the existing one when it was already there).
    pub record: OrderRecord,
    /// Whether this call created it.
    pub new: bool,
}

/// Stores a new order under its id (derived from the intent: the same request retried
/// finds the same order), then publishes its first events. An order already stored under
/// that id is returned as it is, after finishing what it still owes.
///
/// # Errors
/// A storage error; 409 under endless contention.
pub fn create<E: Env>(env: &E, record: OrderRecord) -> Result<Created, FunctionError> {
    let id = record.order().id().to_string();
    let record = record.unwritten();
    for _ in 0..MAX_ROUNDS {
        let (existing, cas) = load(env, &id)?;
        if let Some(existing) = existing {
            finish(env, &existing);
            return Ok(Created {
                record: existing,
                new: false,
            });
        }
        // No purge: nothing can have cached an order that did not exist (errors are never
        // stored).
        if let Some(stored) = commit(env, &record, record.clone(), cas)? {
            finish(env, &stored);
            return Ok(Created { record, new: true });
        }
    }
    Err(Problem::conflict("the order kept changing; retry").into())
}

/// Publishes what `record` (as just read or stored) owes, after a change that already stands:
/// a failure here must not turn the caller's success into an error (the events stay owed; the
/// next step or the reconciler sends them).
fn finish<E: Env>(env: &E, record: &OrderRecord) {
    if record.outbox().is_empty() {
        return;
    }
    if let Err(e) = publish_owed(env, record) {
        let id = record.order().id();
        eprintln!("step: order {id}: owed events not flushed ({e:?}); the reconciler will");
    }
}

/// Publishes the order's outbox, oldest first, then marks what went out as published (and
/// drops its index entry when the order now rests). A refused publish stops there and is
/// logged: the events stay owed for the next step or the reconciler, and the caller's change
/// stands. Returns how many events were published.
///
/// # Errors
/// A storage error while reading or marking (the events may then be published again later,
/// with the same ids: subscribers de-duplicate on them).
pub fn flush<E: Env>(env: &E, order_id: &str) -> Result<usize, FunctionError> {
    match load(env, order_id)?.0 {
        Some(record) => publish_owed(env, &record),
        None => Ok(0),
    }
}

/// [`flush`] from a value of the order already in hand.
fn publish_owed<E: Env>(env: &E, record: &OrderRecord) -> Result<usize, FunctionError> {
    let order_id = &record.order().id().to_string();
    let mut sent: Vec<Uuid> = Vec::new();
    for event in record.owed_events() {
        if let Err(e) = env.bus().publish_event(event) {
            eprintln!(
                "step: publishing {} {} of order {order_id} failed ({e}); it stays owed",
                event.event_type(),
                event.id()
            );
            break;
        }
        sent.push(event.id());
    }
    if sent.is_empty() {
        return Ok(0);
    }
    for _ in 0..MAX_ROUNDS {
        let (current, cas) = load(env, order_id)?;
        let Some(current) = current else {
            return Ok(sent.len());
        };
        let mut next = current.clone();
        next.mark_published(&sent);
        if next.outbox() == current.outbox() {
            return Ok(sent.len());
        }
        let marker = next
            .owes_work()
            .then(|| current.marker().map(str::to_string))
            .flatten();
        next.written_after(&current, marker);
        if env.kv().swap(cas, &encode(&next)?)? {
            if let (Some(old), None) = (current.marker(), next.marker()) {
                unmark(env, old);
            }
            return Ok(sent.len());
        }
    }
    Err(Problem::conflict("the order kept changing; retry").into())
}

/// What one reconciler pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconciled {
    /// Index entries looked at.
    pub examined: usize,
    /// Entries not yet due (younger than the grace period).
    pub waiting: usize,
    /// Owed events published.
    pub republished: usize,
    /// Orders whose next step was re-driven (its trigger event published again).
    pub redriven: Vec<String>,
    /// Orders whose owed stock moves were applied.
    #[serde(default)]
    pub stock_moved: Vec<String>,
    /// Entries dropped because their order rests or no longer names them.
    pub dropped: usize,
    /// Entries left for the next pass (over `limit`).
    pub remaining: usize,
    /// Keys in the owed store that are not owed-work entries (left alone).
    #[serde(default)]
    pub foreign: usize,
}

/// Whether `key` has the shape [`mark`] gives an entry of `order`: `{order}/{32 hex digits}`.
fn is_entry_key(key: &str, order: &str) -> bool {
    key.strip_prefix(order)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|n| n.len() == 32 && n.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// One pass of the reconciler over the owed-work index: for every entry older than `grace`,
/// publish the order's owed events, re-drive its owed step, or drop the entry when the order
/// rests. At most `limit` due entries are handled per pass (the rest count as `remaining`).
///
/// # Errors
/// A storage error (the pass stops; entries not handled stay for the next one).
pub fn reconcile<E: Env>(
    env: &E,
    grace: chrono::Duration,
    limit: usize,
) -> Result<Reconciled, FunctionError> {
    let now = env.now();
    let keys = env.owed().keys()?;
    let values = env.owed().get_many(&keys)?;
    let mut report = Reconciled::default();
    for (key, raw) in keys.into_iter().zip(values) {
        report.examined += 1;
        let Some(raw) = raw else { continue };
        // Only keys this module writes are ever touched: a store shared by mistake with other
        // data (e.g. `owed` on `default`'s Redis database) is reported, never deleted.
        let entry = serde_json::from_slice::<OwedEntry>(&raw)
            .ok()
            .filter(|e| is_entry_key(&key, &e.order));
        let Some(entry) = entry else {
            eprintln!("reconcile: {key:?} is not an owed-work entry; left alone (is the owed store shared with other data?)");
            report.foreign += 1;
            continue;
        };
        if entry.since + grace > now {
            report.waiting += 1;
            continue;
        }
        if report.republished + report.redriven.len() + report.stock_moved.len() + report.dropped
            >= limit
        {
            report.remaining += 1;
            continue;
        }
        let (record, _) = load(env, &entry.order)?;
        let Some(record) = record.filter(|r| r.marker() == Some(key.as_str())) else {
            // The order was never stored (its creation lost a race or crashed before the
            // swap) or has moved on to another entry / rests: this entry is done.
            env.owed().delete(&key)?;
            report.dropped += 1;
            continue;
        };
        let mut acted = false;
        if !record.outbox().is_empty() {
            report.republished += flush(env, &entry.order)?;
            acted = true;
        }
        if !record.pending_moves().is_empty() {
            crate::stock_moves::apply_stock_moves(env, &entry.order)?;
            report.stock_moved.push(entry.order.clone());
            acted = true;
        }
        if acted {
            continue;
        }
        if let Some(event) = record.owed_step() {
            env.bus()
                .publish_event(event)
                .map_err(|e| FunctionError::Internal(format!("re-drive: {e}")))?;
            let refreshed = OwedEntry {
                since: now,
                redriven: entry.redriven + 1,
                ..entry
            };
            env.owed().set_json(&key, &refreshed)?;
            report.redriven.push(record.order().id().to_string());
            continue;
        }
        // Rests with nothing owed but still names the entry (a crash before the mark): clear
        // the order's marker, then the entry.
        run(env, &entry.order, |r| {
            if r.marker() == Some(key.as_str()) && !r.owes_work() {
                Ok(Decision::Changed(()))
            } else {
                Ok(Decision::Unchanged(()))
            }
        })?;
        report.dropped += 1;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{for_every_fault, Fault, FaultPlan, FaultyEnv, MemEnv};
    use chrono::Duration;
    use oms_domain::testkit::sku1_order;
    use oms_domain::{OrderId, OrderStatus};
    use serde_json::json;

    fn order(env: &MemEnv, n: u128) -> OrderRecord {
        let o = sku1_order(
            OrderId::new(Uuid::from_u128(n)),
            1,
            "10.00",
            "captured",
            env.now(),
        );
        OrderRecord::accept(o, Uuid::from_u128(1000 + n), env.now()).unwrap()
    }

    fn stored(env: &MemEnv, n: u128) -> OrderRecord {
        env.kv
            .get_json(&keys::order(&Uuid::from_u128(n).to_string()))
            .unwrap()
            .unwrap()
    }

    fn reserve<E: Env>(env: &E, n: u128) -> Result<(), FunctionError> {
        run(env, &Uuid::from_u128(n).to_string(), |r| {
            if r.status() != OrderStatus::Validated {
                return Ok(Decision::Unchanged(()));
            }
            r.transition(
                OrderStatus::Reserved,
                json!({}),
                Uuid::from_u128(2000 + n),
                env.now(),
            )
            .map_err(|e| FunctionError::Internal(e.to_string()))?;
            Ok(Decision::Changed(()))
        })
    }

    #[test]
    fn create_stores_publishes_and_indexes_until_the_next_step_runs() {
        let env = MemEnv::new();
        let c = create(&env, order(&env, 1)).unwrap();
        assert!(c.new);
        assert_eq!(env.published(), ["order.validated"]);
        let r = stored(&env, 1);
        assert!(r.outbox().is_empty(), "published events leave the outbox");
        assert_eq!(env.owed.keys().unwrap().len(), 1, "reserve is still owed");
        // The same intent again finds the same order and publishes nothing new.
        let again = create(&env, order(&env, 1)).unwrap();
        assert!(!again.new);
        assert_eq!(env.published().len(), 1);
        reserve(&env, 1).unwrap();
        assert_eq!(env.published(), ["order.validated", "order.reserved"]);
        assert_eq!(env.owed.keys().unwrap().len(), 1, "route is owed now");
    }

    #[test]
    fn a_step_purges_its_order_and_the_stock_it_wrote_once_after_its_swap() {
        let env = MemEnv::new();
        crate::purge::take_sent();
        create(&env, order(&env, 1)).unwrap();
        assert!(
            crate::purge::take_sent().is_empty(),
            "a new order was never cached"
        );
        let id = Uuid::from_u128(1).to_string();
        run(&env, &id, |r| {
            crate::stock::update_stock(env.kv(), "SKU-1", "wh-1", |d| Ok(d.clone()))?;
            crate::stock::update_stock(env.kv(), "SKU-1", "wh-2", |d| {
                d.recount(d.level.on_hand() + 5)
            })?;
            r.transition(
                OrderStatus::Reserved,
                json!({}),
                Uuid::from_u128(9),
                env.now(),
            )
            .map_err(|e| FunctionError::Internal(e.to_string()))?;
            assert!(crate::purge::take_sent().is_empty(), "not before the swap");
            Ok(Decision::Changed(()))
        })
        .unwrap();
        assert_eq!(
            crate::purge::take_sent(),
            [vec![format!("order-{id}"), "sku-SKU-1".to_string()]],
            "one request: the order and the stock it changed (the unchanged document is not)"
        );
        run(&env, &id, |_| Ok(Decision::Unchanged(()))).unwrap();
        assert!(crate::purge::take_sent().is_empty(), "nothing changed");
    }

    #[test]
    fn a_refused_publish_stays_owed_and_the_reconciler_sends_it() {
        let env = MemEnv::new();
        let plan = FaultPlan::new(Some(4), Fault::Error); // read, set entry, swap, publish
        create(&FaultyEnv::new(&env, &plan), order(&env, 1)).unwrap();
        assert!(plan.fired());
        assert!(env.published().is_empty());
        assert_eq!(stored(&env, 1).outbox().len(), 1);
        let early = reconcile(&env, Duration::seconds(60), 100).unwrap();
        assert_eq!(early.waiting, 1, "{early:?}");
        env.advance(Duration::seconds(61));
        let pass = reconcile(&env, Duration::seconds(60), 100).unwrap();
        assert_eq!(pass.republished, 1, "{pass:?}");
        assert_eq!(env.published(), ["order.validated"]);
        assert!(stored(&env, 1).outbox().is_empty());
    }

    #[test]
    fn keys_that_are_not_owed_entries_are_never_touched() {
        let env = MemEnv::new();
        env.owed.set("order:1", b"{\"not\":\"an entry\"}").unwrap();
        env.owed
            .set_json(
                "x/y",
                &OwedEntry {
                    order: "x".into(),
                    since: env.now(),
                    redriven: 0,
                },
            )
            .unwrap();
        env.advance(Duration::seconds(61));
        let pass = reconcile(&env, Duration::seconds(60), 100).unwrap();
        assert_eq!((pass.foreign, pass.dropped), (2, 0), "{pass:?}");
        assert_eq!(env.owed.keys().unwrap().len(), 2);
    }

    #[test]
    fn a_lost_trigger_is_redriven_with_the_same_event_id() {
        let env = MemEnv::new();
        create(&env, order(&env, 1)).unwrap();
        env.advance(Duration::seconds(61));
        let pass = reconcile(&env, Duration::seconds(60), 100).unwrap();
        assert_eq!(pass.redriven.len(), 1, "{pass:?}");
        let sent = env.bus.sent.borrow();
        assert_eq!(sent[0], sent[1], "the re-drive is the same event, same id");
    }

    #[test]
    fn every_fault_at_every_io_call_ends_in_the_same_state() {
        for_every_fault(
            |_| {},
            |env| {
                let _ = create(env, order(env.inner(), 1));
                let _ = reserve(env, 1);
            },
            |env| {
                // Retries (the client's, the queue's) and the reconciler finish the job.
                let _ = create(env, order(env, 1));
                let _ = reserve(env, 1);
                env.advance(Duration::seconds(120));
                reconcile(env, Duration::seconds(60), 100).unwrap();
            },
            |env, fault| {
                let r = stored(env, 1);
                assert_eq!(r.status(), OrderStatus::Reserved, "{fault}");
                assert!(r.outbox().is_empty(), "{fault}");
                let sent = env.published();
                assert!(sent.contains(&"order.validated".to_string()), "{fault}");
                assert!(sent.contains(&"order.reserved".to_string()), "{fault}");
                // Only `route` is owed: one live entry, naming the order.
                let live: Vec<String> = env.owed.keys().unwrap();
                assert_eq!(live.len(), 1, "{fault}: {live:?}");
                assert_eq!(r.marker(), Some(live[0].as_str()), "{fault}");
            },
        );
    }
}
