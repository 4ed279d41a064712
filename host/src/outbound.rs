//! Outbound HTTP (and Redis), limited to a component's `allowed_outbound_hosts` (Spin's syntax:
//! `scheme://host[:port]` where scheme, host and port may be `*`, host may be `*.suffix`).
//! Anything else is denied with `HttpRequestDenied` and a log line naming the component.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use wasmtime_wasi_http::{WasiBody, WasiHttpHooks};

use crate::http_cache::HttpCache;
use crate::metrics::Metrics;
use crate::variables::Template;

/// The outbound destinations a component may reach.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    raw: String,
    scheme: Option<String>,
    host: HostRule,
    port: Option<u16>,
}

#[derive(Debug, Clone)]
enum HostRule {
    Any,
    Exact(String),
    Suffix(String),
}

impl Rule {
    /// One entry, `scheme://host[:port]`; the message does not repeat the entry.
    fn parse(raw: &str) -> Result<Rule, String> {
        let (scheme, rest) = raw
            .split_once("://")
            .ok_or_else(|| "expected scheme://host[:port], e.g. https://example.com".to_string())?;
        let scheme = match scheme {
            "*" => None,
            "http" | "https" | "redis" | "rediss" => Some(scheme.to_string()),
            _ => return Err("scheme must be http, https, redis or *".to_string()),
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') {
            return Err("a path is not allowed here".to_string());
        }
        if rest.contains('@') {
            // Spin rejects user info here too: the grant names a host, not a login.
            return Err(
                "credentials are not allowed here: give scheme://host[:port] only".to_string(),
            );
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, "*")) => (h, None),
            Some((h, p)) => (
                h,
                Some(
                    p.parse::<u16>()
                        .map_err(|_| "port must be a number or *".to_string())?,
                ),
            ),
            None => (rest, scheme.as_deref().and_then(default_port)),
        };
        if scheme.is_none() && port.is_none() && !rest.ends_with(":*") && !rest.contains(':') {
            return Err("with scheme * give a port or :*".to_string());
        }
        let host = match host {
            "" => return Err("missing host".to_string()),
            "*" => HostRule::Any,
            h if h.starts_with("*.") => HostRule::Suffix(h[1..].to_ascii_lowercase()),
            h if h.contains('*') => {
                return Err("'*' must be the whole host or a leading '*.'".to_string())
            }
            h => HostRule::Exact(h.to_ascii_lowercase()),
        };
        Ok(Rule {
            raw: raw.to_string(),
            scheme,
            host,
            port,
        })
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        "redis" | "rediss" => Some(6379),
        _ => None,
    }
}

impl AllowedHosts {
    /// Parses the manifest list.
    ///
    /// # Errors
    /// `(index, message)` for the first entry that is not `scheme://host[:port]`.
    pub fn parse(entries: &[String]) -> Result<AllowedHosts, (usize, String)> {
        let rules = entries
            .iter()
            .enumerate()
            .map(|(i, raw)| Rule::parse(raw).map_err(|m| (i, format!("{raw:?}: {m}"))))
            .collect::<Result<_, _>>()?;
        Ok(AllowedHosts { rules })
    }

    /// Whether a request to `scheme://host:port` is allowed.
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        self.rules.iter().any(|r| {
            r.scheme.as_deref().is_none_or(|s| s == scheme)
                && r.port.is_none_or(|p| p == port)
                && match &r.host {
                    HostRule::Any => true,
                    HostRule::Exact(h) => *h == host,
                    HostRule::Suffix(s) => host.ends_with(s.as_str()),
                }
        })
    }

    /// Whether self-requests are granted: an entry for host `self` (or `self.alt`) with scheme
    /// http, https or `*`, as Spin's `check_relative_url`.
    pub fn allows_self(&self) -> bool {
        self.rules.iter().any(|r| {
            matches!(&r.host, HostRule::Exact(h) if h == "self" || h == "self.alt")
                && r.scheme
                    .as_deref()
                    .is_none_or(|s| s == "http" || s == "https")
        })
    }

    /// The entries as written, for messages.
    pub fn describe(&self) -> String {
        if self.rules.is_empty() {
            "none".to_string()
        } else {
            self.rules
                .iter()
                .map(|r| r.raw.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        }
    }
}

/// `allowed_outbound_hosts` as the manifest writes it. As in Spin, an entry may be a template
/// over application variables, whole (`"{{ redis_address }}"`) or in part
/// (`"https://{{ api_host }}:8443"`). An entry without a reference is checked as a host pattern
/// at parse time; the others once their variables have values ([`AllowedHostTemplates::render`]).
#[derive(Debug, Clone, Default)]
pub struct AllowedHostTemplates {
    entries: Vec<Template>,
}

impl AllowedHostTemplates {
    /// Parses the manifest list: every entry's template syntax, every literal entry's pattern.
    ///
    /// # Errors
    /// `(index, message)` for the first malformed entry.
    pub fn parse(entries: &[String]) -> Result<AllowedHostTemplates, (usize, String)> {
        let mut templates = Vec::with_capacity(entries.len());
        for (i, raw) in entries.iter().enumerate() {
            let template = Template::parse(raw).map_err(|m| (i, m))?;
            if template.is_literal() {
                Rule::parse(raw).map_err(|m| (i, format!("{raw:?}: {m}")))?;
            }
            templates.push(template);
        }
        Ok(AllowedHostTemplates { entries: templates })
    }

    /// Each entry's index with the application variables it refers to.
    pub fn references(&self) -> impl Iterator<Item = (usize, &str)> {
        self.entries
            .iter()
            .enumerate()
            .flat_map(|(i, t)| t.references().map(move |r| (i, r)))
    }

    /// Renders every entry with the application values and parses it, as Spin does: an entry
    /// that renders to nothing, `http://` or `https://` is left out (an optional endpoint whose
    /// variable is empty). `is_secret` names the variables whose values must not appear in a
    /// message.
    ///
    /// # Errors
    /// `(index, message)` for an entry referring to a variable without a value, or rendering
    /// to something that is not `scheme://host[:port]` (the message gives the template and,
    /// unless a secret variable went into it, the rendered value).
    pub fn render(
        &self,
        values: &std::collections::HashMap<String, String>,
        is_secret: impl Fn(&str) -> bool,
    ) -> Result<AllowedHosts, (usize, String)> {
        let mut rules = Vec::with_capacity(self.entries.len());
        for (i, template) in self.entries.iter().enumerate() {
            let rendered = template.try_render(values).map_err(|m| (i, m))?;
            if template.is_literal() {
                rules.push(Rule::parse(&rendered).map_err(|m| (i, format!("{rendered:?}: {m}")))?);
                continue;
            }
            if matches!(rendered.as_str(), "" | "http://" | "https://") {
                continue;
            }
            let rule = Rule::parse(&rendered).map_err(|m| {
                let shown = if template.references().any(&is_secret) {
                    "<secret>".to_string()
                } else {
                    format!("{rendered:?}")
                };
                (
                    i,
                    format!("{:?} renders to {shown}: {m}", template.to_string()),
                )
            })?;
            rules.push(rule);
        }
        Ok(AllowedHosts { rules })
    }
}

/// The `wasi:http` hooks of one request: the policy check in front of the default sender.
pub struct OutboundPolicy {
    /// The component making requests.
    pub component: Arc<str>,
    /// Its grant.
    pub allowed: Arc<AllowedHosts>,
    /// The host's response cache, which purge requests reach (see [`PURGE_PATH`]).
    pub cache: Arc<HttpCache>,
    /// Where requests are counted.
    pub metrics: Arc<Metrics>,
}

/// The purge endpoint: a component's self-request `POST http://self.alt/.well-known/oms/purge`
/// with `Surrogate-Key: <tag> <tag> ...` is answered by the host itself, without network I/O:
/// it purges those tags from its cache (and, when the `default` store is Redis, every host's)
/// and answers `200 {"purged": <entries dropped here>}`. Like any self-request it needs
/// `http://self` (or `https://self`) in `allowed_outbound_hosts`, as on Spin.
pub const PURGE_PATH: &str = "/.well-known/oms/purge";

/// Whether a request goes to the app itself, as Spin decides it: authority host `self.alt` or
/// none (here also the literal `self`, which the purge contract names).
fn is_self_request(host: &str) -> bool {
    matches!(host, "" | "self" | "self.alt")
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                ),
                wasmtime_wasi_http::Error,
            >,
        > + Send,
>;

/// A response made by the host, for a self-request.
fn answer(status: http::StatusCode, content_type: &str, body: String) -> SendFuture {
    use http_body_util::BodyExt;
    let mut response = http::Response::new(
        http_body_util::Full::new(bytes::Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    Box::new(async move {
        Ok((
            response,
            Box::new(async { Ok(()) })
                as Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
        ))
    })
}

fn problem_answer(status: http::StatusCode, title: &str, detail: &str) -> SendFuture {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
    })
    .to_string();
    answer(status, "application/problem+json", body)
}

impl OutboundPolicy {
    /// Answers a self-request: the purge endpoint, or a 404 for any other path (`oms up` does
    /// not route self-requests into the app).
    fn self_request(&self, request: http::Request<WasiBody>) -> SendFuture {
        if !self.allowed.allows_self() {
            tracing::warn!(
                component = %self.component,
                allowed_outbound_hosts = %self.allowed.describe(),
                "self-request denied: allowed_outbound_hosts has no http://self"
            );
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        if request.uri().path() != PURGE_PATH {
            return problem_answer(
                http::StatusCode::NOT_FOUND,
                "No route",
                "oms up answers only the purge endpoint to self-requests",
            );
        }
        if request.method() != http::Method::POST {
            return problem_answer(
                http::StatusCode::METHOD_NOT_ALLOWED,
                "Method not allowed",
                "the purge endpoint takes POST",
            );
        }
        let mut tags: Vec<String> = Vec::new();
        for v in request.headers().get_all("surrogate-key") {
            for t in v.to_str().unwrap_or_default().split_whitespace() {
                if !tags.iter().any(|x| x == t) {
                    tags.push(t.to_string());
                }
            }
        }
        let (cache, component) = (self.cache.clone(), self.component.clone());
        Box::new(async move {
            drop(request);
            let (status, body) = match cache.purge(&tags).await {
                Ok(n) => {
                    tracing::debug!(%component, ?tags, purged = n, "cache purge");
                    (http::StatusCode::OK, serde_json::json!({ "purged": n }))
                }
                Err(e) => {
                    tracing::warn!(%component, ?tags, error = %e, "cache purge not recorded for other hosts");
                    (
                        http::StatusCode::SERVICE_UNAVAILABLE,
                        serde_json::json!({
                            "type": "about:blank",
                            "title": "Purge not recorded",
                            "status": 503,
                            "detail": "the purge log is unreachable; other hosts may serve older entries",
                        }),
                    )
                }
            };
            let content_type = if status.is_success() {
                "application/json"
            } else {
                "application/problem+json"
            };
            Pin::from(answer(status, content_type, body.to_string())).await
        })
    }
}

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<WasiBody>,
                        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        if is_self_request(request.uri().host().unwrap_or_default()) {
            return self.self_request(request);
        }
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("https").to_string();
        let host = uri.host().unwrap_or_default().to_string();
        let port = uri
            .port_u16()
            .or_else(|| default_port(&scheme))
            .unwrap_or(0);
        let allowed = self.allowed.allows(&scheme, &host, port);
        self.metrics.outbound(&host, allowed);
        if !allowed {
            tracing::warn!(
                component = %self.component,
                destination = %format!("{scheme}://{host}:{port}"),
                allowed_outbound_hosts = %self.allowed.describe(),
                "outbound HTTP request denied: destination not in allowed_outbound_hosts"
            );
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        tracing::debug!(component = %self.component, %uri, "outbound HTTP request");
        struct Default;
        impl WasiHttpHooks for Default {}
        Default.send_request(request, options, fut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(entries: &[&str]) -> AllowedHosts {
        AllowedHosts::parse(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn matches_spin_patterns() {
        let h = hosts(&[
            "https://api.example.com",
            "http://127.0.0.1:*",
            "https://*.shop.io",
        ]);
        assert!(h.allows("https", "api.example.com", 443));
        assert!(!h.allows("https", "api.example.com", 8443));
        assert!(!h.allows("http", "api.example.com", 80));
        assert!(h.allows("http", "127.0.0.1", 4000));
        assert!(h.allows("https", "eu.shop.io", 443));
        assert!(!h.allows("https", "shop.io.evil.com", 443));
        assert!(!hosts(&[]).allows("https", "example.com", 443));
        assert!(hosts(&["*://*:*"]).allows("http", "anything", 1));
    }

    #[test]
    fn self_requests_need_the_self_grant() {
        assert!(hosts(&["http://self"]).allows_self());
        assert!(hosts(&["https://self.alt"]).allows_self());
        assert!(!hosts(&["*://*:*"]).allows_self());
        assert!(!hosts(&["http://selfish.com"]).allows_self());
        assert!(is_self_request("self.alt") && is_self_request("self") && is_self_request(""));
        assert!(!is_self_request("example.com"));
    }

    #[test]
    fn rejects_malformed_entries() {
        for bad in [
            "example.com",
            "ftp://x",
            "https://a/b",
            "https://x:port",
            "https://a*b",
        ] {
            assert!(AllowedHosts::parse(&[bad.to_string()]).is_err(), "{bad}");
        }
    }
}
