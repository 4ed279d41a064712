//! The HTTP trigger: a hyper server that routes each request (Spin route syntax, most specific
//! wins) to its component, with Spin's `spin-*` request headers. Host-side failures are RFC 9457
//! problem documents: 404 no route, 413 body too large, 504 the guest ran past its deadline,
//! 500 the guest trapped, 503 no instance slot free. The host keeps serving after any of them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::WasiHttpView;

use crate::manifest::App;
use crate::metrics::{ScrapeAuth, Trigger};
use crate::routes::{RouteMatch, RoutePattern, Router};
use crate::runtime::{is_deadline, LoadedComponent, Runtime};

/// The HTTP trigger of one app.
pub struct HttpTrigger {
    runtime: Arc<Runtime>,
    router: Router<String>,
    scrape_auth: ScrapeAuth,
}

impl HttpTrigger {
    /// Routes of the app's `[[trigger.http]]` entries.
    pub fn new(app: &App, runtime: Arc<Runtime>) -> HttpTrigger {
        let routes = app
            .http_triggers
            .iter()
            .map(|t| (t.route.clone(), t.component.clone()))
            .collect();
        HttpTrigger {
            runtime,
            router: Router::new(routes),
            scrape_auth: ScrapeAuth::default(),
        }
    }

    /// Who may read the host's metrics at [`crate::metrics::PATH`] (nobody by default).
    pub fn with_scrape_auth(mut self, auth: ScrapeAuth) -> HttpTrigger {
        self.scrape_auth = auth;
        self
    }

    /// Accepts connections until the listener fails.
    ///
    /// # Errors
    /// When accepting a connection fails.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) -> std::io::Result<()> {
        loop {
            let (stream, client) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let local = stream.local_addr()?;
            let this = self.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let this = this.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(this.handle(req, client, local).await)
                    }
                });
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(%client, error = %e, "connection ended with an error");
                }
            });
        }
    }

    async fn handle(
        &self,
        req: Request<Incoming>,
        client: SocketAddr,
        local: SocketAddr,
    ) -> Response<HyperOutgoingBody> {
        let started = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let metrics = self.runtime.metrics();
        if path == crate::metrics::PATH {
            let (runtime, router) = (&self.runtime, &self.router);
            let response =
                crate::metrics::serve(&self.scrape_auth, runtime, router, &req, client, local)
                    .await;
            let (status, elapsed) = (response.status(), started.elapsed());
            metrics.http_request(Some(&path), "host", &method, status, elapsed);
            return response;
        }
        let (route, component, response) = match self.router.route(&path) {
            None => (
                None,
                None,
                problem(
                    StatusCode::NOT_FOUND,
                    "No route",
                    &format!("no route matches {path}"),
                ),
            ),
            Some((route, id, matched)) => {
                let response = self.dispatch(id, route, matched, req, client, local).await;
                (Some(route.as_str()), Some(id.clone()), response)
            }
        };
        let (status, elapsed) = (response.status(), started.elapsed());
        metrics.http_request(
            route,
            component.as_deref().unwrap_or("-"),
            &method,
            status,
            elapsed,
        );
        tracing::info!(
            %method, %path, component = component.as_deref().unwrap_or("-"),
            status = response.status().as_u16(),
            micros = started.elapsed().as_micros() as u64,
            "request"
        );
        response
    }

    async fn dispatch(
        &self,
        id: &str,
        route: &RoutePattern,
        matched: RouteMatch,
        req: Request<Incoming>,
        client: SocketAddr,
        local: SocketAddr,
    ) -> Response<HyperOutgoingBody> {
        let Some(component) = self.runtime.component(id) else {
            return problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Component not loaded",
                id,
            );
        };
        if component.http.is_none() {
            return problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Component not loaded",
                id,
            );
        }
        let limit = self.runtime.limits.max_body_bytes;
        let too_large = || {
            problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request body too large",
                &format!("the request body exceeds the limit of {limit} bytes"),
            )
        };
        let declared = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return too_large();
        }
        let (mut parts, body) = req.into_parts();
        let body = match Limited::new(body, limit).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e)
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                return too_large()
            }
            Err(e) => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "Unreadable request body",
                    &e.to_string(),
                );
            }
        };

        let host = parts
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .unwrap_or_else(|| local.to_string());
        let path_and_query = parts
            .uri
            .path_and_query()
            .map(|pq| pq.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let full_url = format!("http://{host}{path_and_query}");
        let Ok(uri) = full_url.parse::<http::Uri>() else {
            return problem(
                StatusCode::BAD_REQUEST,
                "Bad request target",
                &path_and_query,
            );
        };
        parts.uri = uri;
        let h = &mut parts.headers;
        let mut set = |name: &str, value: &str| {
            if let (Ok(n), Ok(v)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                h.insert(n, v);
            }
        };
        set("spin-full-url", &full_url);
        set("spin-path-info", &matched.path_info);
        set("spin-matched-route", route.as_str());
        set("spin-raw-component-route", route.as_str());
        set("spin-component-route", route.base());
        set("spin-base-path", "/");
        set("spin-client-addr", &client.to_string());
        for (name, value) in &matched.params {
            set(&format!("spin-path-match-{name}"), value);
        }
        let request = Request::from_parts(parts, Full::new(body));
        let cache = self.runtime.cache();
        if cache.enabled() && matches!(*request.method(), http::Method::GET | http::Method::HEAD) {
            let origin = Arc::new(ComponentOrigin {
                runtime: self.runtime.clone(),
                component,
            });
            return crate::http_cache::serve(cache, request, origin).await;
        }
        forward(&self.runtime, &component, request).await
    }
}

/// A component as the cache's origin: what a miss forwards to.
struct ComponentOrigin {
    runtime: Arc<Runtime>,
    component: Arc<LoadedComponent>,
}

impl crate::http_cache::Origin for ComponentOrigin {
    fn forward(
        &self,
        request: Request<Full<Bytes>>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response<HyperOutgoingBody>> + Send>>
    {
        let (runtime, component) = (self.runtime.clone(), self.component.clone());
        Box::pin(async move { forward(&runtime, &component, request).await })
    }
}

/// Runs `request` in `component` under the HTTP deadline; host-side failures become problem
/// documents (504 deadline, 503 no instance slot, 500 trap or error).
async fn forward(
    runtime: &Runtime,
    component: &LoadedComponent,
    request: Request<Full<Bytes>>,
) -> Response<HyperOutgoingBody> {
    {
        let id = &*component.id;
        let deadline = runtime.limits.http_deadline;
        let Invocation { response, task } = match invoke(runtime, component, request) {
            Ok(invocation) => invocation,
            Err(e) => return internal(id, &e),
        };
        let id_owned = component.id.clone();
        // The epoch deadline interrupts guest code only: a guest waiting in a host call (an
        // outbound request, a slow store) is cut off by the clock, with the same answer.
        let Ok(answer) = tokio::time::timeout(deadline, response).await else {
            task.abort();
            tracing::warn!(component = %id_owned, deadline_ms = deadline.as_millis() as u64, "guest waited past its deadline: stopped");
            return problem(
                StatusCode::GATEWAY_TIMEOUT,
                "Component timed out",
                &format!(
                    "component {id_owned} did not answer within {} ms",
                    deadline.as_millis()
                ),
            );
        };
        match answer {
            Ok(Ok(response)) => response.map(|body| {
                GuardedBody {
                    body,
                    guest: Some(task),
                }
                .boxed_unsync()
            }),
            Ok(Err(code)) => {
                tracing::warn!(component = %id_owned, error = ?code, "guest answered with an error code");
                problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Component error",
                    &format!("{code:?}"),
                )
            }
            Err(_) => match task.await {
                Ok(Err(e)) if is_deadline(&e) => {
                    tracing::warn!(component = %id_owned, deadline_ms = deadline.as_millis() as u64, "guest ran past its deadline: interrupted");
                    problem(
                        StatusCode::GATEWAY_TIMEOUT,
                        "Component timed out",
                        &format!(
                            "component {id_owned} did not finish within {} ms",
                            deadline.as_millis()
                        ),
                    )
                }
                Ok(Err(e)) if is_pool_exhausted(&e) => problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Too many concurrent requests",
                    "no instance slot is free; retry shortly",
                ),
                Ok(Err(e)) => internal(&id_owned, &e),
                Ok(Ok(())) => problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "No response",
                    &format!("component {id_owned} returned without setting a response"),
                ),
                Err(join) => internal(&id_owned, &wasmtime::Error::msg(join.to_string())),
            },
        }
    }
}

/// A guest's response body that ends only once the guest has: if the guest is stopped (its
/// deadline, a trap) after sending the head but before finishing the body, the body ends in an
/// error, so the client sees a broken response, never a short one that looks complete.
struct GuardedBody {
    body: HyperOutgoingBody,
    guest: Option<JoinHandle<wasmtime::Result<()>>>,
}

impl hyper::body::Body for GuardedBody {
    type Data = Bytes;
    type Error = <HyperOutgoingBody as hyper::body::Body>::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        use std::task::Poll;
        match std::pin::Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(None) => {}
            other => return other,
        }
        let Some(guest) = self.guest.as_mut() else {
            return Poll::Ready(None);
        };
        let outcome = std::task::ready!(std::future::Future::poll(std::pin::Pin::new(guest), cx));
        self.guest = None;
        match outcome {
            Ok(Ok(())) => Poll::Ready(None),
            Ok(Err(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "guest stopped before finishing its response body");
                Poll::Ready(Some(Err(ErrorCode::InternalError(Some(
                    "the component stopped before finishing its response".into(),
                ))
                .into())))
            }
            Err(join) => Poll::Ready(Some(Err(
                ErrorCode::InternalError(Some(join.to_string())).into()
            ))),
        }
    }
}

/// One request handed to a component by [`invoke`].
pub struct Invocation {
    /// The response, as soon as the guest sets it (its body may still be streaming); closed
    /// without a value when the guest fails or returns without answering.
    pub response: oneshot::Receiver<Result<Response<HyperOutgoingBody>, ErrorCode>>,
    /// The guest's run on its own task — instantiation, then the handler — and its outcome.
    pub task: JoinHandle<wasmtime::Result<()>>,
}

/// Hands `request` to `component` the way the trigger serves every request: a fresh store with
/// the HTTP deadline, an instance from the component's `instantiate_pre`, and its
/// `wasi:http/incoming-handler` called on a task of its own.
///
/// # Errors
/// When `component` does not serve HTTP, or the request cannot be given to the store.
pub fn invoke(
    runtime: &Runtime,
    component: &LoadedComponent,
    request: Request<Full<Bytes>>,
) -> wasmtime::Result<Invocation> {
    let pre = component.http.clone().ok_or_else(|| {
        wasmtime::Error::msg(format!("component {} does not serve HTTP", component.id))
    })?;
    let mut store = runtime.new_store(component, runtime.limits.http_deadline);
    let (sender, response) = oneshot::channel();
    let req = store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, request)?;
    let out = store.data_mut().http().new_response_outparam(sender)?;
    let mut watch = runtime.metrics().watch(&component.id, Trigger::Http);
    let task = tokio::spawn(async move {
        let proxy = watch.instantiated(pre.instantiate_async(&mut store).await)?;
        let handled = proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut store, req, out)
            .await;
        watch.finished(handled)
    });
    Ok(Invocation { response, task })
}

fn is_pool_exhausted(e: &wasmtime::Error) -> bool {
    let text = format!("{e:#}");
    text.contains("maximum concurrent") || text.contains("pooling allocator")
}

fn internal(component: &str, e: &wasmtime::Error) -> Response<HyperOutgoingBody> {
    tracing::error!(%component, error = %format!("{e:?}"), "component failed");
    problem(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Component failed",
        &format!("component {component} failed; see the host log"),
    )
}

/// An RFC 9457 problem document from the host itself.
pub fn problem(status: StatusCode, title: &str, detail: &str) -> Response<HyperOutgoingBody> {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
    })
    .to_string();
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}
