//! insights through a real `oms up`: orders that end delivered (shipped, partly refunded,
//! one unit returned), cancelled (refunded by the cancellation), backordered and rejected,
//! webhooks delivered and dead-lettered; then `/v1/kpis` says exactly that, the search finds
//! them by e-mail, status, channel and id with paging, the Prometheus exposition parses with
//! the same numbers, and callers other than staff get 401/403.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use serde_json::{json, Value};
use support::oms::{staff_auth, Oms, OrderSpec};
use support::*;

/// Sends until the OMS stops answering "busy, retry" (503/504), as a client would.
fn settled(mut send: impl FnMut() -> Reply) -> Reply {
    for _ in 0..50 {
        let r = send();
        if !matches!(r.status, 503 | 504) {
            return r;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    send()
}

fn post(oms: &Oms, path: &str, body: &Value, key: Option<&str>) -> Reply {
    let auth = staff_auth();
    let mut headers = vec![
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    if let Some(key) = key {
        headers.push(("idempotency-key", key));
    }
    let r = settled(|| {
        send(
            "POST",
            &oms.url(path),
            Some(body.to_string().as_bytes()),
            &headers,
        )
    });
    assert!(
        (200..300).contains(&r.status),
        "POST {path}: {} {}",
        r.status,
        r.body
    );
    r
}

/// A webhook receiver answering 204 to everything.
fn receiver() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
        }
    });
    url
}

/// A loopback URL nobody listens on (every delivery is refused).
fn nobody() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    drop(listener);
    url
}

fn place(oms: &Oms, spec: &OrderSpec, channel: &str, email: &str) -> (String, String) {
    let mut body = spec.body();
    body["channel"] = json!(channel);
    body["customer"]["email"] = json!(email);
    oms.place_for_customer(&body)
}

fn search(oms: &Oms, query: &str) -> Value {
    let r = oms.staff_get(&format!("/v1/search/orders?{query}"));
    assert_eq!(r.status, 200, "{query}: {}", r.body);
    r.json()
}

fn ids(page: &Value) -> Vec<String> {
    page["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn kpis_and_search_follow_the_lifecycle() {
    require_wasm(&["insights"]);
    let oms = Oms::start();
    oms.seed();
    oms.stock("SKU-1", "wh-west", 10);
    // SKU-2: no stock, backordered without limit. SKU-3: no stock, no backorder: rejected.
    oms.admin_put("/v1/admin/backorder/SKU-2", json!("unlimited"));
    post(
        &oms,
        "/v1/webhooks",
        &json!({"url": receiver(), "events": ["order.routed"]}),
        None,
    );
    post(
        &oms,
        "/v1/webhooks",
        &json!({"url": nobody(), "events": ["order.cancelled"]}),
        None,
    );

    // A: 2 × SKU-1, shipped and delivered, 5.00 refunded for lateness, one unit returned.
    let (a, a_token) = place(
        &oms,
        &OrderSpec {
            lines: vec![("SKU-1", 2, 1999)],
            ..OrderSpec::default()
        },
        "web",
        "ada@example.com",
    );
    let order = oms.wait_status(&a, "routed");
    let shipment = order["shipments"][0]["id"].as_str().unwrap().to_string();
    post(
        &oms,
        &format!("/v1/shipments/{shipment}/shipped"),
        &json!({"carrier": "ups", "tracking": "1Z1"}),
        None,
    );
    post(
        &oms,
        &format!("/v1/shipments/{shipment}/delivered"),
        &json!({}),
        None,
    );
    oms.wait_status(&a, "delivered");
    let refund =
        json!({"items": [{"kind": "amount", "amount": "5.00"}], "reason": "Late  Delivery"});
    post(
        &oms,
        &format!("/v1/orders/{a}/refunds"),
        &refund,
        Some("late-1"),
    );
    let opened = post(
        &oms,
        &format!("/v1/orders/{a}/returns"),
        &json!({"items": [{"line": 0, "quantity": 1}]}),
        None,
    );
    let rid = opened.json()["id"].as_str().unwrap().to_string();
    post(
        &oms,
        &format!("/v1/returns/{rid}/received"),
        &json!({}),
        None,
    );
    post(
        &oms,
        &format!("/v1/returns/{rid}/inspection"),
        &json!({"lines": [{"line": 0, "accepted": true}]}),
        None,
    );
    // B: routed, then cancelled (its captured 24.99 refunded by the cancellation).
    let (b, _) = place(&oms, &OrderSpec::default(), "web", "ada@example.com");
    oms.wait_status(&b, "routed");
    post(
        &oms,
        &format!("/v1/orders/{b}/cancel"),
        &json!({"reason": "changed mind"}),
        None,
    );
    // C: backordered, on another channel. D: rejected, another customer.
    let (c, _) = place(
        &oms,
        &OrderSpec {
            lines: vec![("SKU-2", 1, 500)],
            ..OrderSpec::default()
        },
        "mobile",
        "ADA@example.com",
    );
    oms.wait_status(&c, "backordered");
    let (d, _) = place(
        &oms,
        &OrderSpec {
            lines: vec![("SKU-3", 1, 12000)],
            ..OrderSpec::default()
        },
        "web",
        "bob@example.com",
    );
    oms.wait_status(&d, "rejected");

    // The projection is asynchronous: wait until it has every event, then check each number.
    let kpis = eventually(Duration::from_secs(30), "the KPIs to settle", || {
        let k = oms.staff_get("/v1/kpis").json();
        let done = k["orders"]["accepted"] == 4
            && k["refunds"]["count"] == 3
            && k["returns"]["inspected"] == 1
            && k["webhooks"]["delivered"] == 2
            && k["webhooks"]["dead_lettered"] == 1
            && k["orders"]["by_status"]["rejected"] == 1
            && k["orders"]["by_status"]["delivered"] == 1;
        done.then_some(k)
    });
    let status = &kpis["orders"]["by_status"];
    assert_eq!(
        (
            status["delivered"].as_i64(),
            status["cancelled"].as_i64(),
            status["backordered"].as_i64(),
            status["rejected"].as_i64(),
            status["routed"].as_i64(),
            status["validated"].as_i64()
        ),
        (Some(1), Some(1), Some(1), Some(1), Some(0), Some(0)),
        "{kpis:#}"
    );
    assert_eq!(kpis["orders"]["by_channel"], json!({"web": 3, "mobile": 1}));
    assert_eq!(kpis["fill_rate"]["lines_ordered"], 4);
    assert_eq!(kpis["fill_rate"]["units_ordered"], 5);
    assert_eq!(kpis["fill_rate"]["lines_fulfilled"], 1);
    assert_eq!(kpis["fill_rate"]["units_fulfilled"], 2);
    assert_eq!(
        kpis["split_shipments"],
        json!({"routed_orders": 2, "split_orders": 0, "rate": 0.0})
    );
    assert_eq!(kpis["accepted_to_routed"]["count"], 2);
    assert!(kpis["accepted_to_routed"]["p95_seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(
        (kpis["backorders"].as_i64(), kpis["rejections"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        kpis["cancellations"],
        json!({"total": 1, "by_from": {"routed": 1}})
    );
    // 5.00 + the returned unit's 19.99 + B's 24.99.
    assert_eq!(kpis["refunds"]["amount"], json!({"USD": "49.98"}));
    let reasons = &kpis["refunds"]["by_reason"];
    assert_eq!(
        reasons["late delivery"],
        json!({"count": 1, "amount": {"USD": "5.00"}})
    );
    assert_eq!(
        reasons["return"],
        json!({"count": 1, "amount": {"USD": "19.99"}})
    );
    assert_eq!(
        reasons["cancellation"],
        json!({"count": 1, "amount": {"USD": "24.99"}})
    );
    assert_eq!(
        kpis["returns"],
        json!({"requested": 1, "received": 1, "inspected": 1, "accepted": 1, "rejected": 0, "units_accepted": 1, "units_rejected": 0})
    );
    // Nothing more arrives, and a second look counts nothing twice (redeliveries included).
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(oms.staff_get("/v1/kpis").json(), kpis);

    // Search: by e-mail (any case), newest first; by status, channel and id; pages.
    assert_eq!(
        ids(&search(&oms, "email=Ada%40Example.com")),
        [c.clone(), b.clone(), a.clone()]
    );
    assert_eq!(
        ids(&search(&oms, "q=bob@example.com")),
        std::slice::from_ref(&d)
    );
    assert_eq!(
        ids(&search(&oms, "status=backordered")),
        std::slice::from_ref(&c)
    );
    assert_eq!(
        ids(&search(&oms, "channel=mobile")),
        std::slice::from_ref(&c)
    );
    assert_eq!(
        ids(&search(&oms, "channel=web&status=cancelled")),
        std::slice::from_ref(&b)
    );
    let one = search(&oms, &format!("q={a}"));
    assert_eq!(
        one["orders"][0],
        json!({"order_id": a, "status": "delivered", "channel": "web", "email": "ada@example.com",
               "total": "44.98", "currency": "USD", "created_at": one["orders"][0]["created_at"]})
    );
    let first = search(&oms, "limit=3");
    assert_eq!(ids(&first), [d.clone(), c.clone(), b.clone()]);
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_string();
    let second = search(&oms, &format!("limit=3&cursor={cursor}"));
    assert_eq!(
        (ids(&second), &second["next_cursor"]),
        (vec![a.clone()], &Value::Null)
    );
    let bad = oms.staff_get("/v1/search/orders?status=lost");
    assert_eq!(bad.status, 422);
    assert_eq!(bad.json()["invalid-params"][0]["name"], "status");

    // The Prometheus exposition, read by a Prometheus text parser.
    let r = oms.staff_get("/v1/kpis/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type, "text/plain");
    let scrape = prometheus_parse::Scrape::parse(r.body.lines().map(|l| Ok(l.to_string())))
        .expect("a valid exposition");
    let value = |name: &str, label: Option<(&str, &str)>| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| s.value.clone())
            .unwrap_or_else(|| panic!("no {name} {label:?} in\n{}", r.body))
    };
    use prometheus_parse::Value::{Counter, Gauge, Histogram};
    assert_eq!(
        value("oms_kpi_orders_accepted_total", Some(("channel", "web"))),
        Counter(3.0)
    );
    assert_eq!(
        value("oms_kpi_orders", Some(("status", "delivered"))),
        Gauge(1.0)
    );
    assert_eq!(
        value("oms_kpi_refunded_amount_total", Some(("currency", "USD"))),
        Counter(49.98)
    );
    assert_eq!(
        value("oms_kpi_webhooks_total", Some(("outcome", "dead_lettered"))),
        Counter(1.0)
    );
    let Histogram(buckets) = value("oms_kpi_accepted_to_routed_seconds", None) else {
        panic!("not a histogram");
    };
    assert_eq!(buckets.last().map(|b| b.count), Some(2.0));

    // Staff only, before anything is read.
    for path in ["/v1/kpis", "/v1/kpis/metrics", "/v1/search/orders"] {
        let anonymous = get(&oms.url(path));
        assert_eq!(anonymous.status, 401, "{path}");
        let customer = send(
            "GET",
            &oms.url(path),
            None,
            &[("authorization", &format!("Bearer {a_token}"))],
        );
        assert_eq!(customer.status, 403, "{path}: {}", customer.body);
        assert_eq!(customer.content_type, "application/problem+json");
    }
}
