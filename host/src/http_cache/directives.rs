//! Which cache directives govern a response, and what they say.
//!
//! Four fields may carry directives. The first one present wins, most targeted first (RFC 9213:
//! a cache uses the most specific targeted field it recognises and ignores the rest):
//! `OMS-Cache-Control` (aimed at this host's cache only) > `CDN-Cache-Control` (RFC 9213) >
//! `Surrogate-Control` (Fastly) > `Cache-Control` (RFC 9111). Within the winner, `s-maxage`
//! beats `max-age`. Parsing is lenient, as caches are: unknown directives are ignored, a
//! malformed number leaves its directive out (so a response without a usable lifetime is simply
//! not stored).

use std::time::Duration;

use http::HeaderMap;

/// The directive fields, most targeted first.
pub const FIELDS: [&str; 4] = [
    "oms-cache-control",
    "cdn-cache-control",
    "surrogate-control",
    "cache-control",
];

/// The directives of one field that matter to this cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    /// `no-store`: never stored.
    pub no_store: bool,
    /// `no-cache`: may not be served without revalidation; this cache does not revalidate, so
    /// it does not store such a response.
    pub no_cache: bool,
    /// `private`: never stored in the shared partition.
    pub private: bool,
    /// `max-age`, seconds.
    pub max_age: Option<u64>,
    /// `s-maxage`, seconds (wins over `max-age`).
    pub s_maxage: Option<u64>,
    /// `stale-while-revalidate`, seconds (RFC 5861).
    pub stale_while_revalidate: Option<u64>,
    /// `stale-if-error`, seconds (RFC 5861).
    pub stale_if_error: Option<u64>,
}

impl Directives {
    /// Parses one field value (a comma-separated list of `name[=value]`; names are
    /// case-insensitive, values may be quoted).
    pub fn parse(value: &str) -> Directives {
        let mut d = Directives::default();
        for item in split_list(value) {
            let (name, arg) = match item.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                None => (item.trim(), None),
            };
            let seconds = || arg.and_then(|v| v.parse::<u64>().ok());
            match name.to_ascii_lowercase().as_str() {
                "no-store" => d.no_store = true,
                // `no-cache="field"` only restricts those fields; treated as the whole response
                // here (stricter, never wrong).
                "no-cache" => d.no_cache = true,
                "private" => d.private = true,
                "max-age" => d.max_age = seconds(),
                "s-maxage" => d.s_maxage = seconds(),
                "stale-while-revalidate" => d.stale_while_revalidate = seconds(),
                "stale-if-error" => d.stale_if_error = seconds(),
                _ => {}
            }
        }
        d
    }

    /// How long a response stays fresh: `s-maxage`, else `max-age`; `None` without either.
    pub fn freshness(&self) -> Option<Duration> {
        self.s_maxage.or(self.max_age).map(Duration::from_secs)
    }
}

/// The governing field's name and its directives: the first of [`FIELDS`] the response has
/// (several lines of one field are read as one list); `None` when it has none of them.
pub fn governing(headers: &HeaderMap) -> Option<(&'static str, Directives)> {
    FIELDS.iter().find_map(|name| {
        let values: Vec<&str> = headers
            .get_all(*name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if values.is_empty() {
            None
        } else {
            Some((*name, Directives::parse(&values.join(","))))
        }
    })
}

/// The items of a comma-separated list, skipping empty ones and not splitting inside quotes.
pub(crate) fn split_list(value: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                items.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&value[start..]);
    items
        .into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn parses_the_directives_that_matter() {
        let d = Directives::parse(
            "Public, MAX-AGE=60, s-maxage=\"120\", stale-while-revalidate=30, stale-if-error=86400, x-ext=\"a,b\"",
        );
        assert_eq!(d.max_age, Some(60));
        assert_eq!(d.s_maxage, Some(120));
        assert_eq!(d.freshness(), Some(Duration::from_secs(120)));
        assert_eq!(d.stale_while_revalidate, Some(30));
        assert_eq!(d.stale_if_error, Some(86400));
        assert!(!d.no_store && !d.private && !d.no_cache);
        let d = Directives::parse("private, no-cache");
        assert!(d.private && d.no_cache);
        assert_eq!(d.freshness(), None);
        assert_eq!(Directives::parse("max-age=soon").max_age, None);
        assert!(Directives::parse("no-store").no_store);
    }

    #[test]
    fn the_most_targeted_field_governs() {
        // The private order read of the contract: the host-targeted field wins over the CDN's
        // no-store and the browser's no-cache.
        let h = headers(&[
            ("cache-control", "private, no-cache"),
            ("cdn-cache-control", "no-store"),
            ("surrogate-control", "no-store"),
            (
                "oms-cache-control",
                "private, max-age=3600, stale-if-error=300",
            ),
        ]);
        let (field, d) = governing(&h).unwrap();
        assert_eq!(field, "oms-cache-control");
        assert!(d.private && !d.no_store);
        assert_eq!(d.max_age, Some(3600));

        // Public availability: CDN-Cache-Control beats Surrogate-Control and Cache-Control.
        let h = headers(&[
            ("cache-control", "public, no-cache"),
            ("surrogate-control", "max-age=5"),
            (
                "cdn-cache-control",
                "max-age=86400, stale-while-revalidate=30, stale-if-error=86400",
            ),
        ]);
        let (field, d) = governing(&h).unwrap();
        assert_eq!(field, "cdn-cache-control");
        assert!(!d.no_cache);
        assert_eq!(d.freshness(), Some(Duration::from_secs(86400)));

        let h = headers(&[
            ("cache-control", "no-cache"),
            ("surrogate-control", "max-age=5"),
        ]);
        assert_eq!(governing(&h).unwrap().0, "surrogate-control");
        let h = headers(&[
            ("cache-control", "max-age=1"),
            ("cache-control", "s-maxage=9"),
        ]);
        assert_eq!(
            governing(&h).unwrap().1.freshness(),
            Some(Duration::from_secs(9))
        );
        assert!(governing(&HeaderMap::new()).is_none());
    }
}
