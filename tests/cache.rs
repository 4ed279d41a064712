//! The host's response cache through a real `oms up` with the real components: a second read
//! is a hit and `If-None-Match` a 304 from the cache, a write's purge makes the next read show
//! it (read-your-writes), private answers never cross credentials, and purges reach every host
//! sharing one Redis.
//!
//! Not yet registered in host/Cargo.toml: it needs the query headers and purge calls of the
//! components (cache-guest's work); register `[[test]] name = "cache"` once they are in.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::oms::{Oms, OrderSpec, ADMIN_TOKEN};
use support::redis::RedisServer;

/// Status, `Cache-Status`, `ETag` and body of a request.
struct Seen {
    status: u16,
    cache_status: String,
    etag: String,
    body: String,
}

impl Seen {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
    fn hit(&self) -> bool {
        self.cache_status.starts_with("oms; hit")
    }
}

fn read(url: &str, headers: &[(&str, &str)]) -> Seen {
    let mut req = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build()
        .get(url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {url}: {e}"),
    };
    let header = |n: &str| resp.header(n).unwrap_or_default().to_string();
    let (status, cache_status, etag) = (resp.status(), header("cache-status"), header("etag"));
    Seen {
        status,
        cache_status,
        etag,
        body: resp.into_string().unwrap_or_default(),
    }
}

fn staff() -> String {
    format!("Bearer {ADMIN_TOKEN}")
}

fn customer(token: &str) -> String {
    format!("Bearer {token}")
}

#[test]
fn reads_are_cached_per_credential_and_writes_show_at_once() {
    let oms = Oms::start();
    oms.seed();
    oms.stock("SKU-1", "wh-west", 10);
    let spec = OrderSpec::default();
    let (a, token_a) = oms.place_for_customer(&spec.body());
    let (b, token_b) = oms.place_for_customer(&spec.body());
    oms.wait_status(&a, "routed");
    oms.wait_status(&b, "routed");
    let order_a = oms.url(&format!("/v1/orders/{a}"));
    let (auth_a, auth_b, auth_staff) = (customer(&token_a), customer(&token_b), staff());

    // A second read is a hit; If-None-Match is answered 304 from the cache.
    let first = read(&order_a, &[("authorization", &auth_a)]);
    assert_eq!(first.status, 200, "{}", first.body);
    let second = read(&order_a, &[("authorization", &auth_a)]);
    assert!(second.hit(), "second read: {}", second.cache_status);
    assert_eq!(second.body, first.body);
    let cond = read(
        &order_a,
        &[("authorization", &auth_a), ("if-none-match", &first.etag)],
    );
    assert_eq!(
        (cond.status, cond.hit()),
        (304, true),
        "{}",
        cond.cache_status
    );

    // Private: another customer, staff and anonymous never get A's cached entry.
    let other = read(&order_a, &[("authorization", &auth_b)]);
    assert_eq!(other.status, 403, "{}", other.body);
    assert!(!other.hit(), "{}", other.cache_status);
    let anonymous = read(&order_a, &[]);
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    assert!(!anonymous.hit());
    let by_staff = read(&order_a, &[("authorization", &auth_staff)]);
    assert_eq!(by_staff.status, 200);
    assert!(!by_staff.hit(), "staff has a partition of its own");

    // Read-your-writes: a staff hold, acknowledged, shows in the very next read.
    let held = oms.staff_post(
        &format!("/v1/orders/{a}/holds"),
        &json!({"reason": "fraud_review", "note": "cache test"}).to_string(),
    );
    assert!(held.status < 300, "{}: {}", held.status, held.body);
    let after = read(&order_a, &[("authorization", &auth_a)]);
    assert_eq!(after.status, 200);
    assert!(!after.hit(), "purged by the hold: {}", after.cache_status);
    assert_ne!(after.etag, first.etag);
    assert!(after.body.contains("fraud_review"), "{}", after.body);

    // Public availability: cached for everyone, purged by a stock change.
    let avail = oms.url("/v1/availability/SKU-1");
    let one = read(&avail, &[]);
    assert_eq!(one.status, 200, "{}", one.body);
    let two = read(&avail, &[]);
    assert!(two.hit(), "{}", two.cache_status);
    oms.stock("SKU-1", "wh-west", 42);
    let three = read(&avail, &[]);
    assert!(
        !three.hit(),
        "purged by the stock change: {}",
        three.cache_status
    );
    assert_eq!(three.json()["on_hand"], 42, "{}", three.body);
}

#[test]
fn a_write_through_one_host_is_seen_by_the_next_read_on_another() {
    let redis = RedisServer::start();
    let one = Oms::start_on_redis(&redis, &[], &[]);
    let two = Oms::start_on_redis(&redis, &["query"], &[]);
    one.seed();
    one.stock("SKU-1", "wh-west", 1000);
    let avail = two.url("/v1/availability/SKU-1");
    for n in 0..200u32 {
        // Cached on host 2...
        let before = read(&avail, &[]);
        assert_eq!(before.status, 200, "{}", before.body);
        if n == 0 {
            assert!(read(&avail, &[]).hit(), "host 2 caches availability");
        }
        // ... a write through host 1 ...
        one.stock("SKU-1", "wh-west", 1001 + n);
        // ... is what host 2 answers next.
        let after = read(&avail, &[]);
        assert_eq!(
            after.json()["on_hand"],
            1001 + n,
            "stale read on host 2 after write {n}: {} {}",
            after.cache_status,
            after.body
        );
    }
}
