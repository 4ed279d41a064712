//! `/metrics` on a real `oms up` serving the OMS: staff only (401 with `WWW-Authenticate`
//! otherwise), Prometheus text 0.0.4 that a real parser reads, and counters that move as the
//! requests a user made say they should: requests by route pattern and status, component
//! instantiations by trigger, queue publishes and deliveries, queue depth, process metrics.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use prometheus_parse::{Scrape, Value};

use support::oms::{staff_auth, Oms, OrderSpec};
use support::*;

/// The whole answer of a request, headers included.
struct Answer {
    status: u16,
    content_type: String,
    www_authenticate: Option<String>,
    body: String,
}

fn get_metrics(oms: &Oms, authorization: Option<&str>) -> Answer {
    let mut req = ureq::get(&oms.url("/metrics"));
    if let Some(a) = authorization {
        req = req.set("authorization", a);
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET /metrics: {e}"),
    };
    Answer {
        status: resp.status(),
        content_type: resp.header("content-type").unwrap_or_default().to_string(),
        www_authenticate: resp.header("www-authenticate").map(str::to_string),
        body: resp.into_string().unwrap(),
    }
}

/// Scrapes as staff and parses the text with a Prometheus text parser.
fn scrape(oms: &Oms) -> (Scrape, String) {
    let a = get_metrics(oms, Some(&staff_auth()));
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.content_type, "text/plain; version=0.0.4");
    let parsed = Scrape::parse(a.body.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("not Prometheus text ({e}):\n{}", a.body));
    // What a Prometheus server refuses and the lenient parser lets through: a family declared
    // twice (the host's and the KPIs' colliding), a series given twice.
    let mut families = HashSet::new();
    for line in a.body.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split_whitespace().nth(2).unwrap_or_default();
        assert!(families.insert(name), "family {name} declared twice");
    }
    let mut series = HashSet::new();
    for line in a
        .body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let key = line.rsplit_once(' ').map(|(k, _)| k).unwrap_or(line);
        assert!(series.insert(key), "series given twice: {key}");
    }
    (parsed, a.body)
}

/// The sum of the samples of `name` whose labels include `labels`.
fn sum(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name)
        .filter(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets.last().map(|b| b.count).unwrap_or(0.0),
            Value::Summary(_) => 0.0,
        })
        .sum()
}

fn requests(s: &Scrape, route: &str, component: &str, method: &str, status: &str) -> f64 {
    sum(
        s,
        "oms_http_requests_total",
        &[
            ("route", route),
            ("component", component),
            ("method", method),
            ("status", status),
        ],
    )
}

#[test]
fn metrics_are_staff_only_parseable_and_count_what_happened() {
    let oms = Oms::start();
    oms.seed();
    oms.stock("SKU-1", "wh-west", 10);

    // Nobody but staff reads the metrics.
    let anonymous = get_metrics(&oms, None);
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    assert!(
        anonymous
            .www_authenticate
            .as_deref()
            .is_some_and(|w| w.starts_with("Bearer")),
        "{:?}",
        anonymous.www_authenticate
    );
    assert!(anonymous
        .content_type
        .starts_with("application/problem+json"));
    assert!(!anonymous.body.contains("oms_http_requests_total"));
    let wrong = get_metrics(&oms, Some("Bearer not-the-staff-token"));
    assert_eq!(wrong.status, 401);
    assert!(!wrong.body.contains("oms_"));

    // What a user does: two orders placed and routed, an unknown path, a staff route without
    // a credential, an order that does not exist.
    let placed: Vec<String> = (0..2)
        .map(|_| oms.place_for_customer(&OrderSpec::default().body()).0)
        .collect();
    for id in &placed {
        oms.wait_status(id, "routed");
    }
    assert_eq!(get(&oms.url("/no/such/route")).status, 404);
    assert_eq!(get(&oms.url("/v1/admin/locations")).status, 401);
    let missing = "00000000-0000-4000-8000-000000000000";
    assert_eq!(oms.staff_get(&format!("/v1/orders/{missing}")).status, 404);

    let (s, text) = scrape(&oms);
    // Requests by route pattern (never the raw path), component, method and status.
    assert_eq!(requests(&s, "/v1/orders", "validate", "POST", "202"), 2.0);
    assert_eq!(requests(&s, "none", "-", "GET", "404"), 1.0);
    assert_eq!(requests(&s, "/v1/admin/...", "admin", "GET", "401"), 1.0);
    assert_eq!(requests(&s, "/v1/orders/:id", "query", "GET", "404"), 1.0);
    assert!(requests(&s, "/v1/orders/:id", "query", "GET", "200") >= 2.0);
    assert_eq!(requests(&s, "/metrics", "host", "GET", "401"), 2.0);
    let routes: HashSet<&str> = s
        .samples
        .iter()
        .filter_map(|x| x.labels.get("route"))
        .collect();
    for id in placed.iter().map(String::as_str).chain([missing]) {
        assert!(
            !text.contains(id),
            "an order id leaked into a label: {routes:?}"
        );
    }
    // Latency histogram by route: one observation per request.
    assert_eq!(
        sum(
            &s,
            "oms_http_request_duration_seconds_count",
            &[("route", "/v1/orders"), ("component", "validate")]
        ),
        2.0
    );

    // Every HTTP request ran a fresh instance; the queue ran reserve and route per order.
    let instances = |c, t| {
        sum(
            &s,
            "oms_component_instantiations_total",
            &[("component", c), ("trigger", t)],
        )
    };
    assert!(instances("validate", "http") >= 2.0);
    assert!(instances("reserve", "redis") >= 2.0);
    assert!(instances("route", "redis") >= 2.0);
    // Publishes and deliveries: each order's order.validated reached reserve, and its
    // order.reserved reached route (at least once: a redelivery may add to these).
    assert!(
        sum(
            &s,
            "oms_queue_published_total",
            &[("channel", "order.validated")]
        ) >= 2.0
    );
    let acked = |ch, c| {
        sum(
            &s,
            "oms_queue_deliveries_total",
            &[("channel", ch), ("component", c), ("outcome", "acked")],
        )
    };
    assert!(acked("order.validated", "reserve") >= 2.0, "{text}");
    assert!(acked("order.reserved", "route") >= 2.0, "{text}");
    // Queue depth per channel and subscriber, read when scraped: nothing dead.
    assert!(
        s.samples.iter().any(|x| x.metric == "oms_queue_messages"
            && x.labels.get("channel") == Some("order.validated")
            && x.labels.get("component") == Some("reserve")
            && x.labels.get("state") == Some("pending")),
        "{text}"
    );
    assert_eq!(
        sum(&s, "oms_queue_messages", &[("state", "dead")]),
        0.0,
        "{text}"
    );
    // The process.
    assert!(sum(&s, "process_resident_memory_bytes", &[]) > 0.0);
    assert!(sum(&s, "process_open_fds", &[]) > 0.0);

    // The KPI families of the insights component follow the host's, in the same scrape, once
    // its projection has seen the orders' events.
    if serves_kpis() {
        let (kpis, text) = eventually(
            Duration::from_secs(20),
            "the KPI families to count the orders",
            || {
                let (s, text) = scrape(&oms);
                (sum(&s, "oms_kpi_orders_accepted_total", &[]) >= 2.0).then_some((s, text))
            },
        );
        assert!(sum(&kpis, "oms_http_requests_total", &[]) > 0.0);
        let host_at = text.find("# TYPE oms_http_requests_total").unwrap();
        let kpi_at = text.find("# TYPE oms_kpi_orders_accepted_total").unwrap();
        assert!(host_at < kpi_at, "the host's families come first");
    }

    // Another order: the next scrape counts it, and the scrapes before.
    oms.place_for_customer(&OrderSpec::default().body());
    let (again, _) = scrape(&oms);
    assert_eq!(
        requests(&again, "/v1/orders", "validate", "POST", "202"),
        3.0
    );
    assert!(requests(&again, "/metrics", "host", "GET", "200") >= 1.0);
}

/// Whether the app under test routes the KPI families (the insights component).
fn serves_kpis() -> bool {
    std::fs::read_to_string(app_root().join("spin.toml"))
        .unwrap()
        .contains("route = \"/v1/kpis/metrics\"")
}
