//! The lifecycle engine through the real host (issue 10, "Tests"): guests cut off at their
//! deadline during an intake burst (embedded store and on Redis), `kill -9` of the host under
//! load, hosts that lose their queue (an at-most-once transport), cancel racing the steps, a
//! backorder limit under concurrency, refunds and returns on a split order. Each test ends the
//! way the engine promises: after retries (same Idempotency-Key, same marketplace delivery)
//! and the reconciler, exactly one order per intent, none stuck mid-lifecycle, no unit of
//! stock created or lost.
//!
//! Counts are bounded (the file runs in about three minutes on two cores) and nothing asserts
//! on timing: sleeps only shape the races, the assertions hold for every interleaving.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, RwLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::oms::*;
use support::redis::RedisServer;
use support::*;

/// One intent to order: the same intent always goes out as the same request (a retry).
#[derive(Debug, Clone)]
enum Intent {
    /// `POST /v1/orders` with this Idempotency-Key.
    Storefront { key: String, body: String },
    /// A Shopify `orders/create` delivery (external id: the payload's `id`).
    Shopify { body: String },
    /// A Standard Webhooks delivery (external id: `webhook-id`), re-sent with the same id,
    /// timestamp and signature, as a marketplace redelivers.
    Standard {
        msg_id: String,
        ts: i64,
        body: String,
    },
}

impl Intent {
    /// A storefront order for one unit of `sku` ($5.00) under `key`.
    fn storefront(key: String, sku: &'static str) -> Intent {
        let body = OrderSpec {
            lines: vec![(sku, 1, 500)],
            ..OrderSpec::default()
        }
        .body()
        .to_string();
        Intent::Storefront { key, body }
    }

    /// Sends it once to the OMS at `base`; `Err` when nothing answered.
    fn send(&self, base: &str) -> Result<Reply, String> {
        match self {
            Intent::Storefront { key, body } => try_send(
                "POST",
                &format!("{base}/v1/orders"),
                Some(body.as_bytes()),
                &[
                    ("idempotency-key", key),
                    ("content-type", "application/json"),
                ],
            ),
            Intent::Shopify { body } => try_send(
                "POST",
                &format!("{base}/v1/channels/{SHOPIFY_CHANNEL}/orders"),
                Some(body.as_bytes()),
                &[
                    ("x-shopify-hmac-sha256", &shopify_signature(body)),
                    ("content-type", "application/json"),
                ],
            ),
            Intent::Standard { msg_id, ts, body } => {
                let headers = standard_webhook_headers(msg_id, *ts, body);
                let headers: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                try_send(
                    "POST",
                    &format!("{base}/v1/channels/{STANDARD_CHANNEL}/orders"),
                    Some(body.as_bytes()),
                    &headers,
                )
            }
        }
    }

    /// Sends it until the OMS at `base()` accepts it (2xx with the order id), retrying what a
    /// client retries — no answer, 5xx, 409 "in progress" — up to `patience`; the order id.
    /// Any other answer (a 4xx) fails the test: a retry of an accepted intent is never
    /// refused.
    fn until_accepted(&self, base: impl Fn() -> String, patience: Duration) -> String {
        let start = Instant::now();
        let mut seen = Vec::new();
        loop {
            match self.send(&base()) {
                Ok(r) if (200..300).contains(&r.status) => {
                    let id = r.json()["id"].as_str().map(str::to_string);
                    return id.unwrap_or_else(|| panic!("{self:?}: no id in {}", r.body));
                }
                Ok(r) if r.status >= 500 || r.status == 409 => seen.push(r.status.to_string()),
                Ok(r) => panic!(
                    "{self:?} refused ({}): {}; before: {seen:?}",
                    r.status, r.body
                ),
                Err(e) => seen.push(e),
            }
            assert!(
                start.elapsed() < patience,
                "{self:?} never accepted; answers: {seen:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Where the OMS under test keeps its key-value store and queue.
#[derive(Clone, Copy)]
enum Backend<'a> {
    /// Embedded SQLite and the embedded queue, in the host's state folder.
    Embedded,
    /// One Redis server for both (the scale-out set-up).
    Redis(&'a RedisServer),
}

/// The order keys of the `default` store on the host's Redis key-value backend.
const REDIS_ORDER_KEYS: &str = "oms:kv:default:v:order:";

impl Backend<'_> {
    /// Starts an OMS with `args` (on `state`, for the embedded backend).
    fn start(self, state: tempfile::TempDir, args: &[&str]) -> Oms {
        match self {
            Backend::Embedded => Oms::start_in(state, args, &[]),
            Backend::Redis(redis) => Oms::start_on_redis(redis, &[], args),
        }
    }

    /// Deletes the queue of a stopped OMS: every message it still held (steps owed,
    /// redeliveries) is gone, as with a transport that delivers at most once (real Spin's
    /// Redis pub/sub). From then on only the outbox and the reconciler can move those orders.
    fn lose_the_queue(self, state: &tempfile::TempDir) {
        match self {
            Backend::Embedded => {
                for file in ["queue.db", "queue.db-wal", "queue.db-shm"] {
                    let path = state.path().join(file);
                    if path.exists() {
                        std::fs::remove_file(&path).unwrap();
                    }
                }
            }
            Backend::Redis(redis) => {
                for key in redis.keys("oms:q:*") {
                    assert_eq!(redis.command(&format!("DEL {key}")).as_deref(), Some(":1"));
                }
            }
        }
    }

    /// The ids of every stored order.
    fn stored_order_ids(self, oms: &Oms) -> BTreeSet<String> {
        match self {
            Backend::Embedded => oms.stored_order_ids().into_iter().collect(),
            Backend::Redis(redis) => redis
                .keys(&format!("{REDIS_ORDER_KEYS}*"))
                .into_iter()
                .map(|k| k.trim_start_matches(REDIS_ORDER_KEYS).to_string())
                .collect(),
        }
    }
}

/// The status of every order in `ids`.
fn statuses(oms: &Oms, ids: &BTreeSet<String>) -> BTreeMap<String, String> {
    ids.iter()
        .map(|id| {
            let status = oms.order(id)["status"].as_str().unwrap().to_string();
            (id.clone(), status)
        })
        .collect()
}

/// Waits until no order in `ids` stands mid-lifecycle (`validated`, `reserved`); their
/// statuses. Stuck orders fail the test with their statuses and the reconciler's view.
fn settled(oms: &Oms, ids: &BTreeSet<String>) -> BTreeMap<String, String> {
    let start = Instant::now();
    loop {
        let now = statuses(oms, ids);
        let stuck: Vec<_> = now
            .iter()
            .filter(|(_, s)| matches!(s.as_str(), "validated" | "reserved"))
            .collect();
        if stuck.is_empty() {
            return now;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "orders stuck mid-lifecycle: {stuck:?}\nreconciler: {:#}\nlog tail:\n{}",
            oms.reconcile(0, 500),
            tail(&oms.host.log(), 40)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The last `n` lines of a log.
fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `(on_hand, reserved, allocated, available)` of a SKU over all locations; panics when a
/// location's counts do not add up (held or allocated units it does not have).
fn stock_of(oms: &Oms, sku: &str) -> (u64, u64, u64, u64) {
    let a = oms.availability(sku);
    for loc in a["locations"].as_array().unwrap() {
        let n = |f: &str| loc[f].as_u64().unwrap();
        assert_eq!(
            n("reserved") + n("allocated") + n("available"),
            n("on_hand"),
            "{sku}: units at a location do not add up: {loc}"
        );
    }
    let n = |f: &str| a[f].as_u64().unwrap();
    (n("on_hand"), n("reserved"), n("allocated"), n("available"))
}

/// Checks the end of a run of single-unit orders for `sku` with `units` in stock: one order
/// per intent (`ids` holds each intent's order), exactly those orders stored, none stuck,
/// each routed or rejected as the stock says, every routed order holding its one unit.
fn assert_one_order_per_intent(
    backend: Backend,
    oms: &Oms,
    sku: &str,
    units: u64,
    ids: &BTreeMap<String, String>,
) {
    let orders: BTreeSet<String> = ids.values().cloned().collect();
    assert_eq!(
        orders.len(),
        ids.len(),
        "two intents share an order: {ids:#?}"
    );
    let stored = backend.stored_order_ids(oms);
    assert_eq!(
        stored.difference(&orders).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "orders stored that no intent was answered with (a retry created a second order)"
    );
    assert_eq!(stored, orders, "every accepted order is stored");
    let passes = oms.reconcile_until_quiet(Duration::from_secs(60));
    let redriven: usize = passes
        .iter()
        .map(|p| p["redriven"].as_array().map_or(0, Vec::len))
        .sum();
    let republished: u64 = passes
        .iter()
        .filter_map(|p| p["republished"].as_u64())
        .sum();
    eprintln!(
        "reconciler: {} passes, {redriven} re-drives, {republished} events re-published",
        passes.len()
    );
    let statuses = settled(oms, &orders);
    let routed: Vec<&String> = statuses
        .iter()
        .filter(|(_, s)| *s == "routed")
        .map(|(id, _)| id)
        .collect();
    let others: Vec<_> = statuses
        .iter()
        .filter(|(_, s)| !matches!(s.as_str(), "routed" | "rejected"))
        .collect();
    assert!(others.is_empty(), "neither routed nor rejected: {others:?}");
    let demand = orders.len() as u64;
    assert_eq!(
        routed.len() as u64,
        demand.min(units),
        "{demand} one-unit orders for {units} units: {statuses:#?}"
    );
    for id in &routed {
        let order = oms.order(id);
        let shipped: u64 = order["shipments"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["lines"].as_array().unwrap())
            .map(|l| l["units"].as_u64().unwrap())
            .sum();
        assert_eq!(shipped, 1, "routed order {id} carries one unit: {order:#}");
    }
    assert_eq!(
        stock_of(oms, sku),
        (units, 0, routed.len() as u64, units - routed.len() as u64),
        "{sku}: (on hand, reserved, allocated, available)"
    );
}

/// The standard network, with `units` of SKU-2 split over the two warehouses.
fn seeded(oms: &Oms, units: u32) {
    oms.seed();
    oms.stock("SKU-2", "wh-east", units / 2);
    oms.stock("SKU-2", "wh-west", units - units / 2);
}

/// A burst of storefront orders and marketplace deliveries against a host whose request
/// deadline cuts guests off mid-step (504). Then a host on the normal deadline that has lost
/// whatever the first one queued, every request retried until answered, and the reconciler
/// until quiet: exactly one order per Idempotency-Key and per external id, none left
/// `validated`, the 40 units sold once.
#[test]
fn a_deadline_burst_then_retries_and_the_reconciler_leave_one_order_per_intent() {
    deadline_burst(Backend::Embedded);
}

/// The same on Redis (key-value and queue), where a guest cut off may be waiting on the
/// network in the middle of a compare-and-swap.
#[test]
fn on_redis_a_deadline_burst_then_retries_and_the_reconciler_leave_one_order_per_intent() {
    let redis = RedisServer::start();
    deadline_burst(Backend::Redis(&redis));
}

fn deadline_burst(backend: Backend) {
    const UNITS: u32 = 40;
    let oms = backend.start(tempfile::tempdir().unwrap(), &[]);
    seeded(&oms, UNITS);
    let ts = unix_now();
    let mut intents: Vec<(String, Intent)> = Vec::new();
    for i in 0..40 {
        let key = format!("burst-{i}");
        intents.push((key.clone(), Intent::storefront(key, "SKU-2")));
    }
    for i in 0..12u64 {
        let body = shopify_order(7_000_000 + i, "SKU-2", 1);
        intents.push((format!("shopify-{i}"), Intent::Shopify { body }));
    }
    for i in 0..12 {
        let msg_id = format!("msg_burst_{i}");
        let body = OrderSpec {
            lines: vec![("SKU-2", 1, 500)],
            ..OrderSpec::default()
        }
        .body()
        .to_string();
        intents.push((msg_id.clone(), Intent::Standard { msg_id, ts, body }));
    }

    // The burst, on a host that stops guests after a few milliseconds.
    let state = oms.kill();
    let short = backend.start(state, &["--http-deadline-ms", "10"]);
    // Every intent sent once per round; rounds (retries, as clients would) until the
    // deadline has cut some request off — whether one is cut depends on the machine's pace.
    let mut first: Vec<(String, Result<Reply, String>)> = Vec::new();
    for _round in 0..5 {
        let replies: Vec<(String, Result<Reply, String>)> = std::thread::scope(|s| {
            let workers: Vec<_> = intents
                .chunks(8)
                .map(|chunk| {
                    let base = short.host.base.clone();
                    s.spawn(move || {
                        chunk
                            .iter()
                            .map(|(name, intent)| (name.clone(), intent.send(&base)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap())
                .collect()
        });
        first.extend(replies);
        if first
            .iter()
            .any(|(_, r)| r.as_ref().is_ok_and(|r| r.status == 504))
        {
            break;
        }
    }
    let cut_off = first
        .iter()
        .filter(|(_, r)| r.as_ref().is_ok_and(|r| r.status == 504))
        .count();
    let histogram: BTreeMap<String, usize> = first.iter().fold(BTreeMap::new(), |mut h, (_, r)| {
        let k = match r {
            Ok(r) => r.status.to_string(),
            Err(e) if e.contains("broken body") => "head without its body".into(),
            Err(_) => "no answer".into(),
        };
        *h.entry(k).or_default() += 1;
        h
    });
    let answered = first
        .iter()
        .filter(|(_, r)| r.as_ref().is_ok_and(|r| (200..300).contains(&r.status)))
        .map(|(name, _)| name)
        .collect::<BTreeSet<_>>()
        .len();
    eprintln!(
        "burst answers on the short deadline: {histogram:?}; orders stored by requests cut \
         off after their write: {}",
        backend
            .stored_order_ids(&short)
            .len()
            .saturating_sub(answered)
    );
    assert!(
        cut_off > 0,
        "no request was cut off at the deadline, the test proves nothing: {histogram:?}"
    );

    // A normal host on the same state, without the messages the cut-off host queued; every
    // intent retried until answered.
    let state = short.kill();
    backend.lose_the_queue(&state);
    let oms = backend.start(state, &[]);
    let ids: BTreeMap<String, String> = std::thread::scope(|s| {
        let workers: Vec<_> = intents
            .chunks(8)
            .map(|chunk| {
                let base = oms.host.base.clone();
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|(name, intent)| {
                            let id =
                                intent.until_accepted(|| base.clone(), Duration::from_secs(30));
                            (name.clone(), id)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    for (name, reply) in &first {
        if let Ok(r) = reply {
            if (200..300).contains(&r.status) {
                assert_eq!(
                    r.json()["id"].as_str(),
                    Some(ids[name].as_str()),
                    "{name}: the retry found another order than the first answer"
                );
            }
        }
    }
    // Stripe semantics after a 5xx: the key stays bound to its body.
    let other_body = OrderSpec {
        lines: vec![("SKU-2", 2, 500)],
        ..OrderSpec::default()
    }
    .body();
    let mut rebound = 0;
    for (name, reply) in &first {
        let cut = reply.as_ref().is_ok_and(|r| r.status == 504);
        if cut && name.starts_with("burst-") {
            rebound += 1;
            let r = until_answered(|| oms.place(&other_body, name));
            assert_eq!(
                r.status, 422,
                "{name}: another body under a key cut off at 504, then answered: {}",
                r.body
            );
        }
    }
    eprintln!("{rebound} keys cut off at 504 refused another body");
    assert_one_order_per_intent(backend, &oms, "SKU-2", u64::from(UNITS), &ids);
}

/// Clients keep posting storefront orders (each retried with its own key until accepted)
/// while the host is killed with SIGKILL 20 times, every fifth time also losing its queue
/// (what it held is never delivered); then the reconciler on the last host: every accepted
/// order settles, none is duplicated, the 30 units are sold once.
#[test]
fn kill_9_under_load_loses_doubles_and_oversells_nothing() {
    const UNITS: u32 = 30;
    const KILLS: u64 = 20;
    const CLIENTS: usize = 4;
    // A cap only: the clients post until the kills are over (about 20 s).
    const PER_CLIENT: usize = 150;
    let oms = Oms::start();
    seeded(&oms, UNITS);
    let base = Arc::new(RwLock::new(oms.host.base.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (base, stop) = (base.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                for i in 0..PER_CLIENT {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let key = format!("kill-{c}-{i}");
                    let intent = Intent::storefront(key.clone(), "SKU-2");
                    let id = intent
                        .until_accepted(|| base.read().unwrap().clone(), Duration::from_secs(120));
                    ids.push((key, id));
                    std::thread::sleep(Duration::from_millis(200));
                }
                ids
            })
        })
        .collect();
    let mut oms = oms;
    for k in 0..KILLS {
        // Up to ~1 s of load per life, varied so kills land in different steps.
        std::thread::sleep(Duration::from_millis(100 + (k * 373) % 900));
        let state = oms.kill();
        if k % 5 == 4 {
            Backend::Embedded.lose_the_queue(&state);
        }
        oms = Oms::start_in(state, &[], &[]);
        *base.write().unwrap() = oms.host.base.clone();
    }
    let busy = Arc::strong_count(&stop) - 1;
    stop.store(true, Ordering::Relaxed);
    assert_eq!(
        busy, CLIENTS,
        "a client stopped posting before the last kill"
    );
    let ids: BTreeMap<String, String> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert!(
        ids.len() >= CLIENTS,
        "the clients placed almost nothing: {ids:?}"
    );
    eprintln!("{} orders accepted across {KILLS} kills", ids.len());
    assert_one_order_per_intent(Backend::Embedded, &oms, "SKU-2", u64::from(UNITS), &ids);
}

/// POSTs a JSON body as staff until the OMS answers something other than 503/504.
fn post_answered(oms: &Oms, path: &str, headers: &[(&str, &str)], body: &Value) -> Reply {
    let auth = staff_auth();
    let mut all = vec![
        ("content-type", "application/json"),
        ("authorization", &auth),
    ];
    all.extend_from_slice(headers);
    until_answered(|| {
        send(
            "POST",
            &oms.url(path),
            Some(body.to_string().as_bytes()),
            &all,
        )
    })
}

/// The order's shipments: (id, location, units, status).
fn shipments(order: &Value) -> Vec<(String, String, u64, String)> {
    order["shipments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let units = s["lines"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["units"].as_u64().unwrap())
                .sum();
            let text = |f: &str| s[f].as_str().unwrap_or_default().to_string();
            (text("id"), text("location"), units, text("status"))
        })
        .collect()
}

/// Waits until the embedded queue has nothing pending, in flight or scheduled.
fn wait_queue_idle(oms: &Oms) {
    eventually(Duration::from_secs(60), "the queue to drain", || {
        let stats = oms.queue_stats();
        stats.iter().all(|s| s.2 + s.3 + s.4 == 0).then_some(())
    });
}

/// Cancels race reserve and route (sent at staggered moments after intake) and ship (sent at
/// the same moment as the shipment update). Each order ends consistent: cancelled with its
/// stock released, or shipped and not cancelled; SKU-3's units are conserved.
#[test]
fn cancel_racing_reserve_route_and_ship_ends_consistent_and_conserves_stock() {
    const UNITS: u32 = 20;
    let oms = Oms::start_with(&["--http-deadline-ms", "5000"], &[]);
    oms.seed();
    oms.stock("SKU-3", "wh-east", UNITS);
    let two = OrderSpec {
        lines: vec![("SKU-3", 2, 12000)],
        ..OrderSpec::default()
    }
    .body();

    // Cancel while the order is validated, being reserved, reserved, being routed, routed.
    let offsets_ms = [0u64, 2, 5, 10, 20, 40, 80, 160];
    let raced: Vec<(String, Reply)> = std::thread::scope(|s| {
        let workers: Vec<_> = offsets_ms
            .iter()
            .enumerate()
            .map(|(i, wait)| {
                let (oms, two) = (&oms, &two);
                s.spawn(move || {
                    let placed = until_answered(|| oms.place(two, &format!("cancel-race-{i}")));
                    assert_eq!(placed.status, 202, "{}", placed.body);
                    let id = placed.json()["id"].as_str().unwrap().to_string();
                    std::thread::sleep(Duration::from_millis(*wait));
                    let path = format!("/v1/orders/{id}/cancel");
                    let r = post_answered(oms, &path, &[], &json!({"reason": "race"}));
                    (id, r)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    for (id, r) in &raced {
        assert_eq!(
            r.status, 200,
            "an unshipped order can always be cancelled ({id}): {}",
            r.body
        );
    }

    // Cancel and ship sent together on routed one-unit orders.
    let one = OrderSpec {
        lines: vec![("SKU-3", 1, 12000)],
        ..OrderSpec::default()
    }
    .body();
    let mut shipped_units = 0;
    let mut outcomes = Vec::new();
    // The shipment update leaves 0..20 ms after the cancel, so either may land first.
    for (i, ship_after_ms) in [0u64, 1, 3, 6, 10, 20].into_iter().enumerate() {
        let placed = until_answered(|| oms.place(&one, &format!("ship-race-{i}")));
        assert_eq!(placed.status, 202, "{}", placed.body);
        let id = placed.json()["id"].as_str().unwrap().to_string();
        let order = oms.wait_status(&id, "routed");
        let (sid, ..) = shipments(&order)[0].clone();
        let gate = Barrier::new(2);
        let (cancel, ship) = std::thread::scope(|s| {
            let cancel = s.spawn(|| {
                gate.wait();
                post_answered(&oms, &format!("/v1/orders/{id}/cancel"), &[], &json!({}))
            });
            let ship = s.spawn(|| {
                gate.wait();
                std::thread::sleep(Duration::from_millis(ship_after_ms));
                post_answered(
                    &oms,
                    &format!("/v1/shipments/{sid}/shipped"),
                    &[],
                    &json!({"carrier": "ups", "tracking": format!("1Z{i}")}),
                )
            });
            (cancel.join().unwrap(), ship.join().unwrap())
        });
        let order = oms.order(&id);
        let events = oms.event_types(&id);
        let cancelled = events.iter().any(|e| e == "order.cancelled");
        let now = shipments(&order);
        if cancelled {
            assert_eq!(cancel.status, 200, "{}", cancel.body);
            assert!(
                matches!(ship.status, 404 | 409),
                "a cancelled order's shipment cannot ship: {} {}",
                ship.status,
                ship.body
            );
            assert_eq!(order["status"], "cancelled", "{order:#}");
            assert!(
                now.iter().all(|s| s.3 != "shipped" && s.3 != "delivered"),
                "{order:#}"
            );
            assert!(!events.iter().any(|e| e == "order.shipped"), "{events:?}");
        } else {
            assert_eq!(ship.status, 200, "{}", ship.body);
            assert_eq!(
                cancel.status, 409,
                "a shipped order is not cancelled: {}",
                cancel.body
            );
            assert_eq!(order["status"], "shipped", "{order:#}");
            assert!(
                matches!(&now[..], [(_, _, 1, s)] if s == "shipped"),
                "one shipment of one unit, shipped: {order:#}"
            );
            shipped_units += 1;
        }
        outcomes.push((cancelled, cancel.status, ship.status));
    }
    eprintln!("cancel vs ship (cancelled, cancel, ship): {outcomes:?}");

    oms.reconcile_until_quiet(Duration::from_secs(30));
    wait_queue_idle(&oms);
    for (id, _) in &raced {
        let order = oms.order(id);
        assert_eq!(order["status"], "cancelled", "{order:#}");
        let events = oms.event_types(id);
        let cancel_at = events.iter().position(|e| e == "order.cancelled").unwrap();
        assert!(
            !events[cancel_at..]
                .iter()
                .any(|e| matches!(e.as_str(), "order.reserved" | "order.routed")),
            "a step ran on {id} after its cancel: {events:?}"
        );
    }
    let units = u64::from(UNITS);
    assert_eq!(
        stock_of(&oms, "SKU-3"),
        (units - shipped_units, 0, 0, units - shipped_units),
        "every cancelled unit back, every shipped unit gone: (on hand, reserved, allocated, available)"
    );
}

/// A split order: a return of units not yet shipped is refused; a partial refund after the
/// first shipment leaves the second free to ship and the order to reach `delivered`.
#[test]
fn a_partially_refunded_split_order_still_ships_and_delivers_and_unshipped_units_cannot_return() {
    let oms = Oms::start();
    oms.seed();
    oms.admin_put(
        "/v1/admin/routing-policy",
        json!({"split_limit": 2, "cost_per_km": "0.01"}),
    );
    oms.stock("SKU-1", "wh-east", 3);
    oms.stock("SKU-1", "wh-west", 2);
    let placed = oms.place(
        &OrderSpec {
            lines: vec![("SKU-1", 5, 1999)],
            ..OrderSpec::default()
        }
        .body(),
        "split-1",
    );
    assert_eq!(placed.status, 202, "{}", placed.body);
    let id = placed.json()["id"].as_str().unwrap().to_string();
    let order = oms.wait_status(&id, "routed");
    let mut parts = shipments(&order);
    parts.sort_by_key(|s| std::cmp::Reverse(s.2));
    let [(first, _, 3, _), (second, _, 2, _)] = &parts[..] else {
        panic!("expected 3 + 2 units in two shipments: {order:#}");
    };

    let return_of = |quantity: u32| {
        post_answered(
            &oms,
            &format!("/v1/orders/{id}/returns"),
            &[],
            &json!({"items": [{"line": 0, "quantity": quantity}], "reason": "unwanted"}),
        )
    };
    let r = return_of(1);
    assert!(
        matches!(r.status, 409 | 422),
        "nothing shipped yet, nothing to return: {} {}",
        r.status,
        r.body
    );
    let ship = |sid: &str| {
        post_answered(
            &oms,
            &format!("/v1/shipments/{sid}/shipped"),
            &[],
            &json!({"carrier": "ups", "tracking": format!("1Z-{sid}")}),
        )
    };
    let r = ship(first);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(oms.order(&id)["status"], "partially_shipped");
    let r = return_of(4);
    assert!(
        matches!(r.status, 409 | 422),
        "4 units returned of 3 shipped: {} {}",
        r.status,
        r.body
    );
    assert_eq!(
        oms.order(&id)["returns"].as_array().map_or(0, Vec::len),
        0,
        "a refused return leaves no trace"
    );

    let r = post_answered(
        &oms,
        &format!("/v1/orders/{id}/refunds"),
        &[("idempotency-key", "split-goodwill")],
        &json!({"items": [{"kind": "amount", "amount": "5.00"}], "reason": "late"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let order = oms.order(&id);
    assert_eq!(
        order["status"], "partially_shipped",
        "a refund is a payment matter: {order:#}"
    );
    assert_eq!(order["payment_status"], "partially_refunded", "{order:#}");

    let r = ship(second);
    assert_eq!(
        r.status, 200,
        "the second shipment ships after a refund: {}",
        r.body
    );
    assert_eq!(oms.order(&id)["status"], "shipped");
    for sid in [first, second] {
        let r = post_answered(
            &oms,
            &format!("/v1/shipments/{sid}/delivered"),
            &[],
            &json!({}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let order = oms.order(&id);
    assert_eq!(order["status"], "delivered", "{order:#}");
    assert_eq!(order["payment_status"], "partially_refunded", "{order:#}");
    assert_eq!(cents_of(&order["refunded_total"]), 500, "{order:#}");
    assert_eq!(
        stock_of(&oms, "SKU-1"),
        (0, 0, 0, 0),
        "all 5 units left: (on hand, reserved, allocated, available)"
    );
    // Now that 3 + 2 units shipped, returning 4 is allowed.
    let r = return_of(4);
    assert_eq!(r.status, 201, "{}", r.body);
}

/// A backorder limit (`up_to`) under concurrent orders: it is never exceeded, and a cancelled
/// backorder gives its promise back for the next order.
#[test]
fn a_backorder_limit_holds_under_concurrent_orders_and_a_cancel_gives_its_promise_back() {
    const LIMIT: usize = 5;
    let oms = Oms::start_with(&["--queue-concurrency", "8"], &[]);
    oms.seed();
    oms.stock("SKU-3", "wh-east", 0);
    oms.admin_put("/v1/admin/backorder/SKU-3", json!({"up_to": LIMIT}));
    let one = OrderSpec {
        lines: vec![("SKU-3", 1, 12000)],
        ..OrderSpec::default()
    }
    .body();
    let place_all = |keys: Vec<String>| -> BTreeMap<String, String> {
        let ids: BTreeSet<String> = std::thread::scope(|s| {
            let workers: Vec<_> = keys
                .iter()
                .map(|key| {
                    let one = &one;
                    let oms = &oms;
                    s.spawn(move || {
                        let r = until_answered(|| oms.place(one, key));
                        assert_eq!(r.status, 202, "{}", r.body);
                        r.json()["id"].as_str().unwrap().to_string()
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        oms.reconcile_until_quiet(Duration::from_secs(30));
        settled(&oms, &ids)
    };
    let count = |statuses: &BTreeMap<String, String>, status: &str| {
        statuses.values().filter(|s| *s == status).count()
    };
    let first = place_all((0..12).map(|i| format!("promise-{i}")).collect());
    assert_eq!(
        (count(&first, "backordered"), count(&first, "rejected")),
        (LIMIT, 12 - LIMIT),
        "{first:#?}"
    );
    let backordered: Vec<&String> = first
        .iter()
        .filter(|(_, s)| *s == "backordered")
        .map(|(id, _)| id)
        .take(2)
        .collect();
    for id in &backordered {
        let r = post_answered(&oms, &format!("/v1/orders/{id}/cancel"), &[], &json!({}));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    wait_queue_idle(&oms);
    let second = place_all((0..3).map(|i| format!("promise-again-{i}")).collect());
    assert_eq!(
        (count(&second, "backordered"), count(&second, "rejected")),
        (2, 1),
        "two promises came back with the two cancels: {second:#?}"
    );
    assert_eq!(stock_of(&oms, "SKU-3"), (0, 0, 0, 0));
}

/// `"12.34"` (or `{"amount": "12.34"}`) in cents.
fn cents_of(amount: &Value) -> i64 {
    let text = amount
        .as_str()
        .or_else(|| amount["amount"].as_str())
        .unwrap_or_else(|| panic!("not an amount: {amount}"));
    let (units, fraction) = text.split_once('.').unwrap_or((text, "0"));
    units.parse::<i64>().unwrap() * 100 + format!("{fraction:0<2}")[..2].parse::<i64>().unwrap()
}
