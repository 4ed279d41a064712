use std::sync::atomic::{AtomicU16, AtomicUsize};

use super::*;
use crate::http_cache::serve::Origin;
use http::Response;
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

const PUBLIC: &str = "max-age=60, stale-while-revalidate=30, stale-if-error=600";

fn cache(max_bytes: usize) -> Arc<HttpCache> {
    Arc::new(HttpCache::new(
        CacheConfig {
            max_bytes,
            ..CacheConfig::default()
        },
        Arc::new(LocalPurgeLog::new()),
    ))
}

fn get(path: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut b = Request::builder()
        .method("GET")
        .uri(format!("http://h{path}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::new())).unwrap()
}

fn head_of(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    h
}

async fn put(
    c: &HttpCache,
    req: &Request<Full<Bytes>>,
    headers: &[(&str, &str)],
    body: &str,
) -> bool {
    let creq = CacheRequest::new(req).unwrap();
    let seq = c.begin().await.unwrap();
    c.store(
        &creq,
        seq,
        StatusCode::OK,
        &head_of(headers),
        Bytes::from(body.to_string()),
        Instant::now(),
    )
    .await
}

async fn found(c: &HttpCache, req: &Request<Full<Bytes>>, at: Instant) -> Option<String> {
    match c.lookup(&CacheRequest::new(req).unwrap(), at).await {
        Lookup::Fresh(e) => Some(String::from_utf8_lossy(&e.body).into_owned()),
        Lookup::Stale(e) => Some(format!("stale:{}", String::from_utf8_lossy(&e.body))),
        Lookup::Miss => None,
    }
}

#[tokio::test]
async fn storing_follows_the_governing_directives() {
    let c = cache(1 << 20);
    let r = get("/a", &[]);
    assert!(!put(&c, &r, &[("cache-control", "no-store")], "x").await);
    assert!(!put(&c, &r, &[("cache-control", "public, no-cache")], "x").await);
    assert!(!put(&c, &r, &[], "x").await, "no lifetime: not stored");
    assert!(
        !put(
            &c,
            &r,
            &[
                ("cache-control", "max-age=60"),
                ("cdn-cache-control", "no-store")
            ],
            "x"
        )
        .await,
        "the CDN field governs over Cache-Control"
    );
    assert!(
        !put(
            &c,
            &r,
            &[("cache-control", "max-age=60"), ("vary", "*")],
            "x"
        )
        .await
    );
    assert!(
        !put(
            &c,
            &r,
            &[("cache-control", "max-age=60"), ("set-cookie", "a=b")],
            "x"
        )
        .await
    );
    assert!(
        put(
            &c,
            &r,
            &[
                ("cache-control", "public, no-cache"),
                ("cdn-cache-control", PUBLIC)
            ],
            "x"
        )
        .await
    );
    assert_eq!(found(&c, &r, Instant::now()).await.as_deref(), Some("x"));
    // HEAD is served from the GET entry but never stored from.
    let mut h = get("/a", &[]);
    *h.method_mut() = Method::HEAD;
    assert_eq!(found(&c, &h, Instant::now()).await.as_deref(), Some("x"));
    assert_eq!(c.stats().stores, 1);
}

#[tokio::test]
async fn private_responses_stay_in_their_credentials_partition() {
    let c = cache(1 << 20);
    let private = [
        ("cache-control", "private, no-cache"),
        ("cdn-cache-control", "no-store"),
        ("vary", "Authorization"),
        (
            "oms-cache-control",
            "private, max-age=3600, stale-if-error=300",
        ),
        ("surrogate-key", "order-1 credentials"),
    ];
    let anon = get("/o/1", &[]);
    assert!(
        !put(&c, &anon, &private, "anon").await,
        "private never shared"
    );
    let a = get("/o/1", &[("authorization", "Bearer A")]);
    let b = get("/o/1", &[("authorization", "Bearer B")]);
    let cookie = get("/o/1", &[("cookie", "Bearer A")]);
    assert!(put(&c, &a, &private, "for A").await);
    assert_eq!(
        found(&c, &a, Instant::now()).await.as_deref(),
        Some("for A")
    );
    assert_eq!(found(&c, &b, Instant::now()).await, None);
    assert_eq!(found(&c, &anon, Instant::now()).await, None);
    assert_eq!(found(&c, &cookie, Instant::now()).await, None);
    // A public answer stored for an anonymous caller is not served to a credentialed one.
    assert!(put(&c, &anon, &[("cdn-cache-control", PUBLIC)], "public").await);
    assert_eq!(
        found(&c, &anon, Instant::now()).await.as_deref(),
        Some("public")
    );
    assert_eq!(
        found(&c, &a, Instant::now()).await.as_deref(),
        Some("for A")
    );
    // Revoking credentials purges every private entry.
    assert_eq!(c.purge(&["credentials".into()]).await.unwrap(), 1);
    assert_eq!(found(&c, &a, Instant::now()).await, None);
}

#[tokio::test]
async fn vary_selects_the_variant() {
    let c = cache(1 << 20);
    let h = [("cache-control", "max-age=60"), ("vary", "Accept-Language")];
    let en = get("/v", &[("accept-language", "en")]);
    let fr = get("/v", &[("accept-language", "fr")]);
    assert!(put(&c, &en, &h, "hello").await);
    assert_eq!(found(&c, &fr, Instant::now()).await, None);
    assert!(put(&c, &fr, &h, "bonjour").await);
    assert_eq!(
        found(&c, &en, Instant::now()).await.as_deref(),
        Some("hello")
    );
    assert_eq!(
        found(&c, &fr, Instant::now()).await.as_deref(),
        Some("bonjour")
    );
    assert_eq!(found(&c, &get("/v", &[]), Instant::now()).await, None);
    // Storing the same variant again replaces it.
    assert!(put(&c, &en, &h, "hi").await);
    assert_eq!(found(&c, &en, Instant::now()).await.as_deref(), Some("hi"));
    assert_eq!(c.stats().entries, 2);
}

#[tokio::test]
async fn freshness_then_stale_windows_then_gone() {
    let c = cache(1 << 20);
    let r = get("/f", &[]);
    let t0 = Instant::now();
    assert!(
        put(
            &c,
            &r,
            &[(
                "cache-control",
                "max-age=60, stale-while-revalidate=30, stale-if-error=100"
            )],
            "v"
        )
        .await
    );
    let at = |s| t0 + Duration::from_secs(s);
    assert_eq!(found(&c, &r, at(59)).await.as_deref(), Some("v"));
    assert_eq!(found(&c, &r, at(61)).await.as_deref(), Some("stale:v"));
    assert_eq!(found(&c, &r, at(159)).await.as_deref(), Some("stale:v"));
    assert_eq!(found(&c, &r, at(161)).await, None);
    assert_eq!(c.stats().entries, 0, "expired entries are dropped");
    // The response's own Age counts.
    assert!(
        put(
            &c,
            &r,
            &[("cache-control", "max-age=60"), ("age", "59")],
            "old"
        )
        .await
    );
    assert_eq!(found(&c, &r, at(2)).await, None);
}

#[tokio::test]
async fn lru_evicts_by_bytes() {
    let c = cache(8 << 10);
    let body = "x".repeat(2 << 10);
    let h = [("cache-control", "max-age=60")];
    for i in 0..3 {
        assert!(put(&c, &get(&format!("/{i}"), &[]), &h, &body).await);
    }
    // Touch /0 so /1 is the least recently used.
    assert!(found(&c, &get("/0", &[]), Instant::now()).await.is_some());
    assert!(put(&c, &get("/3", &[]), &h, &body).await);
    let s = c.stats();
    assert!(s.bytes <= 8 << 10, "{s:?}");
    assert_eq!(s.evictions, 1, "{s:?}");
    assert!(found(&c, &get("/1", &[]), Instant::now()).await.is_none());
    for i in [0, 2, 3] {
        assert!(
            found(&c, &get(&format!("/{i}"), &[]), Instant::now())
                .await
                .is_some(),
            "{i}"
        );
    }
    // Too large for the whole cache: not stored, nothing evicted.
    assert!(!put(&c, &get("/big", &[]), &h, &"y".repeat(9 << 10)).await);
    assert_eq!(c.stats().entries, 3);
}

#[tokio::test]
async fn a_purge_during_the_read_keeps_the_older_answer_out() {
    let c = cache(1 << 20);
    let r = get("/o/1", &[]);
    let creq = CacheRequest::new(&r).unwrap();
    let h = head_of(&[
        ("cdn-cache-control", PUBLIC),
        ("surrogate-key", "order-1 availability"),
    ]);
    // The component starts reading, a write purges its tag, then the (older) answer arrives.
    let seq = c.begin().await.unwrap();
    c.purge(&["order-1".into()]).await.unwrap();
    assert!(
        !c.store(
            &creq,
            seq,
            StatusCode::OK,
            &h,
            Bytes::from("old"),
            Instant::now()
        )
        .await
    );
    // A purge of another tag does not matter.
    let seq = c.begin().await.unwrap();
    c.purge(&["order-2".into()]).await.unwrap();
    assert!(
        c.store(
            &creq,
            seq,
            StatusCode::OK,
            &h,
            Bytes::from("new"),
            Instant::now()
        )
        .await
    );
    // An entry that slipped in before the purge was recorded is refused at the next hit.
    let seq = c.begin().await.unwrap();
    assert!(
        c.store(
            &creq,
            seq,
            StatusCode::OK,
            &h,
            Bytes::from("newer"),
            Instant::now()
        )
        .await
    );
    c.log.purge(&["availability".into()]).await.unwrap();
    assert_eq!(found(&c, &r, Instant::now()).await, None);
}

#[test]
fn if_none_match_uses_the_weak_comparison() {
    assert!(none_match("\"a\"", "\"a\""));
    assert!(none_match("W/\"a\", \"b\"", "\"a\""));
    assert!(none_match("*", "\"z\""));
    assert!(!none_match("\"b\"", "\"a\""));
}

/// An origin answering with the next status and counting calls.
struct Fake {
    calls: AtomicUsize,
    status: AtomicU16,
    headers: Vec<(&'static str, &'static str)>,
}

impl Fake {
    fn new(headers: Vec<(&'static str, &'static str)>) -> Arc<Fake> {
        Arc::new(Fake {
            calls: AtomicUsize::new(0),
            status: AtomicU16::new(200),
            headers,
        })
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Origin for Fake {
    fn forward(
        &self,
        request: Request<Full<Bytes>>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response<HyperOutgoingBody>> + Send>>
    {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let status = StatusCode::from_u16(self.status.load(Ordering::SeqCst)).unwrap();
        let conditional = request.headers().contains_key(http::header::IF_NONE_MATCH);
        let mut b = Response::builder().status(status);
        if status.is_success() {
            for (k, v) in &self.headers {
                b = b.header(*k, *v);
            }
            b = b.header("etag", format!("\"v{n}\""));
        } else {
            b = b.header("cache-control", "no-store");
        }
        let body = format!("answer {n} conditional={conditional}");
        let r = b
            .body(
                Full::new(Bytes::from(body))
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            )
            .unwrap();
        Box::pin(async move { r })
    }
}

async fn text(r: Response<HyperOutgoingBody>) -> (u16, String, String) {
    let status = r.status().as_u16();
    let cs = r
        .headers()
        .get("cache-status")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = r.into_body().collect().await.unwrap().to_bytes();
    (status, cs, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn serve_hits_answers_304_and_says_so() {
    let c = cache(1 << 20);
    let origin = Fake::new(vec![("cdn-cache-control", "max-age=60")]);
    let o: Arc<dyn Origin> = origin.clone();
    let (s, cs, body) =
        text(serve(&c, get("/x", &[("if-none-match", "\"nope\"")]), o.clone()).await).await;
    assert_eq!((s, cs.as_str()), (200, "oms; fwd=miss; stored"));
    assert_eq!(body, "answer 1 conditional=true", "conditions go along");
    let (s, cs, body) = text(serve(&c, get("/x", &[]), o.clone()).await).await;
    assert_eq!(
        (s, cs.as_str(), body.as_str()),
        (200, "oms; hit", "answer 1 conditional=true")
    );
    let (s, cs, _) =
        text(serve(&c, get("/x", &[("if-none-match", "\"v1\"")]), o.clone()).await).await;
    assert_eq!((s, cs.as_str()), (304, "oms; hit"));
    let (s, cs, _) =
        text(serve(&c, get("/x", &[("cache-control", "no-cache")]), o.clone()).await).await;
    assert_eq!((s, cs.as_str()), (200, "oms; fwd=request; stored"));
    assert_eq!(origin.calls(), 2);
    let st = c.stats();
    assert_eq!(
        (st.hits, st.misses, st.not_modified, st.stores),
        (2, 2, 1, 2)
    );
}

#[tokio::test]
async fn stale_while_revalidate_serves_and_refreshes_once() {
    let c = cache(1 << 20);
    let origin = Fake::new(vec![(
        "cdn-cache-control",
        "max-age=0, stale-while-revalidate=60",
    )]);
    let o: Arc<dyn Origin> = origin.clone();
    let (_, cs, _) = text(serve(&c, get("/s", &[]), o.clone()).await).await;
    assert_eq!(cs, "oms; fwd=miss; stored");
    for _ in 0..5 {
        let (s, cs, body) = text(serve(&c, get("/s", &[]), o.clone()).await).await;
        assert_eq!(s, 200);
        assert!(body.starts_with("answer "), "{body}");
        assert!(
            cs == "oms; hit; detail=stale-while-revalidate" || cs == "oms; fwd=miss; stored",
            "{cs}"
        );
    }
    // One background refresh per stale entry: at most one extra call per entry stored.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let st = c.stats();
    assert!(st.stale_served >= 1, "{st:?}");
    assert!(
        origin.calls() as u64 <= st.stores + 1,
        "{} calls, {st:?}",
        origin.calls()
    );
}

#[tokio::test]
async fn stale_if_error_serves_the_entry_when_the_component_fails() {
    let c = cache(1 << 20);
    let origin = Fake::new(vec![("oms-cache-control", "max-age=0, stale-if-error=300")]);
    let o: Arc<dyn Origin> = origin.clone();
    let (_, _, first) = text(serve(&c, get("/e", &[]), o.clone()).await).await;
    origin.status.store(500, Ordering::SeqCst);
    let (s, cs, body) = text(serve(&c, get("/e", &[]), o.clone()).await).await;
    assert_eq!((s, cs.as_str()), (200, "oms; hit; detail=stale-if-error"));
    assert_eq!(body, first);
    origin.status.store(200, Ordering::SeqCst);
    let (s, cs, _) = text(serve(&c, get("/e", &[]), o.clone()).await).await;
    assert_eq!(
        (s, cs.as_str()),
        (200, "oms; fwd=stale; fwd-status=200; stored")
    );
    // A 5xx without an entry is passed on.
    origin.status.store(503, Ordering::SeqCst);
    let (s, cs, _) = text(serve(&c, get("/other", &[]), o.clone()).await).await;
    assert_eq!((s, cs.as_str()), (503, "oms; fwd=miss"));
}
