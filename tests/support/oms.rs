//! The OMS under test: the real `spin.toml` on `oms up`, plus builders for catalog, stock and
//! orders. Money in these helpers is in cents so the tests' arithmetic is exact.

use std::time::Duration;

use serde_json::{json, Value};

use super::*;

/// The staff bootstrap token the fixture starts the OMS with (`admin_token`).
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// `Authorization` with the staff bootstrap token.
pub fn staff_auth() -> String {
    format!("Bearer {ADMIN_TOKEN}")
}
/// A Shopify-style channel and its secret.
pub const SHOPIFY_CHANNEL: &str = "shopify-eu";
/// The Shopify channel's secret.
pub const SHOPIFY_SECRET: &str = "shpss_test_secret";
/// A Standard Webhooks channel.
pub const STANDARD_CHANNEL: &str = "acme-market";
/// Its secret (Standard Webhooks `whsec_` + base64 key).
pub const STANDARD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A running OMS.
pub struct Oms {
    /// The host.
    pub host: Host,
}

/// `12.34` from 1234 cents.
pub fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

impl Oms {
    /// Starts the OMS (fast queue retries for tests).
    pub fn start() -> Oms {
        Self::start_with(&[], &[])
    }

    /// Starts the OMS with extra `oms up` args and environment.
    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Oms {
        Self::start_in(tempfile::tempdir().unwrap(), args, env)
    }

    /// As [`Oms::start_with`] on an existing state folder (a restart after [`Oms::kill`]).
    /// Without `--runtime-config-file`, every store spin.toml grants (`default`, the owed-work
    /// index `owed`) is embedded in the state folder's `kv.db`.
    pub fn start_in(state: tempfile::TempDir, args: &[&str], env: &[(&str, &str)]) -> Oms {
        require_wasm(&[
            "validate", "reserve", "route", "notify", "refund", "query", "admin",
        ]);
        let channels = json!({
            SHOPIFY_CHANNEL: {"kind": "shopify", "secret": SHOPIFY_SECRET},
            STANDARD_CHANNEL: {"kind": "standard", "secret": STANDARD_SECRET},
        })
        .to_string();
        let mut all_env = vec![
            ("SPIN_VARIABLE_ADMIN_TOKEN", ADMIN_TOKEN),
            ("SPIN_VARIABLE_CHANNEL_SECRETS", channels.as_str()),
        ];
        all_env.extend_from_slice(env);
        let mut all_args = vec!["--queue-retry-base-ms", "20", "--queue-max-attempts", "5"];
        all_args.extend_from_slice(args);
        Oms {
            host: Host::start_in(&app_root().join("spin.toml"), &all_args, &all_env, state),
        }
    }

    /// Stops the OMS like a crash (SIGKILL) and hands back its state folder.
    pub fn kill(self) -> tempfile::TempDir {
        self.host.kill()
    }

    /// One host of a scaled-out OMS: key-value and queue on `redis`, running only
    /// `components` (`-c`), with extra `oms up` args.
    pub fn start_on_redis(
        redis: &super::redis::RedisServer,
        components: &[&str],
        args: &[&str],
    ) -> Oms {
        let rc = redis.runtime_config();
        let (rc, url) = (rc.to_str().unwrap().to_string(), redis.url());
        let mut all: Vec<&str> = vec!["--runtime-config-file", &rc, "--queue-url", &url];
        for c in components {
            all.extend(["-c", c]);
        }
        all.extend_from_slice(args);
        Self::start_with(&all, &[])
    }

    /// A URL on the OMS.
    pub fn url(&self, path: &str) -> String {
        self.host.url(path)
    }

    /// An admin PUT with the token (repeated while the host answers 503/504: a PUT is safe to
    /// repeat); panics unless 2xx.
    pub fn admin_put(&self, path: &str, body: Value) -> Value {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        let r = until_answered(|| {
            send(
                "PUT",
                &self.url(path),
                Some(body.to_string().as_bytes()),
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
            )
        });
        assert!(
            (200..300).contains(&r.status),
            "PUT {path}: {} {}",
            r.status,
            r.body
        );
        r.json()
    }

    /// Catalog price (USD) of a SKU, in cents.
    pub fn price(&self, sku: &str, cents: i64) {
        self.admin_put(
            &format!("/v1/admin/catalog/{sku}"),
            json!({"USD": money(cents)}),
        );
    }

    /// On-hand stock of a SKU at a location.
    pub fn stock(&self, sku: &str, location: &str, on_hand: u32) {
        self.admin_put(
            &format!("/v1/admin/stock/{sku}/{location}"),
            json!({"on_hand": on_hand}),
        );
    }

    /// The standard test network: two warehouses and a store (San Francisco), 3 SKUs.
    ///
    /// - `wh-east` (New Jersey), `wh-west` (Reno), `store-sf` (pickup, ships too)
    /// - SKU-1 $19.99, SKU-2 $5.00, SKU-3 $120.00
    pub fn seed(&self) {
        self.admin_put(
            "/v1/admin/locations",
            serde_json::from_str::<Value>(include_str!("../fixtures/locations.json"))
                .expect("the locations fixture is JSON"),
        );
        self.price("SKU-1", 1999);
        self.price("SKU-2", 500);
        self.price("SKU-3", 12000);
    }

    /// Places a storefront order with an Idempotency-Key.
    pub fn place(&self, body: &Value, key: &str) -> Reply {
        send(
            "POST",
            &self.url("/v1/orders"),
            Some(body.to_string().as_bytes()),
            &[
                ("idempotency-key", key),
                ("content-type", "application/json"),
            ],
        )
    }

    /// Places an order and returns its id (panics unless 202).
    pub fn place_ok(&self, body: &Value) -> String {
        let key = format!(
            "k-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        let r = self.place(body, &key);
        assert_eq!(r.status, 202, "{}", r.body);
        r.json()["id"].as_str().unwrap().to_string()
    }

    /// Places an order; its id and the customer's access token (panics unless 202).
    pub fn place_for_customer(&self, body: &Value) -> (String, String) {
        let key = format!("c-{}", unix_nanos());
        let r = self.place(body, &key);
        assert_eq!(r.status, 202, "{}", r.body);
        let answer = r.json();
        let token = answer["access_token"].as_str().expect("an access token");
        (
            answer["id"].as_str().unwrap().to_string(),
            token.to_string(),
        )
    }

    /// A request to `path` as staff (the bootstrap token) with extra `headers`; no retry.
    pub fn staff_send(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let auth = staff_auth();
        let mut all = vec![("authorization", auth.as_str())];
        all.extend_from_slice(headers);
        send(method, &self.url(path), body, &all)
    }

    /// `GET path` as staff; no retry.
    pub fn staff_get(&self, path: &str) -> Reply {
        self.staff_send("GET", path, None, &[])
    }

    /// `POST path` with `body` as staff; no retry.
    pub fn staff_post(&self, path: &str, body: &str) -> Reply {
        self.staff_send("POST", path, Some(body.as_bytes()), &[])
    }

    /// `GET /v1/orders/{id}` as JSON, read as staff (panics unless 200).
    pub fn order(&self, id: &str) -> Value {
        let r = self.staff_get(&format!("/v1/orders/{id}"));
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    }

    /// `GET /v1/availability/{sku}` as JSON (panics unless 200).
    pub fn availability(&self, sku: &str) -> Value {
        let r = get(&self.url(&format!("/v1/availability/{sku}")));
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    }

    /// The event types of an order's timeline (read as staff), oldest first.
    pub fn event_types(&self, id: &str) -> Vec<String> {
        let r = self.staff_get(&format!("/v1/orders/{id}/events"));
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_string())
            .collect()
    }

    /// Waits until the order reaches `status`; returns it.
    pub fn wait_status(&self, id: &str, status: &str) -> Value {
        let mut last = Value::Null;
        let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            eventually(
                Duration::from_secs(20),
                &format!("order {id} to be {status}"),
                || {
                    let r = self.staff_get(&format!("/v1/orders/{id}"));
                    if r.status == 200 {
                        last = r.json();
                        (last["status"] == status).then(|| last.clone())
                    } else {
                        None
                    }
                },
            )
        }));
        match found {
            Ok(v) => v,
            Err(_) => panic!(
                "order {id} never became {status}; last: {last:#}\nlog:\n{}",
                self.host.log()
            ),
        }
    }
}

/// Sends until the answer is not "busy or cut off, retry" (503, 504), as a client would; at
/// most 50 times.
pub fn until_answered(mut send: impl FnMut() -> Reply) -> Reply {
    for _ in 0..50 {
        let r = send();
        if !matches!(r.status, 503 | 504) {
            return r;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    send()
}

/// Standard Webhooks headers for a delivery of `body` with id `msg_id` at `ts` (unix seconds),
/// signed with [`STANDARD_SECRET`]: `(webhook-id, webhook-timestamp, webhook-signature)`.
pub fn standard_webhook_headers(msg_id: &str, ts: i64, body: &str) -> [(String, String); 3] {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64
        .decode(STANDARD_SECRET.trim_start_matches("whsec_"))
        .unwrap();
    let sig = b64.encode(hmac_sha256(
        &key,
        format!("{msg_id}.{ts}.{body}").as_bytes(),
    ));
    [
        ("webhook-id".into(), msg_id.into()),
        ("webhook-timestamp".into(), ts.to_string()),
        ("webhook-signature".into(), format!("v1,{sig}")),
    ]
}

/// The base64 HMAC-SHA256 Shopify puts in `X-Shopify-Hmac-Sha256` for `body`.
pub fn shopify_signature(body: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .encode(hmac_sha256(SHOPIFY_SECRET.as_bytes(), body.as_bytes()))
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    use hmac::Mac;
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// A Shopify `orders/create` payload with Shopify order id `id`: `quantity` × `sku` at $5.00,
/// shipped to New York, paid.
pub fn shopify_order(id: u64, sku: &str, quantity: u32) -> String {
    let subtotal = 500 * i64::from(quantity);
    json!({
        "id": id, "name": format!("#{id}"), "email": "buyer@example.com", "currency": "USD",
        "financial_status": "paid",
        "line_items": [{"sku": sku, "quantity": quantity, "price": "5.00", "total_discount": "0.00"}],
        "shipping_lines": [{"price": "4.50", "code": "standard"}],
        "shipping_address": {"country_code": "US", "zip": "10001", "address1": "5 Ave", "city": "New York",
                              "latitude": 40.75, "longitude": -73.99},
        "customer": {"first_name": "Grace", "last_name": "Hopper"},
        "total_discounts": "0.00", "total_tax": "0.00", "total_price": money(subtotal + 450)
    })
    .to_string()
}

/// Seconds since the epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl Oms {
    /// An admin POST with the token (no retry).
    pub fn admin_post(&self, path: &str, body: &str) -> Reply {
        self.staff_post(path, body)
    }

    /// One reconciler pass (`POST /v1/admin/reconcile`); its report (panics unless 200).
    pub fn reconcile(&self, grace_seconds: u64, limit: usize) -> Value {
        let path = format!("/v1/admin/reconcile?grace_seconds={grace_seconds}&limit={limit}");
        let r = until_answered(|| self.admin_post(&path, ""));
        assert_eq!(r.status, 200, "reconcile: {}", r.body);
        r.json()
    }

    /// Runs the reconciler with no grace period until a pass finds nothing owed (no event
    /// re-published, no order re-driven, nothing left over), giving the queue time to run
    /// what each pass re-drove; panics after `timeout`. The reports, in order.
    pub fn reconcile_until_quiet(&self, timeout: Duration) -> Vec<Value> {
        let start = std::time::Instant::now();
        let mut reports = Vec::new();
        loop {
            let report = self.reconcile(0, 500);
            let quiet = report["republished"] == 0
                && report["redriven"].as_array().is_some_and(|r| r.is_empty())
                && report["remaining"] == 0;
            reports.push(report);
            if quiet {
                return reports;
            }
            assert!(
                start.elapsed() < timeout,
                "the reconciler never went quiet: {reports:#?}\nlog:\n{}",
                self.host.log()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// A marketplace delivery on the Standard Webhooks channel.
    pub fn deliver_standard(&self, msg_id: &str, ts: i64, body: &str) -> Reply {
        let headers = standard_webhook_headers(msg_id, ts, body);
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        send(
            "POST",
            &self.url(&format!("/v1/channels/{STANDARD_CHANNEL}/orders")),
            Some(body.as_bytes()),
            &headers,
        )
    }

    /// A marketplace delivery on the Shopify channel, correctly signed.
    pub fn deliver_shopify(&self, body: &str) -> Reply {
        send(
            "POST",
            &self.url(&format!("/v1/channels/{SHOPIFY_CHANNEL}/orders")),
            Some(body.as_bytes()),
            &[
                ("x-shopify-hmac-sha256", &shopify_signature(body)),
                ("content-type", "application/json"),
            ],
        )
    }

    /// `oms queue stats` on this OMS's embedded queue: (channel, component, pending,
    /// in flight, scheduled, dead) per row.
    pub fn queue_stats(&self) -> Vec<(String, String, u64, u64, u64, u64)> {
        let state = self.host.state.path().to_str().unwrap().to_string();
        let manifest = app_root().join("spin.toml");
        let (ok, out, err) = run_oms(
            &[
                "queue",
                "--from",
                manifest.to_str().unwrap(),
                "--state-dir",
                &state,
                "stats",
            ],
            &[],
        );
        assert!(ok, "oms queue stats: {err}");
        out.lines()
            .skip(1)
            .map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                assert_eq!(f.len(), 6, "unexpected stats line {line:?}");
                let n = |i: usize| f[i].parse::<u64>().unwrap();
                (f[0].to_string(), f[1].to_string(), n(2), n(3), n(4), n(5))
            })
            .collect()
    }

    /// The ids of every order in the embedded key-value store (`order:{id}` keys of the
    /// `default` store in the state folder's `kv.db`), sorted.
    pub fn stored_order_ids(&self) -> Vec<String> {
        let db = rusqlite::Connection::open(self.host.state.path().join("kv.db")).unwrap();
        let mut stmt = db
            .prepare(
                "SELECT key FROM kv WHERE store = 'default' AND key LIKE 'order:%' ORDER BY key",
            )
            .unwrap();
        let ids = stmt
            .query_map([], |row| row.get::<_, String>(0))
            .unwrap()
            .map(|k| k.unwrap().trim_start_matches("order:").to_string())
            .collect();
        ids
    }
}

/// Nanoseconds since the epoch: unique enough for idempotency keys.
pub fn unix_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// An order body with exact totals. `lines`: (sku, quantity, unit price in cents).
pub struct OrderSpec {
    /// Lines.
    pub lines: Vec<(&'static str, u32, i64)>,
    /// `standard`, `express` or `pickup`.
    pub method: &'static str,
    /// For pickup.
    pub pickup_location: Option<&'static str>,
    /// Shipping, cents.
    pub shipping: i64,
    /// Tax, cents.
    pub tax: i64,
    /// `authorized` or `captured`.
    pub payment_status: &'static str,
    /// Destination (lat, lon): default Los Angeles.
    pub destination: (f64, f64),
}

impl Default for OrderSpec {
    fn default() -> Self {
        OrderSpec {
            lines: vec![("SKU-1", 1, 1999)],
            method: "standard",
            pickup_location: None,
            shipping: 500,
            tax: 0,
            payment_status: "captured",
            destination: (34.05, -118.24),
        }
    }
}

impl OrderSpec {
    /// The JSON body.
    pub fn body(&self) -> Value {
        let subtotal: i64 = self.lines.iter().map(|(_, q, p)| *q as i64 * p).sum();
        let shipping = if self.method == "pickup" {
            0
        } else {
            self.shipping
        };
        let grand = subtotal + shipping + self.tax;
        let lines: Vec<Value> = self
            .lines
            .iter()
            .map(|(sku, q, p)| json!({"sku": sku, "quantity": q, "unit_price": money(*p)}))
            .collect();
        let mut shipping_json = json!({"method": self.method, "amount": money(shipping)});
        if let Some(loc) = self.pickup_location {
            shipping_json["pickup_location"] = json!(loc);
        } else {
            shipping_json["address"] = json!({
                "country": "US", "postal_code": "90012", "line1": "1 Main St", "city": "Los Angeles",
                "coordinates": {"lat": self.destination.0, "lon": self.destination.1}
            });
        }
        json!({
            "channel": "web",
            "customer": {"email": "ada@example.com", "name": "Ada"},
            "currency": "USD",
            "lines": lines,
            "shipping": shipping_json,
            "tax": money(self.tax),
            "totals": {
                "subtotal": money(subtotal), "discount": "0.00", "shipping": money(shipping),
                "tax": money(self.tax), "grand_total": money(grand)
            },
            "payment": {"reference": "pi_test", "status": self.payment_status, "amount": money(grand)}
        })
    }
}
