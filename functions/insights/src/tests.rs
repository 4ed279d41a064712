//! Native tests of the projection, the counters and the search index on the in-memory store.

use std::rc::Rc;

use chrono::{DateTime, Duration, Utc};
use oms_domain::{EventEnvelope, Order, OrderId, OrderRecord, OrderStatus};
use oms_edge::api_keys::{self, KeyRole};
use oms_edge::{for_every_fault, keys, Env, Kv, MemEnv, MemKv, RacingEnv};
use serde_json::{json, Value};
use spin_sdk::http::{Method, Request, Response};
use uuid::Uuid;

use crate::kpi::{self, Counters, Kpis};
use crate::message::{Message, Settled, WebhookOutcome};
use crate::projection::{self, entry_key, Handled, OrderEntry};
use crate::search::{self, Cursor, Filter};

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600 + seconds, 0).unwrap()
}

fn id(n: u128) -> OrderId {
    OrderId::new(Uuid::from_u128(n))
}

/// An accepted order `n` of `units` × 10.00 USD, placed at `placed`, captured.
fn accepted(n: u128, channel: &str, email: &str, units: u32, placed: DateTime<Utc>) -> OrderRecord {
    let total = format!("{}.00", 10 * units);
    let body = json!({
        "channel": channel, "customer": {"email": email}, "currency": "USD",
        "lines": [{"sku": "SKU-1", "quantity": units, "unit_price": "10.00"}],
        "shipping": {"method": "standard", "amount": "0.00",
            "address": {"country": "US", "postal_code": "94107", "line1": "1 Main", "city": "SF"}},
        "tax": "0.00",
        "totals": {"subtotal": total, "discount": "0.00", "shipping": "0.00", "tax": "0.00", "grand_total": total},
        "payment": {"reference": "pi_1", "status": "captured", "amount": total}
    });
    let order = Order::from_request(&body, id(n), placed).expect("a valid order");
    OrderRecord::accept(order, Uuid::from_u128(n * 1000 + 1), placed).unwrap()
}

/// Moves `record` to `to` (event id from `n` and the sequence) and stores it; the new event.
fn step(
    kv: &MemKv,
    record: &mut OrderRecord,
    to: OrderStatus,
    data: Value,
    when: DateTime<Utc>,
) -> EventEnvelope {
    let n = record.order().id().as_uuid().as_u128();
    let next = record.events().len() as u128 + 1;
    record
        .transition(to, data, Uuid::from_u128(n * 1000 + next), when)
        .unwrap();
    store(kv, record);
    record.events().last().unwrap().clone()
}

fn store(kv: &MemKv, record: &OrderRecord) {
    kv.set_json(&keys::order(&record.order().id().to_string()), record)
        .unwrap();
}

fn first(record: &OrderRecord) -> Message {
    Message::Event(record.events()[0].clone())
}

fn kpis(kv: &MemKv) -> Kpis {
    Kpis::of(&kpi::totals(kv).unwrap())
}

fn ids(page: &search::Page) -> Vec<OrderId> {
    page.orders.iter().map(|o| o.order_id).collect()
}

#[test]
fn every_event_counts_once_however_often_it_is_delivered() {
    let kv = MemKv::new();
    let mut r = accepted(1, "web", "ada@example.com", 3, at(0));
    store(&kv, &r);
    let validated = first(&r);
    let reserved = Message::Event(step(&kv, &mut r, OrderStatus::Reserved, json!({}), at(1)));
    let routed = Message::Event(step(
        &kv,
        &mut r,
        OrderStatus::Routed,
        json!({"shipments": 2, "total_cost": "3"}),
        at(2),
    ));
    for m in [&validated, &reserved, &routed] {
        assert_eq!(projection::handle(&kv, m).unwrap(), Handled::Applied);
        assert_eq!(projection::handle(&kv, m).unwrap(), Handled::Duplicate);
    }
    let k = kpis(&kv);
    assert_eq!(k.orders.accepted, 1);
    assert_eq!(k.orders.by_channel["web"], 1);
    assert_eq!(k.orders.by_status["routed"], 1);
    assert_eq!(
        k.orders.by_status.values().sum::<i64>(),
        1,
        "one order, one status"
    );
    assert_eq!(
        (k.fill_rate.lines_ordered, k.fill_rate.units_ordered),
        (1, 3)
    );
    assert_eq!(
        (
            k.split_shipments.routed_orders,
            k.split_shipments.split_orders
        ),
        (1, 1)
    );
    assert_eq!(k.accepted_to_routed.count, 1);
    assert_eq!(k.accepted_to_routed.sum_seconds, 2.0);
    // 2 s falls in the (1, 2.5] bucket; one observation: both quantiles inside it.
    assert_eq!(k.accepted_to_routed.buckets[4].count, 1);
    let p50 = k.accepted_to_routed.p50_seconds.unwrap();
    assert!((1.0..=2.5).contains(&p50), "{p50}");
    // The cancellation refunds the captured 30.00 (two events, each counted once).
    let mut cancelled = r.clone();
    cancelled
        .cancel(
            Some("changed mind".into()),
            [Uuid::from_u128(1004), Uuid::from_u128(1005)],
            at(3),
        )
        .unwrap();
    store(&kv, &cancelled);
    for e in &cancelled.events()[3..] {
        let m = Message::Event(e.clone());
        projection::handle(&kv, &m).unwrap();
        projection::handle(&kv, &m).unwrap();
    }
    let k = kpis(&kv);
    assert_eq!(k.cancellations.total, 1);
    assert_eq!(k.cancellations.by_from["routed"], 1);
    assert_eq!(
        (k.refunds.count, k.refunds.amount["USD"].as_str()),
        (1, "30.00")
    );
    assert_eq!(k.refunds.by_reason["cancellation"].count, 1);
    assert_eq!(k.orders.by_status["cancelled"], 1);
    assert_eq!(k.orders.by_status["routed"], 0);
}

#[test]
fn out_of_order_deliveries_converge_on_the_stored_status() {
    let kv = MemKv::new();
    let mut r = accepted(2, "web", "b@example.com", 1, at(0));
    store(&kv, &r);
    let validated = first(&r);
    let reserved = Message::Event(step(&kv, &mut r, OrderStatus::Reserved, json!({}), at(1)));
    let routed = Message::Event(step(
        &kv,
        &mut r,
        OrderStatus::Routed,
        json!({"shipments": 1, "total_cost": "1"}),
        at(5),
    ));
    for m in [&routed, &validated, &reserved] {
        projection::handle(&kv, m).unwrap();
    }
    let k = kpis(&kv);
    assert_eq!(k.orders.by_status["routed"], 1);
    assert_eq!(k.orders.by_status.values().sum::<i64>(), 1);
    assert_eq!((k.orders.accepted, k.split_shipments.split_orders), (1, 0));
    assert_eq!(k.accepted_to_routed.sum_seconds, 5.0);
    let routed_now = search::search(
        &kv,
        &Filter {
            status: Some(OrderStatus::Routed),
            ..Filter::default()
        },
        10,
        None,
    )
    .unwrap();
    assert_eq!(ids(&routed_now), [id(2)]);
}

#[test]
fn a_counter_update_that_loses_a_compare_and_swap_race_is_redone() {
    let env = MemEnv::new();
    let one = Counters {
        refunds: 1,
        ..Counters::default()
    };
    // Ids 1 and 9 land in the same shard: the race is on one key.
    let racing = RacingEnv::new(
        &env,
        |key| key.starts_with("kpi:shard:"),
        || assert!(kpi::apply(&env.kv, Uuid::from_u128(9), &one).unwrap()),
    );
    assert!(kpi::apply(racing.kv(), Uuid::from_u128(1), &one).unwrap());
    assert!(
        racing.raced(),
        "the competing write landed between read and swap"
    );
    assert_eq!(kpi::totals(&env.kv).unwrap().refunds, 2, "no update lost");
    assert!(
        !kpi::apply(&env.kv, Uuid::from_u128(1), &one).unwrap(),
        "and none applied twice"
    );
    assert_eq!(kpi::totals(&env.kv).unwrap().refunds, 2);
}

#[test]
fn two_events_of_one_order_racing_on_its_entry_both_count() {
    let env = MemEnv::new();
    let mut r = accepted(3, "web", "c@example.com", 2, at(0));
    store(&env.kv, &r);
    let validated = first(&r);
    let reserved = Message::Event(step(
        &env.kv,
        &mut r,
        OrderStatus::Reserved,
        json!({}),
        at(1),
    ));
    let key = entry_key(id(3));
    let racing = RacingEnv::new(
        &env,
        move |k| k == key,
        || {
            assert_eq!(
                projection::handle(&env.kv, &reserved).unwrap(),
                Handled::Applied
            )
        },
    );
    assert_eq!(
        projection::handle(racing.kv(), &validated).unwrap(),
        Handled::Applied
    );
    assert!(racing.raced());
    let k = kpis(&env.kv);
    assert_eq!((k.orders.accepted, k.orders.by_status["reserved"]), (1, 1));
    assert_eq!(k.orders.by_status.values().sum::<i64>(), 1);
}

#[test]
fn a_fault_at_any_store_call_then_the_redelivery_counts_the_event_exactly_once() {
    let setup = |env: &MemEnv| {
        let mut r = accepted(4, "web", "d@example.com", 2, at(0));
        store(&env.kv, &r);
        projection::handle(&env.kv, &first(&r)).unwrap();
        step(&env.kv, &mut r, OrderStatus::Reserved, json!({}), at(1));
    };
    let message = |env: &MemEnv| {
        let r: OrderRecord = env
            .kv
            .get_json(&keys::order(&id(4).to_string()))
            .unwrap()
            .unwrap();
        Message::Event(r.events()[1].clone())
    };
    for_every_fault(
        setup,
        |faulty| {
            let m = message(faulty.inner());
            let _ = projection::handle(faulty.kv(), &m);
        },
        |env| {
            projection::handle(&env.kv, &message(env)).unwrap();
        },
        |env, label| {
            let k = kpis(&env.kv);
            assert_eq!(k.orders.by_status["reserved"], 1, "{label}");
            assert_eq!(k.orders.by_status["validated"], 0, "{label}");
            assert_eq!(k.orders.accepted, 1, "{label}");
            let entry: OrderEntry = env.kv.get_json(&entry_key(id(4))).unwrap().unwrap();
            assert!(entry.pending.is_empty(), "{label}: nothing left pending");
            let reserved = Filter {
                status: Some(OrderStatus::Reserved),
                ..Filter::default()
            };
            assert_eq!(
                ids(&search::search(&env.kv, &reserved, 5, None).unwrap()),
                [id(4)],
                "{label}"
            );
            let validated = Filter {
                status: Some(OrderStatus::Validated),
                ..Filter::default()
            };
            assert!(
                search::search(&env.kv, &validated, 5, None)
                    .unwrap()
                    .orders
                    .is_empty(),
                "{label}"
            );
        },
    );
}

#[test]
fn webhook_outcomes_count_once_per_id() {
    let kv = MemKv::new();
    let r = accepted(5, "web", "e@example.com", 1, at(0));
    store(&kv, &r);
    let outcome = |n: u128, settled| {
        Message::Webhook(WebhookOutcome {
            version: 1,
            id: Uuid::from_u128(n),
            outcome: settled,
            order_id: id(5),
            event_id: r.events()[0].id(),
            event_type: "order.validated".into(),
            subscription: "s".into(),
            attempts: 1,
            occurred_at: at(1),
        })
    };
    for m in [
        outcome(50, Settled::Delivered),
        outcome(50, Settled::Delivered),
        outcome(51, Settled::Delivered),
        outcome(52, Settled::DeadLettered),
    ] {
        projection::handle(&kv, &m).unwrap();
    }
    let k = kpis(&kv);
    assert_eq!((k.webhooks.delivered, k.webhooks.dead_lettered), (2, 1));
    assert!((k.webhooks.success_rate.unwrap() - 2.0 / 3.0).abs() < 1e-9);
}

#[test]
fn search_walks_postings_newest_first_with_a_cursor_and_follows_status_changes() {
    let kv = MemKv::new();
    // Orders an hour and a half apart, so they span several hour buckets.
    let mut records = Vec::new();
    for n in 10..16u128 {
        let channel = if n % 2 == 0 { "web" } else { "shopify-eu" };
        let email = if n < 13 {
            "Ada@Example.com"
        } else {
            "bob@example.com"
        };
        let r = accepted(n, channel, email, 1, at((n as i64 - 10) * 5400));
        store(&kv, &r);
        projection::handle(&kv, &first(&r)).unwrap();
        records.push(r);
    }
    let all = search::search(&kv, &Filter::default(), 10, None).unwrap();
    assert_eq!(ids(&all), (10..16u128).rev().map(id).collect::<Vec<_>>());
    assert_eq!(all.next_cursor, None);
    assert_eq!(all.orders[0].total, "10.00");
    assert_eq!(all.orders[0].email.as_deref(), Some("bob@example.com"));
    // Pages of two.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = search::search(&kv, &Filter::default(), 2, cursor).unwrap();
        seen.extend(ids(&page));
        match page.next_cursor {
            Some(c) => cursor = Some(Cursor::parse(&c).unwrap()),
            None => break,
        }
    }
    assert_eq!(seen, ids(&all));
    // By e-mail (any case), by channel, by both.
    let ada = Filter {
        email: Some("ada@example.COM".into()),
        ..Filter::default()
    };
    assert_eq!(
        ids(&search::search(&kv, &ada, 10, None).unwrap()),
        [id(12), id(11), id(10)]
    );
    let web = Filter {
        channel: Some("web".into()),
        ..Filter::default()
    };
    assert_eq!(
        ids(&search::search(&kv, &web, 10, None).unwrap()),
        [id(14), id(12), id(10)]
    );
    let ada_web = Filter {
        channel: Some("web".into()),
        ..ada.clone()
    };
    assert_eq!(
        ids(&search::search(&kv, &ada_web, 10, None).unwrap()),
        [id(12), id(10)]
    );
    // By id.
    let one = Filter {
        id: Some(id(13)),
        ..Filter::default()
    };
    assert_eq!(ids(&search::search(&kv, &one, 10, None).unwrap()), [id(13)]);
    // Order 12 is reserved: it leaves the validated postings and joins the reserved ones.
    let mut r12 = records[2].clone();
    let reserved = step(&kv, &mut r12, OrderStatus::Reserved, json!({}), at(20_000));
    projection::handle(&kv, &Message::Event(reserved)).unwrap();
    let validated = Filter {
        status: Some(OrderStatus::Validated),
        ..Filter::default()
    };
    let v = search::search(&kv, &validated, 10, None).unwrap();
    assert_eq!(ids(&v), [id(15), id(14), id(13), id(11), id(10)]);
    let reserved_web = Filter {
        status: Some(OrderStatus::Reserved),
        channel: Some("web".into()),
        ..Filter::default()
    };
    let page = search::search(&kv, &reserved_web, 10, None).unwrap();
    assert_eq!(ids(&page), [id(12)]);
    assert_eq!(page.orders[0].status, Some(OrderStatus::Reserved));
    // The emptied hour left the validated directory: only hours with validated orders remain.
    let dir: Vec<i64> = kv.get_json("search:dir:st:validated").unwrap().unwrap();
    assert_eq!(dir.len(), 5);
    assert!(
        !kv.keys().unwrap().iter().any(|k| k.contains('@')),
        "no e-mail in a key"
    );
}

#[test]
fn a_busy_hour_is_split_into_bounded_pages_that_search_walks_whole() {
    let kv = MemKv::new();
    // 300 orders placed within one hour under one channel and one e-mail: every term's hour
    // holds all of them.
    let n_orders = 300u128;
    let mut records = Vec::new();
    for n in 1..=n_orders {
        let r = accepted(n, "web", "same@example.com", 1, at(n as i64));
        store(&kv, &r);
        projection::handle(&kv, &first(&r)).unwrap();
        records.push(r);
    }
    let largest = |kv: &MemKv| {
        kv.keys()
            .unwrap()
            .into_iter()
            .filter(|k| k.starts_with("search:post:"))
            .map(|k| {
                let p: Vec<(i64, Uuid)> = kv.get_json(&k).unwrap().unwrap();
                p.len()
            })
            .max()
            .unwrap()
    };
    assert_eq!(
        largest(&kv),
        search::PAGE_ITEMS,
        "no posting page over the bound"
    );
    // Every order once, newest first, through pages of 7.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = search::search(&kv, &Filter::default(), 7, cursor).unwrap();
        seen.extend(ids(&page));
        match page.next_cursor {
            Some(c) => cursor = Some(Cursor::parse(&c).unwrap()),
            None => break,
        }
    }
    assert_eq!(seen, (1..=n_orders).rev().map(id).collect::<Vec<_>>());
    // Half of them move on: each leaves its validated page and joins a reserved one.
    for r in records.iter_mut().take(150) {
        let e = step(&kv, r, OrderStatus::Reserved, json!({}), at(4000));
        projection::handle(&kv, &Message::Event(e)).unwrap();
    }
    let by_status = |s: OrderStatus| {
        let f = Filter {
            status: Some(s),
            ..Filter::default()
        };
        search::search(&kv, &f, 1000, None).unwrap()
    };
    assert_eq!(
        ids(&by_status(OrderStatus::Reserved)),
        (1..=150u128).rev().map(id).collect::<Vec<_>>()
    );
    assert_eq!(
        ids(&by_status(OrderStatus::Validated)),
        (151..=n_orders).rev().map(id).collect::<Vec<_>>()
    );
    let entry: OrderEntry = kv.get_json(&entry_key(id(1))).unwrap().unwrap();
    assert!(entry.posted.contains_key("st:reserved") && !entry.posted.contains_key("st:validated"));
    // The rest too: the validated hour empties page by page and leaves the directory.
    for r in records.iter_mut().skip(150) {
        let e = step(&kv, r, OrderStatus::Reserved, json!({}), at(4000));
        projection::handle(&kv, &Message::Event(e)).unwrap();
    }
    assert!(by_status(OrderStatus::Validated).orders.is_empty());
    let dir: Vec<i64> = kv.get_json("search:dir:st:validated").unwrap().unwrap();
    assert!(dir.is_empty(), "{dir:?}");
    assert_eq!(
        by_status(OrderStatus::Reserved).orders.len(),
        n_orders as usize
    );
    assert!(largest(&kv) <= search::PAGE_ITEMS);
}

#[test]
fn a_crash_after_the_first_posting_of_an_hour_hides_no_later_order() {
    // Order 20 is the hour's first; its handling fails at every store call in turn and is
    // never redelivered. Five more orders of that hour are then handled: every one of them
    // (and order 20, wherever its posting landed) is found.
    let later: Vec<u128> = (21..26).collect();
    let setup = |env: &MemEnv| {
        for n in std::iter::once(20).chain(later.iter().copied()) {
            store(
                &env.kv,
                &accepted(n, "web", "x@example.com", 1, at(n as i64)),
            );
        }
    };
    let message = |env: &MemEnv, n: u128| {
        let r: OrderRecord = env
            .kv
            .get_json(&keys::order(&id(n).to_string()))
            .unwrap()
            .unwrap();
        first(&r)
    };
    for_every_fault(
        setup,
        |faulty| {
            let m = message(faulty.inner(), 20);
            let _ = projection::handle(faulty.kv(), &m);
        },
        |env| {
            for n in &later {
                projection::handle(&env.kv, &message(env, *n)).unwrap();
            }
        },
        |env, label| {
            for f in [
                Filter::default(),
                Filter {
                    status: Some(OrderStatus::Validated),
                    ..Filter::default()
                },
                Filter {
                    email: Some("x@example.com".into()),
                    ..Filter::default()
                },
            ] {
                let found = ids(&search::search(&env.kv, &f, 10, None).unwrap());
                for n in &later {
                    assert!(
                        found.contains(&id(*n)),
                        "{label}: order {n} missing from {f:?}"
                    );
                }
            }
        },
    );
}

#[test]
fn postings_stored_before_pages_are_still_found_and_removed() {
    let kv = MemKv::new();
    let mut r = accepted(7, "web", "old@example.com", 1, at(0));
    store(&kv, &r);
    projection::handle(&kv, &first(&r)).unwrap();
    // Rewrite the store the way the one-posting-per-hour layout left it: postings under
    // `search:post:{term}:{hour}`, no pages, no heads, an entry without `posted`.
    let hour = at(0).timestamp_millis().div_euclid(search::HOUR_MS);
    for key in kv.keys().unwrap() {
        if key.starts_with("search:post:") || key.starts_with("search:head:") {
            let value = kv.get(&key).unwrap().unwrap();
            kv.delete(&key).unwrap();
            if let Some(legacy) = key.strip_suffix(":0") {
                kv.set(legacy, &value).unwrap();
            }
        }
    }
    let mut entry: OrderEntry = kv.get_json(&entry_key(id(7))).unwrap().unwrap();
    entry.posted.clear();
    kv.set_json(&entry_key(id(7)), &entry).unwrap();
    assert!(kv
        .get(&format!("search:post:st:validated:{hour}"))
        .unwrap()
        .is_some());
    let validated = Filter {
        status: Some(OrderStatus::Validated),
        ..Filter::default()
    };
    assert_eq!(
        ids(&search::search(&kv, &validated, 5, None).unwrap()),
        [id(7)]
    );
    // Its status change removes it from the old posting and posts it to a page.
    let e = step(&kv, &mut r, OrderStatus::Reserved, json!({}), at(10));
    projection::handle(&kv, &Message::Event(e)).unwrap();
    assert!(search::search(&kv, &validated, 5, None)
        .unwrap()
        .orders
        .is_empty());
    let old: Vec<(i64, Uuid)> = kv
        .get_json(&format!("search:post:st:validated:{hour}"))
        .unwrap()
        .unwrap();
    assert!(old.is_empty());
    let dir: Vec<i64> = kv.get_json("search:dir:st:validated").unwrap().unwrap();
    assert!(dir.is_empty());
    let reserved = Filter {
        status: Some(OrderStatus::Reserved),
        ..Filter::default()
    };
    assert_eq!(
        ids(&search::search(&kv, &reserved, 5, None).unwrap()),
        [id(7)]
    );
    assert_eq!(
        ids(&search::search(&kv, &Filter::default(), 5, None).unwrap()),
        [id(7)]
    );
}

#[test]
fn the_metrics_exposition_parses_with_the_counts() {
    let kv = MemKv::new();
    let mut r = accepted(20, "web", "f@example.com", 2, at(0));
    store(&kv, &r);
    projection::handle(&kv, &first(&r)).unwrap();
    let reserved = step(
        &kv,
        &mut r,
        OrderStatus::Reserved,
        json!({}),
        at(0) + Duration::milliseconds(300),
    );
    projection::handle(&kv, &Message::Event(reserved)).unwrap();
    let routed = step(
        &kv,
        &mut r,
        OrderStatus::Routed,
        json!({"shipments": 1, "total_cost": "1"}),
        at(0) + Duration::milliseconds(400),
    );
    projection::handle(&kv, &Message::Event(routed)).unwrap();
    let text = crate::metrics::text(&kpi::totals(&kv).unwrap()).unwrap();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid exposition");
    let value = |name: &str, label: Option<(&str, &str)>| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| s.value.clone())
    };
    assert_eq!(
        value("oms_kpi_orders_accepted_total", Some(("channel", "web"))),
        Some(prometheus_parse::Value::Counter(1.0))
    );
    assert_eq!(
        value("oms_kpi_orders", Some(("status", "routed"))),
        Some(prometheus_parse::Value::Gauge(1.0))
    );
    assert_eq!(
        value("oms_kpi_units_ordered_total", None),
        Some(prometheus_parse::Value::Counter(2.0))
    );
    let Some(prometheus_parse::Value::Histogram(h)) =
        value("oms_kpi_accepted_to_routed_seconds", None)
    else {
        panic!("no histogram in {text}");
    };
    let le_half = h.iter().find(|b| b.less_than == 0.5).unwrap();
    assert_eq!(le_half.count, 1.0, "0.4 s is at most 0.5 s");
    let le_quarter = h.iter().find(|b| b.less_than == 0.25).unwrap();
    assert_eq!(le_quarter.count, 0.0);
}

fn staff(kv: &Rc<MemKv>, role: KeyRole) -> String {
    let location = (role == KeyRole::Fulfilment).then(|| "wh-1".to_string());
    api_keys::create(
        &**kv,
        role,
        location,
        "t".into(),
        "staff:root".into(),
        Utc::now(),
    )
    .unwrap()
    .1
}

fn get(kv: &Rc<MemKv>, path: &str, token: Option<&str>) -> Response {
    let mut b = Request::builder();
    b.method(Method::Get).uri(path);
    if let Some(token) = token {
        b.header("authorization", format!("Bearer {token}"));
    }
    crate::api::router(Rc::clone(kv)).handle(b.build())
}

fn body(r: &Response) -> Value {
    serde_json::from_slice(r.body()).unwrap()
}

#[test]
fn the_routes_are_for_staff_and_name_bad_parameters() {
    let kv = Rc::new(MemKv::new());
    let r = accepted(30, "web", "ada@example.com", 1, at(0));
    store(&kv, &r);
    projection::handle(&*kv, &first(&r)).unwrap();
    let staff_token = staff(&kv, KeyRole::Staff);
    let dock = staff(&kv, KeyRole::Fulfilment);
    for path in ["/v1/kpis", "/v1/kpis/metrics", "/v1/search/orders"] {
        assert_eq!(*get(&kv, path, None).status(), 401, "{path}");
        assert_eq!(*get(&kv, path, Some(&dock)).status(), 403, "{path}");
        assert_eq!(*get(&kv, path, Some("nope")).status(), 401, "{path}");
        assert_eq!(*get(&kv, path, Some(&staff_token)).status(), 200, "{path}");
    }
    let k = body(&get(&kv, "/v1/kpis", Some(&staff_token)));
    assert_eq!(k["orders"]["accepted"], 1);
    assert_eq!(k["orders"]["by_status"]["validated"], 1);
    let found = body(&get(
        &kv,
        "/v1/search/orders?email=ADA%40example.com&status=validated&channel=web",
        Some(&staff_token),
    ));
    assert_eq!(found["orders"][0]["order_id"], id(30).to_string());
    assert_eq!(found["orders"][0]["status"], "validated");
    assert_eq!(found["next_cursor"], Value::Null);
    let by_q = body(&get(
        &kv,
        &format!("/v1/search/orders?q={}", id(30)),
        Some(&staff_token),
    ));
    assert_eq!(by_q["orders"].as_array().unwrap().len(), 1);
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("status=lost", "status"),
        ("q=hello", "q"),
        ("cursor=x", "cursor"),
        ("channel=no%20spaces", "channel"),
        ("email=", "email"),
        ("q=", "q"),
    ] {
        let res = get(
            &kv,
            &format!("/v1/search/orders?{query}"),
            Some(&staff_token),
        );
        assert_eq!(*res.status(), 422, "{query}");
        assert_eq!(body(&res)["invalid-params"][0]["name"], field, "{query}");
    }
    let metrics = get(&kv, "/v1/kpis/metrics", Some(&staff_token));
    let ct = metrics
        .header("content-type")
        .and_then(|v| v.as_str())
        .unwrap()
        .to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
}
