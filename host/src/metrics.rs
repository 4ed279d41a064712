//! Host metrics, served at [`PATH`] in the Prometheus text format (0.0.4) with the `prometheus`
//! crate: HTTP requests and their latency by route pattern, component instantiations and how
//! invocations failed by trigger, the queue (publishes, delivery outcomes, depth per channel and
//! subscriber), outbound HTTP by destination host, and the process (RSS, open fds, CPU).
//!
//! One [`Metrics`] per host, owned by the [`Runtime`] and shared by `Arc` with whatever records
//! into it (triggers, the outbound policy); no global registry, so two hosts in one process
//! (tests, benchmarks) never mix their counts. Label values are bounded: routes are the
//! manifest's patterns (never raw paths), methods a fixed set, and label values a guest or a
//! client chooses (outbound hosts) are capped, the rest counted under `other`.
//!
//! `/metrics` is a host-reserved path: staff only (`Authorization: Bearer <token>`, one of the
//! app's `admin_token` values), and when a component on this host serves [`KPI_PATH`], its
//! KPI families (answered with the caller's credential) follow the host's.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use sha2::{Digest, Sha256};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::http_trigger::{invoke, problem, Invocation};
use crate::queue::SubscriptionStats;
use crate::routes::Router;
use crate::runtime::{is_deadline, Runtime};

/// The host-reserved path metrics are served at.
pub const PATH: &str = "/metrics";

/// The route a component serves its KPI families at (Prometheus text), appended to the host's.
pub const KPI_PATH: &str = "/v1/kpis/metrics";

/// The media type of the Prometheus text format.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// Latency buckets (seconds): a cached read answers in well under a millisecond, a component
/// in a few; the default deadline is one second.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Distinct outbound hosts given their own label value; the rest are counted as `other`.
const MAX_OUTBOUND_HOSTS: usize = 64;

/// The label value for a request no route matched.
const NO_ROUTE: &str = "none";

/// What ran a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// An HTTP request.
    Http,
    /// A queue message (`[[trigger.redis]]`).
    Redis,
    /// A cron schedule (`[[trigger.cron]]`).
    Cron,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Http => "http",
            Trigger::Redis => "redis",
            Trigger::Cron => "cron",
        }
    }
}

/// What became of one queue delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// The handler succeeded; the message is acknowledged.
    Acked,
    /// The handler failed; the message is retried later.
    Retried,
    /// The handler failed its last attempt; the message is dead-lettered.
    DeadLettered,
}

impl Delivered {
    fn as_str(self) -> &'static str {
        match self {
            Delivered::Acked => "acked",
            Delivered::Retried => "retried",
            Delivered::DeadLettered => "dead_lettered",
        }
    }
}

/// The host's metrics registry and the families recorded into it as things happen.
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    instantiations: IntCounterVec,
    invocation_failures: IntCounterVec,
    queue_published: IntCounterVec,
    queue_deliveries: IntCounterVec,
    outbound_requests: IntCounterVec,
    outbound_hosts: BoundedLabels,
    subscriptions: Vec<(String, String)>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Registers `collector` in `registry`. The families here have fixed, valid and distinct
/// names, which is all registration checks, so a failure is a bug in this file.
fn register<C: prometheus::core::Collector + Clone + 'static>(registry: &Registry, c: C) -> C {
    registry
        .register(Box::new(c.clone()))
        .expect("metric families have fixed, valid, distinct names");
    c
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let vec = IntCounterVec::new(Opts::new(name, help), labels)
        .expect("metric families have fixed, valid names");
    register(registry, vec)
}

impl Metrics {
    /// A registry with every family of the host, and the process collector on Linux.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let r = &registry;
        let http_requests = counter_vec(
            r,
            "oms_http_requests_total",
            "HTTP requests answered, by route pattern (\"none\": no route), component (\"host\": \
             a host-reserved path), method and status.",
            &["route", "component", "method", "status"],
        );
        let http_duration = register(
            r,
            HistogramVec::new(
                HistogramOpts::new(
                    "oms_http_request_duration_seconds",
                    "Time from a request's arrival to its response head, by route pattern and \
                     component.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["route", "component"],
            )
            .expect("metric families have fixed, valid names"),
        );
        let instantiations = counter_vec(
            r,
            "oms_component_instantiations_total",
            "Component instances created, by component and trigger (http, redis, cron).",
            &["component", "trigger"],
        );
        let invocation_failures = counter_vec(
            r,
            "oms_component_failures_total",
            "Component invocations that failed, by component, trigger and reason: instantiate \
             (no instance: e.g. every pool slot busy), trap (the guest trapped), deadline (the \
             guest ran or waited past its deadline and was stopped).",
            &["component", "trigger", "reason"],
        );
        let queue_published = counter_vec(
            r,
            "oms_queue_published_total",
            "Messages published by components, by channel (\"unsubscribed\": a channel nobody \
             subscribes to; the message was dropped).",
            &["channel"],
        );
        let queue_deliveries = counter_vec(
            r,
            "oms_queue_deliveries_total",
            "Queue deliveries run by this host, by channel, subscriber and outcome: acked, \
             retried (failed, scheduled again), dead_lettered (failed its last attempt).",
            &["channel", "component", "outcome"],
        );
        let outbound_requests = counter_vec(
            r,
            "oms_outbound_http_requests_total",
            "Outbound HTTP requests from components, by destination host (\"other\" beyond the \
             first 64 hosts) and outcome: allowed, or denied by allowed_outbound_hosts.",
            &["host", "outcome"],
        );
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("the process collector's families are distinct from the host's");
        Metrics {
            registry,
            http_requests,
            http_duration,
            instantiations,
            invocation_failures,
            queue_published,
            queue_deliveries,
            outbound_requests,
            outbound_hosts: BoundedLabels::new(MAX_OUTBOUND_HOSTS),
            subscriptions: Vec::new(),
        }
    }

    /// The app's (channel, subscriber) pairs: each gets its queue depth series, 0 while it has
    /// no messages.
    pub fn with_subscriptions(
        mut self,
        pairs: impl IntoIterator<Item = (String, String)>,
    ) -> Metrics {
        self.subscriptions = pairs.into_iter().collect();
        self
    }

    /// Records one answered HTTP request. `route` is the matched route pattern (`None`: no
    /// route matched), `component` who answered.
    pub fn http_request(
        &self,
        route: Option<&str>,
        component: &str,
        method: &Method,
        status: StatusCode,
        elapsed: Duration,
    ) {
        let route = route.unwrap_or(NO_ROUTE);
        self.http_requests
            .with_label_values(&[route, component, method_label(method), status.as_str()])
            .inc();
        self.http_duration
            .with_label_values(&[route, component])
            .observe(elapsed.as_secs_f64());
    }

    /// Starts watching one invocation of `component` by `trigger`: see [`InvocationWatch`].
    pub fn watch(self: &Arc<Self>, component: &Arc<str>, trigger: Trigger) -> InvocationWatch {
        InvocationWatch {
            metrics: self.clone(),
            component: component.clone(),
            trigger,
            done: false,
        }
    }

    /// Records a publish to `channel` that stored `deliveries` deliveries.
    pub fn published(&self, channel: &str, deliveries: usize) {
        // A channel with subscribers is one the manifest names; any other is a guest's choice.
        let channel = if deliveries == 0 {
            "unsubscribed"
        } else {
            channel
        };
        self.queue_published.with_label_values(&[channel]).inc();
    }

    /// Records the outcome of one queue delivery.
    pub fn delivered(&self, channel: &str, component: &str, outcome: Delivered) {
        self.queue_deliveries
            .with_label_values(&[channel, component, outcome.as_str()])
            .inc();
    }

    /// Records an outbound HTTP request to `host`, allowed or denied.
    pub fn outbound(&self, host: &str, allowed: bool) {
        let host = self.outbound_hosts.label(host);
        let outcome = if allowed { "allowed" } else { "denied" };
        self.outbound_requests
            .with_label_values(&[host.as_str(), outcome])
            .inc();
    }

    /// The text exposition of every family: those recorded here, then those read at render
    /// time from `snapshot`.
    ///
    /// # Errors
    /// When the encoder rejects a family (not expected: every family here is well formed).
    pub fn render(&self, snapshot: &Snapshot) -> Result<String, prometheus::Error> {
        let mut families = self.registry.gather();
        families.extend(snapshot.families(&self.subscriptions)?);
        families.sort_by(|a, b| a.name().cmp(b.name()));
        let mut text = String::new();
        TextEncoder::new().encode_utf8(&families, &mut text)?;
        Ok(text)
    }

    #[cfg(test)]
    fn text(&self) -> String {
        self.render(&Snapshot::default()).unwrap()
    }
}

/// What [`Metrics::render`] reads from the host's parts at render time.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Queue counts per (channel, subscriber), when the app has a queue and it answered.
    pub queue: Option<Vec<SubscriptionStats>>,
    /// The response cache's counters, when the cache is on.
    pub cache: Option<crate::http_cache::CacheStats>,
}

impl Snapshot {
    fn families(
        &self,
        subscriptions: &[(String, String)],
    ) -> Result<Vec<prometheus::proto::MetricFamily>, prometheus::Error> {
        let registry = Registry::new();
        if let Some(queue) = &self.queue {
            let depth = IntGaugeVec::new(
                Opts::new(
                    "oms_queue_messages",
                    "Queue messages now, by channel, subscriber and state: pending (due, not yet \
                     handed to a handler), in_flight (being handled), scheduled (failed, \
                     waiting for a retry), dead (dead-lettered).",
                ),
                &["channel", "component", "state"],
            )?;
            for (channel, component) in subscriptions {
                for state in ["pending", "in_flight", "scheduled", "dead"] {
                    depth
                        .with_label_values(&[channel.as_str(), component.as_str(), state])
                        .set(0);
                }
            }
            for s in queue {
                for (state, n) in [
                    ("pending", s.pending),
                    ("in_flight", s.in_flight),
                    ("scheduled", s.scheduled),
                    ("dead", s.dead),
                ] {
                    depth
                        .with_label_values(&[s.channel.as_str(), s.component.as_str(), state])
                        .set(i64::try_from(n).unwrap_or(i64::MAX));
                }
            }
            registry.register(Box::new(depth))?;
        }
        if let Some(cache) = &self.cache {
            for (name, help, value) in [
                (
                    "hits",
                    "Requests answered from the response cache (fresh, 304 or stale).",
                    cache.hits,
                ),
                (
                    "misses",
                    "Cache-path requests forwarded to a component.",
                    cache.misses,
                ),
                (
                    "stale_served",
                    "Of the hits, stale entries served (stale-while-revalidate, stale-if-error).",
                    cache.stale_served,
                ),
                (
                    "not_modified",
                    "Of the hits, 304 Not Modified answered from an entry.",
                    cache.not_modified,
                ),
                ("stores", "Responses stored in the cache.", cache.stores),
                (
                    "purges",
                    "Purge requests handled by this host.",
                    cache.purges,
                ),
                (
                    "purged_entries",
                    "Entries removed by purges (this host's and other hosts').",
                    cache.purged_entries,
                ),
                (
                    "evictions",
                    "Entries evicted to stay under the byte bound.",
                    cache.evictions,
                ),
            ] {
                let c = IntCounter::new(format!("oms_http_cache_{name}_total"), help)?;
                c.inc_by(value);
                registry.register(Box::new(c))?;
            }
            for (name, help, value) in [
                ("bytes", "Bytes held by the response cache.", cache.bytes),
                (
                    "entries",
                    "Entries held by the response cache.",
                    cache.entries,
                ),
                (
                    "max_bytes",
                    "The response cache's byte bound.",
                    cache.max_bytes,
                ),
                (
                    "purge_tags",
                    "Purged tags this host's purge log remembers (bounded; 0 with Redis).",
                    cache.purge_tags,
                ),
            ] {
                let g = IntGauge::new(format!("oms_http_cache_{name}"), help)?;
                g.set(i64::try_from(value).unwrap_or(i64::MAX));
                registry.register(Box::new(g))?;
            }
        }
        Ok(registry.gather())
    }
}

/// Watches one invocation of a component: counts the instance when instantiation succeeds, and
/// a failure by its reason — instantiation failed, the guest trapped, or it ran past its
/// deadline. An invocation dropped before it finished (its task aborted, or its future dropped,
/// by the host's deadline clock) counts as a deadline.
pub struct InvocationWatch {
    metrics: Arc<Metrics>,
    component: Arc<str>,
    trigger: Trigger,
    done: bool,
}

impl InvocationWatch {
    /// Records the outcome of instantiation; hands `result` back.
    pub fn instantiated<T>(&mut self, result: wasmtime::Result<T>) -> wasmtime::Result<T> {
        match &result {
            Ok(_) => self
                .metrics
                .instantiations
                .with_label_values(&[&self.component, self.trigger.as_str()])
                .inc(),
            Err(e) if is_deadline(e) => self.fail("deadline"),
            Err(_) => self.fail("instantiate"),
        }
        result
    }

    /// Records the outcome of the guest's handler; hands `result` back.
    pub fn finished<T>(mut self, result: wasmtime::Result<T>) -> wasmtime::Result<T> {
        match &result {
            Ok(_) => self.done = true,
            Err(e) if is_deadline(e) => self.fail("deadline"),
            Err(_) => self.fail("trap"),
        }
        result
    }

    fn fail(&mut self, reason: &str) {
        self.done = true;
        self.metrics
            .invocation_failures
            .with_label_values(&[&self.component, self.trigger.as_str(), reason])
            .inc();
    }
}

impl Drop for InvocationWatch {
    fn drop(&mut self) {
        if !self.done {
            self.fail("deadline");
        }
    }
}

/// Label values taken as they come up to a limit; later new values are `other`.
struct BoundedLabels {
    seen: Mutex<HashSet<String>>,
    max: usize,
}

impl BoundedLabels {
    fn new(max: usize) -> BoundedLabels {
        BoundedLabels {
            seen: Mutex::new(HashSet::new()),
            max,
        }
    }

    fn label(&self, value: &str) -> String {
        let value = value.to_ascii_lowercase();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains(&value) {
            return value;
        }
        if seen.len() < self.max {
            seen.insert(value.clone());
            return value;
        }
        "other".to_string()
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Who may read `/metrics`: the staff bootstrap tokens (the app's `admin_token` variable, a
/// comma-separated list), kept as SHA-256 digests and compared in constant time.
#[derive(Default)]
pub struct ScrapeAuth {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for ScrapeAuth {
    /// How many tokens; never a token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScrapeAuth")
            .field("tokens", &self.digests.len())
            .finish()
    }
}

impl ScrapeAuth {
    /// From the value of `admin_token` (`None`: the app declares none or it has no value, and
    /// nobody may read `/metrics`).
    pub fn from_admin_tokens(list: Option<&str>) -> ScrapeAuth {
        let digests = list
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| Sha256::digest(t.as_bytes()).into())
            .collect();
        ScrapeAuth { digests }
    }

    /// Whether `authorization` is `Bearer <one of the tokens>`. Every token is compared, so
    /// neither which one matched nor a token's length shows in the timing.
    pub fn allows(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some(token) = authorization
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or(v.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
        else {
            return false;
        };
        let given: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.digests.iter().fold(false, |found, d| {
            let differ = d.iter().zip(&given).fold(0u8, |acc, (a, b)| acc | (a ^ b));
            (differ == 0) | found
        })
    }
}

/// Answers a request for [`PATH`]: 405 for a method other than GET or HEAD, 401 (with
/// `WWW-Authenticate: Bearer`) unless [`ScrapeAuth::allows`] its credential, else 200 with the
/// host's families, then — when a component on this host serves [`KPI_PATH`] and answers it
/// 200 for this caller — its families.
pub async fn serve<B>(
    auth: &ScrapeAuth,
    runtime: &Runtime,
    router: &Router<String>,
    req: &Request<B>,
    client: SocketAddr,
    local: SocketAddr,
) -> Response<HyperOutgoingBody> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut response = problem(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed",
            &format!("{PATH} answers GET and HEAD"),
        );
        response
            .headers_mut()
            .insert(http::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let authorization = req.headers().get(http::header::AUTHORIZATION);
    if !auth.allows(authorization) {
        let detail = if authorization.is_none() {
            "a bearer token is required: Authorization: Bearer <staff token (admin_token)>"
        } else {
            "the token is not a staff token (admin_token)"
        };
        let mut response = problem(StatusCode::UNAUTHORIZED, "Unauthorized", detail);
        response.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"oms\""),
        );
        return response;
    }
    let authorization = authorization.cloned();
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| local.to_string());
    let kpis = match authorization {
        Some(a) => kpis(runtime, router, a, &host, client).await,
        None => None,
    };
    let snapshot = Snapshot {
        queue: queue_stats(runtime).await,
        cache: runtime.cache().enabled().then(|| runtime.cache().stats()),
    };
    let mut text = match runtime.metrics().render(&snapshot) {
        Ok(text) => text,
        Err(e) => {
            tracing::error!(error = %e, "cannot render the metrics");
            return problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Metrics unavailable",
                "the host could not render its metrics; see the host log",
            );
        }
    };
    if let Some(kpis) = kpis {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&String::from_utf8_lossy(&kpis));
        if !text.ends_with('\n') {
            text.push('\n');
        }
    }
    let body = if req.method() == Method::HEAD {
        Bytes::new()
    } else {
        Bytes::from(text)
    };
    let mut response = Response::new(
        Full::new(body)
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(CONTENT_TYPE),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    response
}

/// Queue counts, bounded in time so a scrape never hangs on an unreachable queue.
async fn queue_stats(runtime: &Runtime) -> Option<Vec<SubscriptionStats>> {
    let queue = runtime.queue()?;
    match tokio::time::timeout(Duration::from_secs(2), queue.stats()).await {
        Ok(Ok(stats)) => Some(stats),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "metrics: cannot read the queue's counts; left out");
            None
        }
        Err(_) => {
            tracing::warn!("metrics: the queue's counts took over 2 s; left out");
            None
        }
    }
}

/// The body of `GET` [`KPI_PATH`] from the component routed there on this host, run with the
/// caller's credential, when it answers 200 within the HTTP deadline; `None` otherwise (no such
/// route or component here, another status, a failure: logged).
async fn kpis(
    runtime: &Runtime,
    router: &Router<String>,
    authorization: HeaderValue,
    host: &str,
    client: SocketAddr,
) -> Option<Bytes> {
    let (route, id, matched) = router.route(KPI_PATH)?;
    let component = runtime.component(id)?;
    component.http.as_ref()?;
    let full_url = format!("http://{host}{KPI_PATH}");
    let mut request = Request::builder()
        .method(Method::GET)
        .uri(&full_url)
        .header(http::header::HOST, host)
        .header(http::header::AUTHORIZATION, authorization)
        .header(http::header::ACCEPT, CONTENT_TYPE)
        .header("spin-full-url", &full_url)
        .header("spin-path-info", &matched.path_info)
        .header("spin-matched-route", route.as_str())
        .header("spin-raw-component-route", route.as_str())
        .header("spin-component-route", route.base())
        .header("spin-base-path", "/")
        .header("spin-client-addr", client.to_string());
    for (name, value) in &matched.params {
        request = request.header(format!("spin-path-match-{name}"), value);
    }
    let request = match request.body(Full::new(Bytes::new())) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(component = %id, error = %e, "metrics: cannot build the KPI request");
            return None;
        }
    };
    let Invocation { response, task } = match invoke(runtime, &component, request) {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(component = %id, error = %format!("{e:#}"), "metrics: cannot run the KPI component");
            return None;
        }
    };
    let deadline = runtime.limits.http_deadline;
    let read = async {
        let response = response.await.ok()?.ok()?;
        if response.status() != StatusCode::OK {
            tracing::warn!(component = %id, status = response.status().as_u16(), "metrics: the KPI route did not answer 200; its families are left out");
            return None;
        }
        response
            .into_body()
            .collect()
            .await
            .ok()
            .map(|b| b.to_bytes())
    };
    match tokio::time::timeout(deadline, read).await {
        Ok(Some(body)) => Some(body),
        Ok(None) => None,
        Err(_) => {
            task.abort();
            tracing::warn!(component = %id, "metrics: the KPI route did not answer within the deadline; left out");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> prometheus_parse::Scrape {
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
    }

    fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    }

    #[test]
    fn requests_are_counted_by_route_pattern_with_latency() {
        let m = Metrics::new();
        for _ in 0..3 {
            m.http_request(
                Some("/v1/orders/:id"),
                "query",
                &Method::GET,
                StatusCode::OK,
                Duration::from_millis(3),
            );
        }
        m.http_request(
            None,
            "-",
            &Method::from_bytes(b"BREW").unwrap(),
            StatusCode::NOT_FOUND,
            Duration::from_micros(200),
        );
        let text = m.text();
        let s = parse(&text);
        let route = [("route", "/v1/orders/:id"), ("status", "200")];
        assert_eq!(value(&s, "oms_http_requests_total", &route), 3.0);
        assert_eq!(
            value(
                &s,
                "oms_http_requests_total",
                &[("route", "none"), ("method", "other"), ("status", "404")]
            ),
            1.0
        );
        // The histogram: 3 observations of 3 ms, none in the 2.5 ms bucket, all in 5 ms.
        assert!(
            text.contains(
                "oms_http_request_duration_seconds_count{component=\"query\",route=\"/v1/orders/:id\"} 3"
            ),
            "{text}"
        );
        assert!(text.contains(
            "oms_http_request_duration_seconds_bucket{component=\"query\",route=\"/v1/orders/:id\",le=\"0.0025\"} 0"
        ));
        assert!(text.contains(
            "oms_http_request_duration_seconds_bucket{component=\"query\",route=\"/v1/orders/:id\",le=\"0.005\"} 3"
        ));
    }

    #[test]
    fn an_invocation_counts_its_instance_and_how_it_failed() {
        let m = Arc::new(Metrics::new());
        let id: Arc<str> = Arc::from("reserve");
        // Success.
        let mut w = m.watch(&id, Trigger::Redis);
        w.instantiated(Ok(())).unwrap();
        w.finished(Ok(())).unwrap();
        // A trap.
        let mut w = m.watch(&id, Trigger::Redis);
        w.instantiated(Ok(())).unwrap();
        w.finished::<()>(Err(wasmtime::Error::msg("unreachable")))
            .unwrap_err();
        // The epoch deadline.
        let mut w = m.watch(&id, Trigger::Cron);
        w.instantiated(Ok(())).unwrap();
        w.finished::<()>(Err(wasmtime::Error::from(wasmtime::Trap::Interrupt)))
            .unwrap_err();
        // Dropped mid-run (the host's clock).
        let mut w = m.watch(&id, Trigger::Http);
        w.instantiated(Ok(())).unwrap();
        drop(w);
        // No instance.
        let mut w = m.watch(&id, Trigger::Http);
        w.instantiated::<()>(Err(wasmtime::Error::msg("maximum concurrent")))
            .unwrap_err();
        drop(w);

        let s = parse(&m.text());
        let inst = |t| {
            value(
                &s,
                "oms_component_instantiations_total",
                &[("component", "reserve"), ("trigger", t)],
            )
        };
        assert_eq!((inst("redis"), inst("cron"), inst("http")), (2.0, 1.0, 1.0));
        let failed = |t, r| {
            value(
                &s,
                "oms_component_failures_total",
                &[("component", "reserve"), ("trigger", t), ("reason", r)],
            )
        };
        assert_eq!(failed("redis", "trap"), 1.0);
        assert_eq!(failed("cron", "deadline"), 1.0);
        assert_eq!(failed("http", "deadline"), 1.0);
        assert_eq!(failed("http", "instantiate"), 1.0);
        assert_eq!(value(&s, "oms_component_failures_total", &[]), 4.0);
    }

    #[test]
    fn queue_counters_and_depth() {
        let m = Metrics::new().with_subscriptions([
            ("order.validated".to_string(), "notify".to_string()),
            ("order.reserved".to_string(), "route".to_string()),
        ]);
        m.published("order.validated", 2);
        m.published("order.validated", 2);
        m.published("made.up.by.a.guest", 0);
        m.delivered("order.validated", "reserve", Delivered::Acked);
        m.delivered("order.validated", "notify", Delivered::Retried);
        m.delivered("order.validated", "notify", Delivered::DeadLettered);
        let snapshot = Snapshot {
            queue: Some(vec![SubscriptionStats {
                channel: "order.validated".into(),
                component: "notify".into(),
                pending: 4,
                in_flight: 1,
                scheduled: 0,
                dead: 1,
            }]),
            cache: Some(crate::http_cache::CacheStats {
                hits: 7,
                not_modified: 2,
                bytes: 4096,
                purge_tags: 3,
                ..Default::default()
            }),
        };
        let s = parse(&m.render(&snapshot).unwrap());
        assert_eq!(value(&s, "oms_http_cache_hits_total", &[]), 7.0);
        assert_eq!(value(&s, "oms_http_cache_not_modified_total", &[]), 2.0);
        assert_eq!(value(&s, "oms_http_cache_bytes", &[]), 4096.0);
        assert_eq!(value(&s, "oms_http_cache_purge_tags", &[]), 3.0);
        let published = |c| value(&s, "oms_queue_published_total", &[("channel", c)]);
        assert_eq!(published("order.validated"), 2.0);
        assert_eq!(published("unsubscribed"), 1.0);
        assert_eq!(published("made.up.by.a.guest"), 0.0);
        let delivered = |c, o| {
            value(
                &s,
                "oms_queue_deliveries_total",
                &[("component", c), ("outcome", o)],
            )
        };
        assert_eq!(delivered("reserve", "acked"), 1.0);
        assert_eq!(delivered("notify", "retried"), 1.0);
        assert_eq!(delivered("notify", "dead_lettered"), 1.0);
        let depth = |state| {
            value(
                &s,
                "oms_queue_messages",
                &[("component", "notify"), ("state", state)],
            )
        };
        assert_eq!(
            (depth("pending"), depth("in_flight"), depth("dead")),
            (4.0, 1.0, 1.0)
        );
        // A subscription without messages has its series, at 0.
        let idle = s
            .samples
            .iter()
            .filter(|x| x.metric == "oms_queue_messages")
            .filter(|x| x.labels.get("component") == Some("route"))
            .count();
        assert_eq!(idle, 4);
        assert_eq!(
            value(&s, "oms_queue_messages", &[("component", "route")]),
            0.0
        );
    }

    #[test]
    fn outbound_hosts_are_bounded() {
        let m = Metrics::new();
        m.outbound("Hooks.Example.com", true);
        m.outbound("hooks.example.com", true);
        m.outbound("evil.example", false);
        for i in 0..100 {
            m.outbound(&format!("h{i}.example"), true);
        }
        let s = parse(&m.text());
        let out = |h, o| {
            value(
                &s,
                "oms_outbound_http_requests_total",
                &[("host", h), ("outcome", o)],
            )
        };
        assert_eq!(out("hooks.example.com", "allowed"), 2.0);
        assert_eq!(out("evil.example", "denied"), 1.0);
        // 2 hosts above + 62 more get their own label; the other 38 share "other".
        assert_eq!(out("other", "allowed"), 38.0);
        let hosts: HashSet<&str> = s
            .samples
            .iter()
            .filter(|x| x.metric == "oms_outbound_http_requests_total")
            .filter_map(|x| x.labels.get("host"))
            .collect();
        assert_eq!(hosts.len(), MAX_OUTBOUND_HOSTS + 1);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn process_metrics_are_exposed() {
        let s = parse(&Metrics::new().text());
        assert!(value(&s, "process_resident_memory_bytes", &[]) > 0.0);
        assert!(value(&s, "process_open_fds", &[]) > 0.0);
        assert!(s
            .samples
            .iter()
            .any(|x| x.metric == "process_cpu_seconds_total"));
    }

    #[test]
    fn only_a_listed_staff_token_may_scrape() {
        let auth = ScrapeAuth::from_admin_tokens(Some(" first , second,,"));
        let h = |v: &str| HeaderValue::from_str(v).unwrap();
        assert!(auth.allows(Some(&h("Bearer first"))));
        assert!(auth.allows(Some(&h("Bearer second"))));
        assert!(auth.allows(Some(&h("bearer second"))));
        for bad in [
            "Bearer ",
            "Bearer firs",
            "Bearer first,second",
            "first",
            "Basic Zmlyc3Q=",
        ] {
            assert!(!auth.allows(Some(&h(bad))), "{bad}");
        }
        assert!(!auth.allows(None));
        let none = ScrapeAuth::from_admin_tokens(None);
        assert!(!none.allows(Some(&h("Bearer "))));
        assert!(!none.allows(Some(&h("Bearer x"))));
        assert!(!format!("{auth:?}").contains("first"));
    }
}
