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
    // A staff key never used before has a partition of its own: its first read is a miss
    // (the bootstrap staff token's partition already holds the order: wait_status read it).
    let made = oms.staff_post(
        "/v1/admin/keys",
        &json!({"name": "cache test", "role": "staff"}).to_string(),
    );
    assert_eq!(made.status, 201, "{}", made.body);
    let new_staff = format!("Bearer {}", made.json()["token"].as_str().expect("token"));
    let by_staff = read(&order_a, &[("authorization", &new_staff)]);
    assert_eq!(by_staff.status, 200, "{}", by_staff.body);
    assert!(
        !by_staff.hit(),
        "staff key's first read: {}",
        by_staff.cache_status
    );
    assert!(read(&order_a, &[("authorization", &new_staff)]).hit());
    assert!(read(&order_a, &[("authorization", &auth_staff)]).hit());

    // Read-your-writes: a staff cancellation, acknowledged, shows in the very next read.
    let cancelled = oms.staff_post(&format!("/v1/orders/{a}/cancel"), "");
    assert!(
        cancelled.status < 300,
        "{}: {}",
        cancelled.status,
        cancelled.body
    );
    let after = read(&order_a, &[("authorization", &auth_a)]);
    assert_eq!(after.status, 200);
    assert!(!after.hit(), "purged by the cancel: {}", after.cache_status);
    assert_ne!(after.etag, first.etag);
    assert!(after.body.contains("\"cancelled\""), "{}", after.body);

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
