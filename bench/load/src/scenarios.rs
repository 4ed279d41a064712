//! The measured scenarios. Each runs `clients` workers on their own keep-alive connections
//! for a fixed time (or a fixed number of operations) and returns result lines.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use serde_json::{json, Value};

use crate::client::{Conn, Target};
use crate::sink::Sink;
use crate::stats::{Line, Sample};

/// SKUs the order scenarios spread over.
pub const SKUS: usize = 64;
/// How long to wait for accepted orders to settle before calling them lost.
const SETTLE_LIMIT: Duration = Duration::from_secs(300);

/// What every scenario shares.
pub struct Ctx {
    /// The OMS.
    pub target: Target,
    /// Bearer token for /v1/admin and /v1/webhooks.
    pub admin_token: String,
    /// The webhook receiver.
    pub sink: Arc<Sink>,
    /// Distinguishes this run's idempotency keys and SKUs from earlier runs on the same store.
    pub run: String,
}

impl Ctx {
    fn admin(&self) -> String {
        format!("Bearer {}", self.admin_token)
    }

    async fn admin_send(&self, method: Method, path: &str, body: Value) -> anyhow::Result<Value> {
        let auth = self.admin();
        let reply = Conn::new(self.target.clone())
            .send(
                method,
                path,
                &[("authorization", &auth)],
                Some(Bytes::from(body.to_string())),
            )
            .await?;
        anyhow::ensure!(
            (200..300).contains(&reply.status),
            "{path}: HTTP {} {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
        Ok(reply.json())
    }

    /// Locations, prices and deep stock for the order scenarios; the webhook subscription.
    ///
    /// # Errors
    /// Any admin call that fails.
    pub async fn seed(&self, sink_url: &str) -> anyhow::Result<()> {
        self.admin_send(
            Method::PUT,
            "/v1/admin/locations",
            serde_json::from_str::<Value>(include_str!("../../../tests/fixtures/locations.json"))
                .expect("the locations fixture is JSON"),
        )
        .await?;
        for i in 0..SKUS {
            let sku = self.sku(i);
            self.stock(&sku, "wh-east", 1_000_000).await?;
            self.stock(&sku, "wh-west", 1_000_000).await?;
        }
        self.admin_send(
            Method::POST,
            "/v1/webhooks",
            json!({"url": sink_url, "events": ["order.routed", "order.backordered", "order.rejected"]}),
        )
        .await?;
        Ok(())
    }

    async fn stock(&self, sku: &str, location: &str, on_hand: u32) -> anyhow::Result<()> {
        self.admin_send(
            Method::PUT,
            &format!("/v1/admin/catalog/{sku}"),
            json!({"USD": "10.00"}),
        )
        .await?;
        self.admin_send(
            Method::PUT,
            &format!("/v1/admin/stock/{sku}/{location}"),
            json!({"on_hand": on_hand}),
        )
        .await?;
        Ok(())
    }

    fn sku(&self, i: usize) -> String {
        format!("LOAD-{}-{i}", self.run)
    }
}

/// A storefront order for one unit of `sku` at $10.00, captured (so no expiry bookkeeping).
fn order_body(sku: &str) -> Bytes {
    Bytes::from(
        json!({
            "channel": "web", "customer": {"email": "load@example.com", "name": "Load"},
            "currency": "USD",
            "lines": [{"sku": sku, "quantity": 1, "unit_price": "10.00"}],
            "shipping": {"method": "standard", "amount": "5.00", "address": {"country": "US",
                "postal_code": "90012", "line1": "1 Main St", "city": "Los Angeles",
                "coordinates": {"lat": 34.05, "lon": -118.24}}},
            "tax": "0.80",
            "totals": {"subtotal": "10.00", "discount": "0.00", "shipping": "5.00", "tax": "0.80",
                "grand_total": "15.80"},
            "payment": {"reference": "pi_load", "status": "captured", "amount": "15.80"}
        })
        .to_string(),
    )
}

/// Runs `clients` workers until `stop` says so; each gets its index and a connection and
/// returns its sample and anything it collected.
async fn workers<T, F, Fut>(ctx: &Ctx, clients: usize, work: F) -> (Sample, Vec<T>, Duration)
where
    T: Send + 'static,
    F: Fn(usize, Conn) -> Fut,
    Fut: Future<Output = (Sample, Vec<T>)> + Send + 'static,
{
    let started = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|w| tokio::spawn(work(w, Conn::new(ctx.target.clone()))))
        .collect();
    let mut sample = Sample::default();
    let mut collected = Vec::new();
    for h in handles {
        let (s, mut c) = h.await.expect("a load worker panicked");
        sample.merge(&s);
        collected.append(&mut c);
    }
    (sample, collected, started.elapsed())
}

fn label(result: &anyhow::Result<crate::client::Reply>) -> String {
    match result {
        Ok(r) => r.status.to_string(),
        Err(_) => "io-error".into(),
    }
}

/// Idempotency keys handed out so far by this process.
static ORDER_KEYS: AtomicU64 = AtomicU64::new(0);

/// Places orders as fast as `clients` allow for `duration`, the orders they made (id, sent at)
/// and the run's start.
async fn place_orders(
    ctx: &Ctx,
    clients: usize,
    skus: Arc<[String]>,
    budget: Budget,
) -> (Sample, Vec<(String, Instant)>, Duration, Instant) {
    let started = Instant::now();
    let counter = Arc::new(AtomicU64::new(0));
    let run = ctx.run.clone();
    let (sample, placed, elapsed) = workers(ctx, clients, |_, mut conn| {
        let (skus, counter, run, budget) = (skus.clone(), counter.clone(), run.clone(), budget);
        async move {
            let mut sample = Sample::default();
            let mut placed = Vec::new();
            loop {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                if budget.done(n, started) {
                    break;
                }
                let sku = &skus[n as usize % skus.len()];
                // Unique across every scenario of this process: a reused key with another body
                // would (rightly) be answered 422.
                let key = format!("load-{run}-{}", ORDER_KEYS.fetch_add(1, Ordering::Relaxed));
                let sent = Instant::now();
                let result = conn
                    .send(
                        Method::POST,
                        "/v1/orders",
                        &[("idempotency-key", &key)],
                        Some(order_body(sku)),
                    )
                    .await;
                sample.record(&label(&result), sent.elapsed());
                if let Some(r) = result.as_ref().ok().filter(|r| r.status == 202) {
                    if let Some(id) = r.json()["id"].as_str() {
                        placed.push((id.to_string(), sent));
                    }
                }
            }
            (sample, placed)
        }
    })
    .await;
    (sample, placed, elapsed, started)
}

/// How much load a run makes: for a time, or a number of operations.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    /// Until this much time has passed.
    For(Duration),
    /// Exactly this many operations in all.
    Count(u64),
}

impl Budget {
    fn done(self, n: u64, started: Instant) -> bool {
        match self {
            Budget::For(d) => started.elapsed() >= d,
            Budget::Count(c) => n >= c,
        }
    }
}

/// The event that settles an order as fulfillable.
const ROUTED: &str = "order.routed";

/// How the orders of a run settled, as the webhooks told the sink.
struct Settling {
    /// Each order's first settling event, timed from when the order was sent; orders that did
    /// not settle within [`SETTLE_LIMIT`] are counted as `not-settled`.
    sample: Sample,
    /// How many did not settle.
    missing: usize,
    /// When the last `order.routed` arrived (the run's start if none did).
    last_routed: Instant,
}

/// Waits for every order in `placed` (id, sent at) to settle, up to [`SETTLE_LIMIT`].
async fn settle(ctx: &Ctx, placed: &[(String, Instant)], started: Instant) -> Settling {
    let ids: Vec<String> = placed.iter().map(|(id, _)| id.clone()).collect();
    let missing = ctx.sink.wait_all(&ids, SETTLE_LIMIT).await.len();
    let mut sample = Sample::default();
    let mut last_routed = started;
    for (id, sent) in placed {
        if let Some(s) = ctx.sink.settled(id) {
            sample.record(&s.event, s.at.duration_since(*sent));
            if s.event == ROUTED {
                last_routed = last_routed.max(s.at);
            }
        }
    }
    if missing > 0 {
        sample.statuses.insert("not-settled".into(), missing as u64);
    }
    Settling {
        sample,
        missing,
        last_routed,
    }
}

/// Orders accepted per second with accept latency; then, once every accepted order has been
/// routed and its webhook received, end-to-end orders per second and accept→notified latency.
/// Returns the lines and the ids of the orders made (for the read scenarios).
pub async fn orders(ctx: &Ctx, clients: usize, duration: Duration) -> (Vec<Line>, Vec<String>) {
    let skus: Arc<[String]> = (0..SKUS).map(|i| ctx.sku(i)).collect();
    let (accept, placed, elapsed, started) =
        place_orders(ctx, clients, skus, Budget::For(duration)).await;
    let e2e = settle(ctx, &placed, started).await;
    let lines = vec![
        Line::from_sample("POST /v1/orders accepted", clients, &accept, elapsed, |s| {
            s == "202"
        }),
        Line::from_sample(
            "orders routed + webhook received (end to end)",
            clients,
            &e2e.sample,
            e2e.last_routed.duration_since(started),
            |s| s == ROUTED,
        ),
    ];
    (lines, placed.into_iter().map(|(id, _)| id).collect())
}

/// One SKU with `stock` units, `orders` one-unit orders from `clients` clients at once; every
/// accepted order must settle and no more than `stock` may be routed. The lines: intake (with
/// every answer it got) and routed reservations.
///
/// # Errors
/// Seeding or the final availability read failing.
pub async fn hot_sku(
    ctx: &Ctx,
    clients: usize,
    stock: u32,
    orders: u64,
) -> anyhow::Result<(Vec<Line>, String)> {
    let sku = format!("HOT-{}", ctx.run);
    ctx.stock(&sku, "wh-east", stock).await?;
    let skus: Arc<[String]> = Arc::from(vec![sku.clone()]);
    let (accept, placed, elapsed, started) =
        place_orders(ctx, clients, skus, Budget::Count(orders)).await;
    let settled = settle(ctx, &placed, started).await;
    let routed = settled.sample.count(|s| s == ROUTED);
    let availability = Conn::new(ctx.target.clone())
        .send(Method::GET, &format!("/v1/availability/{sku}"), &[], None)
        .await?
        .json();
    let allocated = availability["allocated"].as_u64().unwrap_or(u64::MAX);
    let reserved = availability["reserved"].as_u64().unwrap_or(u64::MAX);
    let on_hand = availability["on_hand"].as_u64().unwrap_or(0);
    let oversold = routed > u64::from(stock) || allocated + reserved > on_hand;
    let verdict = format!(
        "hot SKU: {} orders placed for {stock} units; routed {routed}, allocated {allocated}, \
         reserved {reserved}, on hand {on_hand}, not settled {} -> {}",
        placed.len(),
        settled.missing,
        if oversold { "OVERSOLD" } else { "no oversell" }
    );
    let lines = vec![
        Line::from_sample("hot SKU: orders accepted", clients, &accept, elapsed, |s| {
            s == "202"
        }),
        Line::from_sample(
            "hot SKU: reservations routed",
            clients,
            &settled.sample,
            settled.last_routed.duration_since(started),
            |s| s == ROUTED,
        ),
    ];
    Ok((lines, verdict))
}

/// `GET path` for `duration`, each worker cycling over `paths`; with `conditional`, each
/// request carries the `ETag` from a first read (`If-None-Match`), so a 304 is success.
pub async fn reads(
    ctx: &Ctx,
    name: &str,
    clients: usize,
    duration: Duration,
    paths: Arc<[String]>,
    conditional: bool,
) -> Line {
    let mut etags = Vec::with_capacity(paths.len());
    let mut conn = Conn::new(ctx.target.clone());
    for p in paths.iter() {
        let etag = conn
            .send(Method::GET, p, &[], None)
            .await
            .ok()
            .and_then(|r| r.etag);
        etags.push(etag.unwrap_or_default());
    }
    let etags: Arc<[String]> = Arc::from(etags);
    let ok = if conditional { "304" } else { "200" };
    let (sample, _, elapsed) = workers::<(), _, _>(ctx, clients, |w, mut conn| {
        let (paths, etags) = (paths.clone(), etags.clone());
        async move {
            let mut sample = Sample::default();
            let started = Instant::now();
            let mut i = w;
            while started.elapsed() < duration {
                let (path, etag) = (&paths[i % paths.len()], &etags[i % paths.len()]);
                i += 1;
                let headers: &[(&str, &str)] = if conditional {
                    &[("if-none-match", etag.as_str())]
                } else {
                    &[]
                };
                let sent = Instant::now();
                let result = conn.send(Method::GET, path, headers, None).await;
                sample.record(&label(&result), sent.elapsed());
            }
            (sample, Vec::new())
        }
    })
    .await;
    let name = format!(
        "{name} ({})",
        if conditional {
            "cached: If-None-Match → 304"
        } else {
            "uncached: 200"
        }
    );
    Line::from_sample(name, clients, &sample, elapsed, |s| s == ok)
}

/// `GET /` for `duration` (the hello comparison against `wasmtime serve`).
pub async fn hello(target: &Target, clients: usize, duration: Duration) -> Line {
    let started = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let mut conn = Conn::new(target.clone());
            tokio::spawn(async move {
                let mut sample = Sample::default();
                while started.elapsed() < duration {
                    let sent = Instant::now();
                    let result = conn.send(Method::GET, "/", &[], None).await;
                    sample.record(&label(&result), sent.elapsed());
                }
                sample
            })
        })
        .collect();
    let mut sample = Sample::default();
    for h in handles {
        sample.merge(&h.await.expect("a load worker panicked"));
    }
    Line::from_sample(
        format!("GET / hello ({})", target.addr),
        clients,
        &sample,
        started.elapsed(),
        |s| s == "200",
    )
}
