//! Spin's HTTP route syntax and matching: exact (`/a/b`), named segments (`/orders/:id`) and a
//! trailing wildcard (`/static/...`). When several routes match, the most specific wins.

use std::cmp::Ordering;
use std::fmt;

/// A parsed route pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePattern {
    raw: String,
    segments: Vec<Segment>,
    wildcard: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// A successful match of a request path against a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// `:name` segments with the values they matched, in order.
    pub params: Vec<(String, String)>,
    /// The part of the path matched by a trailing `...` (starting with `/`), else empty.
    pub path_info: String,
}

impl RoutePattern {
    /// Parses a route as written in `spin.toml`.
    ///
    /// # Errors
    /// A message when the route does not start with `/`, uses `...` anywhere but as the whole
    /// last segment, has an empty `:` name, or repeats a parameter name.
    pub fn parse(raw: &str) -> Result<RoutePattern, String> {
        if !raw.starts_with('/') {
            return Err(format!("route {raw:?} must start with '/'"));
        }
        let parts: Vec<&str> = raw[1..].split('/').filter(|s| !s.is_empty()).collect();
        let mut segments = Vec::new();
        let mut wildcard = false;
        for (i, part) in parts.iter().enumerate() {
            if *part == "..." {
                if i != parts.len() - 1 {
                    return Err(format!("route {raw:?}: '...' may only be the last segment"));
                }
                wildcard = true;
            } else if part.contains("...") {
                return Err(format!("route {raw:?}: '...' must be a whole segment"));
            } else if let Some(name) = part.strip_prefix(':') {
                if name.is_empty() {
                    return Err(format!("route {raw:?}: a ':' segment needs a name"));
                }
                if segments.contains(&Segment::Param(name.to_string())) {
                    return Err(format!("route {raw:?}: parameter :{name} appears twice"));
                }
                segments.push(Segment::Param(name.to_string()));
            } else {
                segments.push(Segment::Literal((*part).to_string()));
            }
        }
        Ok(RoutePattern {
            raw: raw.to_string(),
            segments,
            wildcard,
        })
    }

    /// The route as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The route without a trailing `/...` (Spin's `spin-component-route`).
    pub fn base(&self) -> &str {
        let b = self.raw.trim_end_matches("...").trim_end_matches('/');
        if b.is_empty() {
            "/"
        } else {
            b
        }
    }

    /// Matches a request path (no query string).
    pub fn matches(&self, path: &str) -> Option<RouteMatch> {
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        if parts.len() < self.segments.len()
            || (!self.wildcard && parts.len() != self.segments.len())
        {
            return None;
        }
        let mut params = Vec::new();
        for (seg, part) in self.segments.iter().zip(&parts) {
            match seg {
                Segment::Literal(l) if l == part => {}
                Segment::Literal(_) => return None,
                Segment::Param(name) => params.push((name.clone(), (*part).to_string())),
            }
        }
        let rest = &parts[self.segments.len()..];
        let mut path_info = String::new();
        if self.wildcard {
            for p in rest {
                path_info.push('/');
                path_info.push_str(p);
            }
            if path.ends_with('/') && !rest.is_empty() {
                path_info.push('/');
            }
        }
        Some(RouteMatch { params, path_info })
    }

    /// Orders routes from most to least specific: segment by segment a literal beats a
    /// parameter; then a longer route beats a shorter one; then no wildcard beats a wildcard.
    pub fn specificity_cmp(&self, other: &RoutePattern) -> Ordering {
        for (a, b) in self.segments.iter().zip(&other.segments) {
            match (a, b) {
                (Segment::Literal(_), Segment::Param(_)) => return Ordering::Less,
                (Segment::Param(_), Segment::Literal(_)) => return Ordering::Greater,
                _ => {}
            }
        }
        other
            .segments
            .len()
            .cmp(&self.segments.len())
            .then(self.wildcard.cmp(&other.wildcard))
    }
}

impl fmt::Display for RoutePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// A routing table: every route with its target, most specific first.
#[derive(Debug, Clone)]
pub struct Router<T> {
    routes: Vec<(RoutePattern, T)>,
}

impl<T> Router<T> {
    /// Builds a router; order of `routes` does not matter.
    pub fn new(mut routes: Vec<(RoutePattern, T)>) -> Router<T> {
        routes.sort_by(|a, b| a.0.specificity_cmp(&b.0));
        Router { routes }
    }

    /// The most specific route matching `path`, with its target.
    pub fn route(&self, path: &str) -> Option<(&RoutePattern, &T, RouteMatch)> {
        self.routes
            .iter()
            .find_map(|(p, t)| p.matches(path).map(|m| (p, t, m)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router<&'static str> {
        let r = |s| RoutePattern::parse(s).unwrap();
        Router::new(vec![
            (r("/..."), "fallback"),
            (r("/v1/orders/..."), "orders-any"),
            (r("/v1/orders/:id"), "order"),
            (r("/v1/orders/:id/events"), "events"),
            (r("/v1/orders/export"), "export"),
            (r("/v1/orders"), "orders"),
        ])
    }

    #[test]
    fn most_specific_route_wins() {
        let r = router();
        let hit = |p| *r.route(p).unwrap().1;
        assert_eq!(hit("/v1/orders"), "orders");
        assert_eq!(hit("/v1/orders/export"), "export");
        assert_eq!(hit("/v1/orders/42"), "order");
        assert_eq!(hit("/v1/orders/42/events"), "events");
        assert_eq!(hit("/v1/orders/42/refunds/7"), "orders-any");
        assert_eq!(hit("/health"), "fallback");
    }

    #[test]
    fn params_and_path_info() {
        let r = router();
        let (_, _, m) = r.route("/v1/orders/42/events").unwrap();
        assert_eq!(m.params, vec![("id".to_string(), "42".to_string())]);
        let (p, _, m) = r.route("/v1/orders/a/b").unwrap();
        assert_eq!(p.as_str(), "/v1/orders/...");
        assert_eq!(m.path_info, "/a/b");
        assert_eq!(p.base(), "/v1/orders");
    }

    #[test]
    fn wildcard_matches_its_base() {
        let p = RoutePattern::parse("/static/...").unwrap();
        assert_eq!(p.matches("/static").unwrap().path_info, "");
        assert!(p.matches("/stat").is_none());
    }

    #[test]
    fn rejects_bad_routes() {
        for bad in ["orders", "/a/.../b", "/a/x...", "/:", "/:a/:a"] {
            assert!(
                RoutePattern::parse(bad).is_err(),
                "{bad} should be rejected"
            );
        }
    }
}
