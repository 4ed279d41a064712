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
    /// The staff `Authorization` header value.
    pub fn admin(&self) -> String {
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

/// An accepted order: its id, its customer token (`access_token` of the 202) and when it was
/// sent.
pub struct Placed {
    /// Order id.
    pub id: String,
    /// The customer's bearer token for this order.
    pub token: String,
    /// When the order was sent.
    pub sent: Instant,
}

/// Places orders as fast as `clients` allow for `duration`, the orders they made and the
/// run's start.
async fn place_orders(
    ctx: &Ctx,
    clients: usize,
    skus: Arc<[String]>,
    budget: Budget,
) -> (Sample, Vec<Placed>, Duration, Instant) {
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
                    let body = r.json();
                    if let Some(id) = body["id"].as_str() {
                        placed.push(Placed {
                            id: id.to_string(),
                            token: body["access_token"].as_str().unwrap_or("").to_string(),
                            sent,
                        });
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

/// Waits for every order in `placed` to settle, up to [`SETTLE_LIMIT`].
async fn settle(ctx: &Ctx, placed: &[Placed], started: Instant) -> Settling {
    let ids: Vec<String> = placed.iter().map(|p| p.id.clone()).collect();
    let missing = ctx.sink.wait_all(&ids, SETTLE_LIMIT).await.len();
    let mut sample = Sample::default();
    let mut last_routed = started;
    for p in placed {
        if let Some(s) = ctx.sink.settled(&p.id) {
            sample.record(&s.event, s.at.duration_since(p.sent));
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
/// Returns the lines and the orders made (for the read scenarios).
pub async fn orders(ctx: &Ctx, clients: usize, duration: Duration) -> (Vec<Line>, Vec<Placed>) {
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
    (lines, placed)
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

/// A read to repeat: a path and the `Authorization` header value to send with it, if any.
pub type ReadPath = (String, Option<String>);

/// `GET path` on `target` for `duration`, each worker cycling over `paths` (each with its own
/// credential); a 200 is success.
pub async fn reads(
    target: &Target,
    name: &str,
    clients: usize,
    duration: Duration,
    paths: Arc<[ReadPath]>,
) -> Line {
    let started = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|w| {
            let (paths, mut conn) = (paths.clone(), Conn::new(target.clone()));
            tokio::spawn(async move {
                let mut sample = Sample::default();
                let mut i = w;
                while started.elapsed() < duration {
                    let (path, auth) = &paths[i % paths.len()];
                    i += 1;
                    let auth_header;
                    let headers: &[(&str, &str)] = match auth {
                        Some(a) => {
                            auth_header = [("authorization", a.as_str())];
                            &auth_header
                        }
                        None => &[],
                    };
                    let sent = Instant::now();
                    let result = conn.send(Method::GET, path, headers, None).await;
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
    Line::from_sample(name, clients, &sample, started.elapsed(), |s| s == "200")
}

/// What the write-then-read check found.
#[derive(Debug, Default)]
pub struct Staleness {
    /// Writes acknowledged (each followed by its reads).
    pub writes: u64,
    /// Reads made right after an acknowledged write.
    pub reads: u64,
    /// Of those, reads that did not show the write (must be 0).
    pub stale: u64,
    /// Writes not acknowledged (not counted in the check), by status.
    pub refused: u64,
}

impl std::fmt::Display for Staleness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "write-then-read: {} acknowledged writes, {} reads right after them, {} stale ({}); {} writes refused",
            self.writes,
            self.reads,
            self.stale,
            if self.stale == 0 { "none" } else { "STALE READS" },
            self.refused
        )
    }
}

/// After each acknowledged write, reads that must show it at once, through whatever caches
/// the host keeps; each read is made once before the write too, so a cache holds the older
/// answer. Writes: an admin stock count (`PUT /v1/admin/stock`, then the public availability
/// must show the new `on_hand`), and an order's cancellation by its customer (then the order,
/// read with the customer's token and with the staff token, must say `cancelled`, and its
/// timeline must hold `order.cancelled`). `rounds` of each, from `clients` workers at once.
///
/// # Errors
/// Seeding the SKU failing.
pub async fn write_then_read(ctx: &Ctx, clients: usize, rounds: u64) -> anyhow::Result<Staleness> {
    let staff = ctx.admin();
    let next = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for w in 0..clients {
        // A SKU per worker, stocked at one location, so `on_hand` is what the worker wrote.
        let sku = format!("STALE-{}-{w}", ctx.run);
        ctx.stock(&sku, "wh-east", 1_000_000).await?;
        let (next, staff, run) = (next.clone(), staff.clone(), ctx.run.clone());
        let mut conn = Conn::new(ctx.target.clone());
        handles.push(tokio::spawn(async move {
            let mut seen = Staleness::default();
            while next.fetch_add(1, Ordering::Relaxed) < rounds {
                stock_round(&mut conn, &sku, &staff, &mut seen).await;
                let key = format!("stale-{run}-{}", ORDER_KEYS.fetch_add(1, Ordering::Relaxed));
                cancel_round(&mut conn, &sku, &key, &staff, &mut seen).await;
            }
            seen
        }));
    }
    let mut all = Staleness::default();
    for h in handles {
        let s = h.await.expect("a check worker panicked");
        all.writes += s.writes;
        all.reads += s.reads;
        all.stale += s.stale;
        all.refused += s.refused;
    }
    Ok(all)
}

async fn get_json(conn: &mut Conn, path: &str, auth: Option<&str>) -> Option<Value> {
    let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
    let r = conn.send(Method::GET, path, &headers, None).await.ok()?;
    (r.status == 200).then(|| r.json())
}

async fn stock_round(conn: &mut Conn, sku: &str, staff: &str, seen: &mut Staleness) {
    let path = format!("/v1/availability/{sku}");
    let _ = get_json(conn, &path, None).await;
    let on_hand = 1_000 + (ORDER_KEYS.fetch_add(1, Ordering::Relaxed) % 1_000_000);
    let written = conn
        .send(
            Method::PUT,
            &format!("/v1/admin/stock/{sku}/wh-east"),
            &[("authorization", staff)],
            Some(Bytes::from(json!({ "on_hand": on_hand }).to_string())),
        )
        .await;
    if !written.is_ok_and(|r| (200..300).contains(&r.status)) {
        seen.refused += 1;
        return;
    }
    seen.writes += 1;
    seen.reads += 1;
    let shown = get_json(conn, &path, None).await;
    if shown.as_ref().and_then(|v| v["on_hand"].as_u64()) != Some(on_hand) {
        seen.stale += 1;
    }
}

async fn cancel_round(conn: &mut Conn, sku: &str, key: &str, staff: &str, seen: &mut Staleness) {
    let Ok(placed) = conn
        .send(
            Method::POST,
            "/v1/orders",
            &[("idempotency-key", key)],
            Some(order_body(sku)),
        )
        .await
    else {
        seen.refused += 1;
        return;
    };
    let body = placed.json();
    let (Some(id), Some(token)) = (body["id"].as_str(), body["access_token"].as_str()) else {
        seen.refused += 1;
        return;
    };
    let customer = format!("Bearer {token}");
    let order = format!("/v1/orders/{id}");
    let events = format!("/v1/orders/{id}/events");
    let reads = [
        (order.as_str(), customer.as_str()),
        (order.as_str(), staff),
        (events.as_str(), customer.as_str()),
    ];
    for (path, auth) in reads {
        let _ = get_json(conn, path, Some(auth)).await;
    }
    let cancelled = conn
        .send(
            Method::POST,
            &format!("/v1/orders/{id}/cancel"),
            &[("authorization", &customer)],
            None,
        )
        .await;
    if !cancelled.is_ok_and(|r| r.status == 200) {
        seen.refused += 1;
        return;
    }
    seen.writes += 1;
    for (path, auth) in reads {
        seen.reads += 1;
        let shown = get_json(conn, path, Some(auth)).await;
        let fresh = match shown {
            Some(v) if path == events => v.to_string().contains("order.cancelled"),
            Some(v) => v["status"] == "cancelled",
            None => false,
        };
        if !fresh {
            seen.stale += 1;
        }
    }
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
