//! Who may keep a read, for how long, and under which tags: the headers every cache in front
//! of this component reads (browsers, `oms up`'s response cache, Fastly, Cloudflare, Akamai),
//! set on the 200 and the 304 alike. Errors are never kept (`Cache-Control: no-store`, set by
//! the problem documents).
//!
//! - [`Caching::Public`] (availability, the API description): browsers revalidate every time
//!   (`public, no-cache` with the strong ETag); shared caches keep it a day
//!   (`CDN-Cache-Control`, RFC 9213, and Fastly's `Surrogate-Control`) because every write
//!   purges it by tag before it answers; the tags in each CDN's header.
//! - [`Caching::Private`] (an order, its timeline: personal data behind a credential): no
//!   shared cache may keep it (`private`, `CDN-Cache-Control: no-store`, no CDN tag headers);
//!   `oms up` keeps it per credential (`OMS-Cache-Control`, a targeted field aimed at it
//!   alone), tagged for its own purges only (`Surrogate-Key`).

use oms_edge::purge::tag;
use spin_sdk::http::Response;

/// How long shared caches keep a public read (it is purged on every write that changes it).
pub const SHARED: &str = "max-age=86400, stale-while-revalidate=30, stale-if-error=86400";
/// How long `oms up` keeps a private read in the caller's own partition.
pub const OMS_PRIVATE: &str = "private, max-age=3600, stale-if-error=300";

/// The caching of one read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caching {
    /// Anyone may read it; shared caches keep it until purged by one of these tags.
    Public(Vec<String>),
    /// Needs a credential; kept only per credential, by `oms up`, under these tags (plus
    /// [`tag::CREDENTIALS`]).
    Private(Vec<String>),
}

impl Caching {
    /// A SKU's availability: its own tag and every availability's.
    pub fn availability(sku: &str) -> Caching {
        Caching::Public(vec![tag::sku(sku), tag::AVAILABILITY.to_string()])
    }

    /// An order's view or timeline.
    pub fn order(id: &str) -> Caching {
        Caching::Private(vec![tag::order(id)])
    }

    /// The API description.
    pub fn openapi() -> Caching {
        Caching::Public(vec![tag::OPENAPI.to_string()])
    }

    /// The headers, in order.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            Caching::Public(tags) => vec![
                ("cache-control", "public, no-cache".to_string()),
                ("cdn-cache-control", SHARED.to_string()),
                ("surrogate-control", SHARED.to_string()),
                ("surrogate-key", tags.join(" ")),
                ("cache-tag", tags.join(",")),
                ("edge-cache-tag", tags.join(",")),
            ],
            Caching::Private(tags) => {
                let mut keys = tags.clone();
                keys.push(tag::CREDENTIALS.to_string());
                vec![
                    ("cache-control", "private, no-cache".to_string()),
                    ("cdn-cache-control", "no-store".to_string()),
                    ("surrogate-control", "no-store".to_string()),
                    ("vary", "Authorization".to_string()),
                    ("oms-cache-control", OMS_PRIVATE.to_string()),
                    ("surrogate-key", keys.join(" ")),
                ]
            }
        }
    }

    /// `response` (a read's 200 or 304) with these headers in place of its own
    /// `Cache-Control` and `Vary`.
    pub fn apply(&self, response: Response) -> Response {
        let status = *response.status();
        let kept: Vec<(String, String)> = response
            .headers()
            .filter(|(name, _)| {
                !matches!(name.to_ascii_lowercase().as_str(), "cache-control" | "vary")
            })
            .map(|(name, value)| (name.to_string(), value.as_str().unwrap_or("").to_string()))
            .collect();
        let mut b = Response::builder();
        b.status(status);
        for (name, value) in kept {
            b.header(name, value);
        }
        for (name, value) in self.headers() {
            b.header(name, value);
        }
        b.body(response.into_body()).build()
    }
}
