//! Serving a `GET`/`HEAD` through the cache: hit, `304`, stale-while-revalidate,
//! stale-if-error, or forward to the component (the [`Origin`]) and store. Every answer carries
//! `Cache-Status` (RFC 9211).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::{none_match, CacheRequest, Entry, HttpCache, Lookup};

/// The cache's name in `Cache-Status`.
const NAME: &str = "oms";

/// What the cache forwards to on a miss: the component behind the route.
pub trait Origin: Send + Sync + 'static {
    /// Runs the request; always an answer (failures are problem documents: 5xx).
    fn forward(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Response<HyperOutgoingBody>> + Send>>;
}

fn full(body: Bytes) -> HyperOutgoingBody {
    Full::new(body)
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn empty() -> HyperOutgoingBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

fn set_status(headers: &mut HeaderMap, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert("cache-status", v);
    }
}

/// Serves `request` through `cache` (a `GET` or `HEAD`; anything else goes straight to the
/// origin).
pub async fn serve(
    cache: &Arc<HttpCache>,
    request: Request<Full<Bytes>>,
    origin: Arc<dyn Origin>,
) -> Response<HyperOutgoingBody> {
    let Some(creq) = CacheRequest::new(&request).filter(|_| cache.enabled()) else {
        return origin.forward(request).await;
    };
    let now = Instant::now();
    let if_none_match = request
        .headers()
        .get(http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bypass = wants_fresh(request.headers());
    let mut stale = None;
    if !bypass {
        match cache.lookup(&creq, now).await {
            Lookup::Fresh(entry) => {
                cache.count_hit(false);
                return answer(cache, &entry, &creq, if_none_match.as_deref(), now, "hit");
            }
            Lookup::Stale(entry) if entry.within_swr(now) => {
                cache.count_hit(true);
                if !entry.refreshing.swap(true, Ordering::AcqRel) {
                    let (cache, creq, entry) = (cache.clone(), creq.clone(), entry.clone());
                    let copy = copy(&request);
                    tokio::spawn(async move {
                        let (_, stored) = fetch(&cache, &creq, copy, origin.as_ref()).await;
                        if !stored {
                            // Let a later request try again.
                            entry.refreshing.store(false, Ordering::Release);
                        }
                    });
                }
                return answer(
                    cache,
                    &entry,
                    &creq,
                    if_none_match.as_deref(),
                    now,
                    "hit; detail=stale-while-revalidate",
                );
            }
            Lookup::Stale(entry) => stale = Some(entry),
            Lookup::Miss => {}
        }
    }
    let (response, stored) = fetch(cache, &creq, request, origin.as_ref()).await;
    if response.status().is_server_error() {
        if let Some(entry) = stale.as_ref().filter(|e| e.within_sie(now)) {
            cache.count_hit(true);
            tracing::warn!(url = %creq.url, status = response.status().as_u16(), "component failed: stale response served (stale-if-error)");
            return answer(
                cache,
                entry,
                &creq,
                if_none_match.as_deref(),
                now,
                "hit; detail=stale-if-error",
            );
        }
    }
    cache.count_miss();
    let mut status = match (bypass, &stale) {
        (true, _) => "fwd=request".to_string(),
        (false, Some(_)) => format!("fwd=stale; fwd-status={}", response.status().as_u16()),
        (false, None) => "fwd=miss".to_string(),
    };
    if stored {
        status.push_str("; stored");
    }
    let (mut parts, body) = response.into_parts();
    set_status(&mut parts.headers, &format!("{NAME}; {status}"));
    // A component that ignored the condition: answer it here.
    if stored && parts.status == StatusCode::OK {
        let etag = parts
            .headers
            .get(http::header::ETAG)
            .and_then(|v| v.to_str().ok());
        if let (Some(inm), Some(etag)) = (if_none_match.as_deref(), etag) {
            if none_match(inm, etag) {
                cache.count_not_modified();
                return not_modified(&parts.headers);
            }
        }
    }
    Response::from_parts(parts, body)
}

/// Whether the client asked for an answer not served from a cache.
fn wants_fresh(headers: &HeaderMap) -> bool {
    let has = |name: http::header::HeaderName| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .unwrap_or_default()
                .split(',')
                .any(|d| d.trim().eq_ignore_ascii_case("no-cache"))
        })
    };
    has(http::header::CACHE_CONTROL) || has(http::header::PRAGMA)
}

fn copy(request: &Request<Full<Bytes>>) -> Request<Full<Bytes>> {
    let mut r = Request::new(request.body().clone());
    *r.method_mut() = request.method().clone();
    *r.uri_mut() = request.uri().clone();
    *r.version_mut() = request.version();
    *r.headers_mut() = request.headers().clone();
    r
}

/// Forwards to the origin and stores the answer when it may be; the answer and whether it
/// was stored. Conditional headers go along: a component's own `304` passes through unstored
/// (stripping them would turn the `304` of a response this cache may not keep into a full
/// answer).
async fn fetch(
    cache: &HttpCache,
    creq: &CacheRequest,
    request: Request<Full<Bytes>>,
    origin: &dyn Origin,
) -> (Response<HyperOutgoingBody>, bool) {
    let seq = if creq.head { None } else { cache.begin().await };
    let response = origin.forward(request).await;
    let Some(seq) = seq else {
        return (response, false);
    };
    if !cache.wants(creq, response.status(), response.headers()) {
        return (response, false);
    }
    let (parts, body) = response.into_parts();
    let limit = cache.config().max_entry_bytes;
    let collected =
        tokio::time::timeout(cache.config().body_timeout, read_up_to(body, limit)).await;
    match collected {
        Ok(Read::Whole(bytes)) => {
            let stored = cache
                .store(
                    creq,
                    seq,
                    parts.status,
                    &parts.headers,
                    bytes.clone(),
                    Instant::now(),
                )
                .await;
            (Response::from_parts(parts, full(bytes)), stored)
        }
        Ok(Read::TooLarge(head, rest)) => {
            let chained =
                futures::stream::iter(head.into_iter().map(|b| Ok(hyper::body::Frame::data(b))))
                    .chain(http_body_util::BodyStream::new(rest));
            let body = http_body_util::StreamBody::new(chained).boxed_unsync();
            (Response::from_parts(parts, body), false)
        }
        Ok(Read::Failed(e)) => {
            tracing::warn!(url = %creq.url, error = %e, "component failed while sending its response");
            (
                crate::http_trigger::problem(
                    StatusCode::BAD_GATEWAY,
                    "Component failed",
                    "the component stopped before finishing its response",
                ),
                false,
            )
        }
        Err(_) => (
            crate::http_trigger::problem(
                StatusCode::GATEWAY_TIMEOUT,
                "Component timed out",
                "the component did not finish its response in time",
            ),
            false,
        ),
    }
}

enum Read {
    Whole(Bytes),
    /// What was read, and the rest of the body.
    TooLarge(Vec<Bytes>, HyperOutgoingBody),
    Failed(String),
}

async fn read_up_to(mut body: HyperOutgoingBody, limit: usize) -> Read {
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut total = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    total += data.len();
                    chunks.push(data);
                    if total > limit {
                        return Read::TooLarge(chunks, body);
                    }
                }
            }
            Err(e) => return Read::Failed(format!("{e:?}")),
        }
    }
    let mut whole = bytes::BytesMut::with_capacity(total);
    for c in chunks {
        whole.extend_from_slice(&c);
    }
    Read::Whole(whole.freeze())
}

/// The answer from an entry: `304` when `If-None-Match` matches its validator, else the stored
/// response (no body for `HEAD`), with `Age` and `Cache-Status`.
fn answer(
    cache: &HttpCache,
    entry: &Entry,
    creq: &CacheRequest,
    if_none_match: Option<&str>,
    now: Instant,
    status: &str,
) -> Response<HyperOutgoingBody> {
    let mut headers = entry.headers.clone();
    headers.insert(http::header::AGE, entry.age(now).as_secs().into());
    set_status(&mut headers, &format!("{NAME}; {status}"));
    if let (Some(inm), Some(etag)) = (if_none_match, entry.etag()) {
        if entry.status == StatusCode::OK && none_match(inm, etag) {
            cache.count_not_modified();
            return not_modified(&headers);
        }
    }
    let body = if creq.head {
        empty()
    } else {
        full(entry.body.clone())
    };
    let mut response = Response::new(body);
    *response.status_mut() = entry.status;
    *response.headers_mut() = headers;
    response
}

/// Fields a 304 carries (RFC 9110 §15.4.5), plus the cache's own and the CDN directive and tag
/// fields (a CDN in front revalidating an entry keeps its tags).
const NOT_MODIFIED_FIELDS: [&str; 15] = [
    "etag",
    "cache-control",
    "content-location",
    "date",
    "expires",
    "vary",
    "age",
    "cache-status",
    "cdn-cache-control",
    "surrogate-control",
    "oms-cache-control",
    "surrogate-key",
    "cache-tag",
    "edge-cache-tag",
    "last-modified",
];

fn not_modified(from: &HeaderMap) -> Response<HyperOutgoingBody> {
    let mut response = Response::new(empty());
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    let headers = response.headers_mut();
    for name in NOT_MODIFIED_FIELDS {
        for v in from.get_all(name) {
            headers.append(name, v.clone());
        }
    }
    response
}
