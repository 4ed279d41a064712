//! The OMS under test: the real `spin.toml` on `oms up`, plus builders for catalog, stock and
//! orders. Money in these helpers is in cents so the tests' arithmetic is exact.

use std::time::Duration;

use serde_json::{json, Value};

use super::*;

/// The admin token the fixture starts the OMS with.
pub const ADMIN_TOKEN: &str = "test-admin-token";
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
            host: Host::start(&repo().join("spin.toml"), &all_args, &all_env),
        }
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

    /// An admin PUT with the token; panics unless 2xx.
    pub fn admin_put(&self, path: &str, body: Value) -> Value {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        let r = send(
            "PUT",
            &self.url(path),
            Some(body.to_string().as_bytes()),
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
        );
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

    /// `GET /v1/orders/{id}` as JSON (panics unless 200).
    pub fn order(&self, id: &str) -> Value {
        let r = get(&self.url(&format!("/v1/orders/{id}")));
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    }

    /// `GET /v1/availability/{sku}` as JSON (panics unless 200).
    pub fn availability(&self, sku: &str) -> Value {
        let r = get(&self.url(&format!("/v1/availability/{sku}")));
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    }

    /// The event types of an order's timeline, oldest first.
    pub fn event_types(&self, id: &str) -> Vec<String> {
        let r = get(&self.url(&format!("/v1/orders/{id}/events")));
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
                    let r = get(&self.url(&format!("/v1/orders/{id}")));
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
