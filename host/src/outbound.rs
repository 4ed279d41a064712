//! Outbound HTTP (and Redis), limited to a component's `allowed_outbound_hosts` (Spin's syntax:
//! `scheme://host[:port]` where scheme, host and port may be `*`, host may be `*.suffix`).
//! Anything else is denied with `HttpRequestDenied` and a log line naming the component.

use std::future::Future;
use std::sync::Arc;

use wasmtime_wasi_http::{WasiBody, WasiHttpHooks};

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
        let mut rules = Vec::new();
        for (i, raw) in entries.iter().enumerate() {
            let bad = |m: &str| (i, format!("{raw:?}: {m}"));
            let (scheme, rest) = raw
                .split_once("://")
                .ok_or_else(|| bad("expected scheme://host[:port], e.g. https://example.com"))?;
            let scheme = match scheme {
                "*" => None,
                "http" | "https" | "redis" | "rediss" => Some(scheme.to_string()),
                _ => return Err(bad("scheme must be http, https, redis or *")),
            };
            let rest = rest.trim_end_matches('/');
            if rest.contains('/') {
                return Err(bad("a path is not allowed here"));
            }
            let (host, port) = match rest.rsplit_once(':') {
                Some((h, "*")) => (h, None),
                Some((h, p)) => (
                    h,
                    Some(
                        p.parse::<u16>()
                            .map_err(|_| bad("port must be a number or *"))?,
                    ),
                ),
                None => (rest, scheme.as_deref().and_then(default_port)),
            };
            if scheme.is_none() && port.is_none() && !rest.ends_with(":*") && !rest.contains(':') {
                return Err(bad("with scheme * give a port or :*"));
            }
            let host = match host {
                "" => return Err(bad("missing host")),
                "*" => HostRule::Any,
                h if h.starts_with("*.") => HostRule::Suffix(h[1..].to_ascii_lowercase()),
                h if h.contains('*') => {
                    return Err(bad("'*' must be the whole host or a leading '*.'"))
                }
                h => HostRule::Exact(h.to_ascii_lowercase()),
            };
            rules.push(Rule {
                raw: raw.clone(),
                scheme,
                host,
                port,
            });
        }
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

/// The `wasi:http` hooks of one request: the policy check in front of the default sender.
pub struct OutboundPolicy {
    /// The component making requests.
    pub component: Arc<str>,
    /// Its grant.
    pub allowed: Arc<AllowedHosts>,
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
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("https").to_string();
        let host = uri.host().unwrap_or_default().to_string();
        let port = uri
            .port_u16()
            .or_else(|| default_port(&scheme))
            .unwrap_or(0);
        if !self.allowed.allows(&scheme, &host, port) {
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
