//! Edge caching through a real `oms up` serving spin.toml: what a CDN (and the host's own
//! response cache) sees on public and private reads, and that every write purges what it
//! changed — a read cached before the write shows the new state right after it.
//!
//! Each read in the read-your-writes test is made twice before the write, so with the host
//! cache on the second one is a hit (asserted when the host answers `Cache-Status`): without
//! the write's purge, the read after it would be that stale hit.
//!
//! Both tests passed on a host without its response cache (the `Cache-Status` checks then
//! idle); with the cache in, they check its purges.

mod support;

use std::time::Duration;

use serde_json::{json, Value};

use support::oms::{staff_auth, until_answered, Oms, OrderSpec};
use support::*;

/// A response with its headers (names lowercase).
struct Seen {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn fetch(oms: &Oms, method: &str, path: &str, headers: &[(&str, &str)]) -> Seen {
    let mut req = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build()
        .request(method, &oms.url(path));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {path}: {e}"),
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .map(|n| {
            let v = resp.header(&n).unwrap_or_default().to_string();
            (n.to_ascii_lowercase(), v)
        })
        .collect();
    Seen {
        status,
        headers,
        body: resp.into_string().unwrap_or_default(),
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

const SHARED: &str = "max-age=86400, stale-while-revalidate=30, stale-if-error=86400";

#[test]
fn public_reads_carry_every_cdns_tags_and_private_ones_none() {
    let oms = Oms::start();
    oms.seed();
    oms.stock("SKU-1", "wh-east", 5);
    let (id, token) = oms.place_for_customer(&OrderSpec::default().body());
    // At rest, so nothing changes the reads (and their ETags) while they are compared.
    oms.wait_status(&id, "routed");

    // Public: browsers revalidate, CDNs keep it a day under the tags their header names.
    for (path, tags) in [
        (
            "/v1/availability/SKU-1",
            ["sku-SKU-1", "availability"].as_slice(),
        ),
        ("/v1/openapi.json", ["openapi"].as_slice()),
    ] {
        let r = fetch(&oms, "GET", path, &[]);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        let etag = r.header("etag").expect("an ETag").to_string();
        assert!(etag.starts_with('"'), "{path}: a strong ETag: {etag}");
        for seen in [
            r,
            fetch(&oms, "GET", path, &[("if-none-match", &etag)]),
            fetch(&oms, "HEAD", path, &[]),
        ] {
            assert!(matches!(seen.status, 200 | 304), "{path}: {}", seen.status);
            let expect = [
                ("cache-control", Some("public, no-cache".to_string())),
                ("cdn-cache-control", Some(SHARED.to_string())),
                ("surrogate-control", Some(SHARED.to_string())),
                ("surrogate-key", Some(tags.join(" "))),
                ("cache-tag", Some(tags.join(","))),
                ("edge-cache-tag", Some(tags.join(","))),
            ];
            for (name, value) in expect {
                assert_eq!(
                    seen.header(name).map(str::to_string),
                    value,
                    "{path} ({}): {name}",
                    seen.status
                );
            }
            assert_eq!(seen.header("etag"), Some(etag.as_str()), "{path}");
        }
    }

    // Private: the customer's and staff's reads of an order and its timeline are theirs alone.
    let staff = staff_auth();
    let customer = bearer(&token);
    for path in [
        format!("/v1/orders/{id}"),
        format!("/v1/orders/{id}/events"),
    ] {
        for auth in [staff.as_str(), customer.as_str()] {
            let r = fetch(&oms, "GET", &path, &[("authorization", auth)]);
            assert_eq!(r.status, 200, "{path}: {}", r.body);
            let etag = r.header("etag").expect("an ETag").to_string();
            let again = fetch(
                &oms,
                "GET",
                &path,
                &[("authorization", auth), ("if-none-match", &etag)],
            );
            assert_eq!(again.status, 304, "{path}");
            for seen in [r, again] {
                for (name, value) in [
                    ("cache-control", Some("private, no-cache")),
                    ("cdn-cache-control", Some("no-store")),
                    ("surrogate-control", Some("no-store")),
                    ("vary", Some("Authorization")),
                    (
                        "oms-cache-control",
                        Some("private, max-age=3600, stale-if-error=300"),
                    ),
                    ("cache-tag", None),
                    ("edge-cache-tag", None),
                ] {
                    assert_eq!(seen.header(name), value, "{path} ({}): {name}", seen.status);
                }
                assert_eq!(
                    seen.header("surrogate-key"),
                    Some(format!("order-{id} credentials").as_str()),
                    "{path}"
                );
            }
        }
    }

    // Errors are never kept, and tag nothing.
    for (path, auth) in [
        (format!("/v1/orders/{id}"), None),
        (format!("/v1/orders/{id}"), Some("Bearer nope")),
        ("/v1/availability/a%20b".to_string(), None),
        ("/v1/orders/not-an-id".to_string(), Some(staff.as_str())),
    ] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        let r = fetch(&oms, "GET", &path, &headers);
        assert!(r.status >= 400, "{path}: {}", r.status);
        assert_eq!(r.header("cache-control"), Some("no-store"), "{path}");
        for tagged in [
            "surrogate-key",
            "cache-tag",
            "edge-cache-tag",
            "cdn-cache-control",
        ] {
            assert_eq!(r.header(tagged), None, "{path}: {tagged}");
        }
    }
}

/// Reads `path` twice (the second a cache hit when the host caches); its JSON.
fn cached(oms: &Oms, path: &str, auth: Option<&str>) -> Value {
    let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
    let first = fetch(oms, "GET", path, &headers);
    assert_eq!(first.status, 200, "{path}: {}", first.body);
    let second = fetch(oms, "GET", path, &headers);
    assert_eq!(second.status, 200, "{path}: {}", second.body);
    if let Some(status) = second.header("cache-status") {
        assert!(
            status.contains("hit"),
            "{path}: the second read is a cache hit: {status}"
        );
    }
    second.json()
}

/// Reads `path` twice, as [`cached`], without asking for a hit: for a resource the queue
/// steps may still be changing, whose purges between the two reads rightly make the second a
/// miss.
fn warm(oms: &Oms, path: &str, auth: Option<&str>) {
    let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
    for _ in 0..2 {
        let r = fetch(oms, "GET", path, &headers);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
}

/// Reads `path` now (after a write): its JSON.
fn now(oms: &Oms, path: &str, auth: Option<&str>) -> Value {
    let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
    let r = fetch(oms, "GET", path, &headers);
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r.json()
}

fn at<'a>(availability: &'a Value, location: &str) -> &'a Value {
    availability["locations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["location"] == location)
        .unwrap_or(&Value::Null)
}

#[test]
fn a_read_after_a_write_shows_the_write() {
    let oms = Oms::start();
    oms.seed();
    oms.stock("SKU-1", "wh-east", 10);
    let staff = staff_auth();
    let avail = "/v1/availability/SKU-1";

    // Admin stock count → sku-SKU-1.
    assert_eq!(at(&cached(&oms, avail, None), "wh-east")["on_hand"], 10);
    oms.stock("SKU-1", "wh-east", 7);
    assert_eq!(
        at(&now(&oms, avail, None), "wh-east")["on_hand"],
        7,
        "stock count"
    );

    // Admin locations → availability.
    assert_eq!(at(&cached(&oms, avail, None), "wh-east")["pickup"], false);
    let mut network: Value = serde_json::from_str(include_str!("fixtures/locations.json")).unwrap();
    network[0]["pickup"] = json!(true);
    oms.admin_put("/v1/admin/locations", network.clone());
    assert_eq!(
        at(&now(&oms, avail, None), "wh-east")["pickup"],
        true,
        "locations"
    );
    network[0]["pickup"] = json!(false);
    oms.admin_put("/v1/admin/locations", network);

    // Placing, then the queue steps: reserve and route change the order and the SKU's
    // availability; what they purged shows without waiting out any max-age.
    let before = cached(&oms, avail, None);
    assert_eq!(
        before["reserved"].as_u64().unwrap() + before["allocated"].as_u64().unwrap(),
        0
    );
    let (id, token) = oms.place_for_customer(&OrderSpec::default().body());
    let order = format!("/v1/orders/{id}");
    let customer = bearer(&token);
    let (customer, staff) = (customer.as_str(), staff.as_str());
    // Reserve and route run meanwhile: these reads may each store a state they then purge.
    warm(&oms, &order, Some(customer));
    warm(&oms, &order, Some(staff));
    for who in [customer, staff] {
        eventually(Duration::from_secs(20), "the order routed, as read", || {
            (now(&oms, &order, Some(who))["status"] == "routed").then_some(())
        });
    }
    let routed = eventually(
        Duration::from_secs(20),
        "availability after routing",
        || {
            let a = now(&oms, avail, None);
            (a["allocated"] == 1).then_some(a)
        },
    );
    assert_eq!(routed["available"], 6, "{routed}");

    // A hold (staff, HTTP; only before routing): on a backordered order (SKU-2 has no stock,
    // backorders unlimited), the next read shows it, for staff and for the customer.
    oms.admin_put("/v1/admin/backorder/SKU-2", json!("unlimited"));
    let spec = OrderSpec {
        lines: vec![("SKU-2", 1, 500)],
        ..OrderSpec::default()
    };
    let (waiting, waiting_token) = oms.place_for_customer(&spec.body());
    let waiting_order = format!("/v1/orders/{waiting}");
    let waiting_customer = bearer(&waiting_token);
    eventually(
        Duration::from_secs(20),
        "the order backordered, as read",
        || (now(&oms, &waiting_order, Some(staff))["status"] == "backordered").then_some(()),
    );
    assert_eq!(
        cached(&oms, &waiting_order, Some(staff))["holds"],
        json!([])
    );
    cached(&oms, &waiting_order, Some(waiting_customer.as_str()));
    let held = until_answered(|| {
        oms.staff_post(
            &format!("{waiting_order}/holds"),
            &json!({"reason": "fraud_review", "note": "check"}).to_string(),
        )
    });
    assert_eq!(held.status, 201, "{}", held.body);
    for who in [staff, waiting_customer.as_str()] {
        assert_eq!(
            now(&oms, &waiting_order, Some(who))["holds"][0]["reason"],
            "fraud_review",
            "hold"
        );
    }
    let timeline = format!("{order}/events");
    cached(&oms, &timeline, Some(staff));

    // Cancel (refund component): the order, its timeline and the released stock.
    cached(&oms, avail, None);
    let cancelled = until_answered(|| oms.staff_post(&format!("{order}/cancel"), ""));
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    assert_eq!(now(&oms, &order, Some(customer))["status"], "cancelled");
    let types: Vec<Value> = now(&oms, &timeline, Some(staff))["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].clone())
        .collect();
    assert!(types.contains(&json!("order.cancelled")), "{types:?}");
    let released = now(&oms, avail, None);
    assert_eq!(
        (&released["allocated"], &released["available"]),
        (&json!(0), &json!(7)),
        "cancel released the stock: {released}"
    );

    // A key revoked: what it read before is not served to it afterwards.
    let made = until_answered(|| {
        oms.staff_post(
            "/v1/admin/keys",
            &json!({"role": "staff", "name": "temp"}).to_string(),
        )
    });
    assert_eq!(made.status, 201, "{}", made.body);
    let key = made.json();
    let key_auth = bearer(key["token"].as_str().unwrap());
    cached(&oms, &order, Some(key_auth.as_str()));
    let revoked = until_answered(|| {
        oms.staff_send(
            "DELETE",
            &format!("/v1/admin/keys/{}", key["id"].as_str().unwrap()),
            None,
            &[],
        )
    });
    assert_eq!(revoked.status, 204, "{}", revoked.body);
    let after = fetch(&oms, "GET", &order, &[("authorization", &key_auth)]);
    assert_eq!(
        after.status, 401,
        "a revoked key reads nothing: {}",
        after.body
    );
}

/// The purge log's size as `/metrics` reports it.
fn remembered_purge_tags(oms: &Oms) -> u64 {
    let staff = staff_auth();
    let m = fetch(oms, "GET", "/metrics", &[("authorization", staff.as_str())]);
    assert_eq!(m.status, 200, "{}", m.body);
    let scrape = prometheus_parse::Scrape::parse(m.body.lines().map(|l| Ok(l.to_string())))
        .expect("a valid exposition");
    match scrape
        .samples
        .iter()
        .find(|s| s.metric == "oms_http_cache_purge_tags")
        .map(|s| &s.value)
    {
        Some(prometheus_parse::Value::Gauge(v)) => *v as u64,
        other => panic!("no purge-tag gauge ({other:?}) in {}", m.body),
    }
}

#[test]
fn a_host_whose_purge_log_forgets_still_serves_no_stale_read() {
    // Two tags remembered: every other write makes the host forget older purges.
    let oms = Oms::start_with(&["--cache-purge-tags", "2"], &[]);
    oms.seed();
    oms.stock("SKU-1", "wh-east", 10);
    let avail = "/v1/availability/SKU-1";

    assert_eq!(at(&cached(&oms, avail, None), "wh-east")["on_hand"], 10);
    // Writes to other SKUs push the log past its bound; the entry for SKU-1 was stored before
    // purges the host no longer remembers, so it is refused (a miss), not served.
    for (i, sku) in ["SKU-2", "SKU-3", "SKU-4", "SKU-5"].into_iter().enumerate() {
        oms.stock(sku, "wh-east", 3 + i as u32);
    }
    assert!(remembered_purge_tags(&oms) <= 2, "the log is bounded");
    let after = fetch(&oms, "GET", avail, &[]);
    assert_eq!(after.status, 200, "{}", after.body);
    let status = after.header("cache-status").unwrap_or_default().to_string();
    assert!(
        status.contains("fwd="),
        "forgotten purges make a miss: {status}"
    );
    assert_eq!(at(&after.json(), "wh-east")["on_hand"], 10);

    // Cached again, then SKU-1's own write: the next read shows it.
    assert_eq!(at(&cached(&oms, avail, None), "wh-east")["on_hand"], 10);
    oms.stock("SKU-1", "wh-east", 7);
    assert_eq!(
        at(&now(&oms, avail, None), "wh-east")["on_hand"],
        7,
        "read-your-writes with a two-tag log"
    );
    assert!(remembered_purge_tags(&oms) <= 2);
}
