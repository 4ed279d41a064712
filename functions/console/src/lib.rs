//! console: the operations console (`/console`) and the storefront demo page (`/shop`), static
//! files embedded in the component at build time (`build.rs`: everything under `assets/` and
//! the browser package from `target/browser-pkg/`). Nothing is read at run time: no store, no
//! network, no variables. The pages call only the public API (`/v1/...`) from the browser.
//!
//! Every file is served with its content type, a strong `ETag` (`If-None-Match` → 304) and:
//! - `Cache-Control: public, no-cache` (revalidate each time) at its own URL
//!   (`/console/app.js`), and `public, max-age=31536000, immutable` at its content-addressed
//!   URL (`/console/_/<hash>/app.js`, which the pages use: a new build is a new URL). A
//!   content-addressed URL whose hash is not the file's (a page of an older build asking after
//!   a deploy) gets the current file, revalidated.
//! - a strict `Content-Security-Policy`: scripts only from this origin (no inline script, no
//!   eval; WebAssembly compilation allowed for the browser package), API calls only to this
//!   origin, no framing, plus `nosniff`, `no-referrer` and `same-origin` opener isolation.
//!
//! `/console` and `/shop` (with or without a trailing `/`) are their `index.html`; a path
//! without an extension is its `.html` page (`/shop/order` → `order.html`). GET and HEAD only
//! (405 otherwise); an unknown path is a 404 problem document.

// The spin-sdk export macro expands to the FFI glue (export_name, unsafe) of the component
// ABI; nothing else in this crate is unsafe.
#![allow(unsafe_code)]

use oms_edge::Problem;
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// Its URL path, e.g. `/console/app.js`.
    pub path: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Hex SHA-256 prefix of `body`: the ETag and the content address.
    pub hash: &'static str,
}

/// Every embedded file, sorted by path.
pub static ASSETS: &[Asset] = include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The Content-Security-Policy of every response.
pub const CSP: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; \
    style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; \
    manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// `Cache-Control` of a file at its own URL: kept, revalidated before each use.
pub const REVALIDATE: &str = "public, no-cache";
/// `Cache-Control` of a file at its content-addressed URL: never changes.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

#[http_component]
fn handle(req: Request) -> Response {
    serve(&req)
}

/// Answers one request from the embedded files.
pub fn serve(req: &Request) -> Response {
    if !matches!(req.method(), Method::Get | Method::Head) {
        return Problem::method_not_allowed("GET, HEAD").response();
    }
    let path = req.path();
    let Some((asset, cache)) = lookup(path) else {
        return Problem::not_found("page", path).response();
    };
    let etag = format!("\"{}\"", asset.hash);
    let fresh = req
        .header("if-none-match")
        .and_then(|v| v.as_str())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut b = Response::builder();
    b.header("etag", etag.as_str())
        .header("cache-control", cache)
        .header("content-type", asset.content_type)
        .header("content-security-policy", CSP)
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer")
        .header("cross-origin-opener-policy", "same-origin")
        .header("cross-origin-resource-policy", "same-origin")
        .header("x-frame-options", "DENY");
    if fresh {
        return b.status(304).build();
    }
    b.status(200)
        .header("content-length", asset.body.len().to_string());
    if *req.method() == Method::Head {
        return b.build();
    }
    b.body(bytes::Bytes::from_static(asset.body)).build()
}

/// The file a path names and the `Cache-Control` it is served with.
pub fn lookup(path: &str) -> Option<(&'static Asset, &'static str)> {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let section = parts.next()?;
    if section != "console" && section != "shop" {
        return None;
    }
    let rest = parts.next().unwrap_or("").trim_end_matches('/');
    if let Some(addressed) = rest.strip_prefix("_/") {
        let (hash, name) = addressed.split_once('/')?;
        let asset = find(&format!("/{section}/{name}"))?;
        let cache = if asset.hash == hash {
            IMMUTABLE
        } else {
            REVALIDATE
        };
        return Some((asset, cache));
    }
    let file = if rest.is_empty() {
        format!("/{section}/index.html")
    } else if rest
        .rsplit('/')
        .next()
        .is_some_and(|last| !last.contains('.'))
    {
        format!("/{section}/{rest}.html")
    } else {
        format!("/{section}/{rest}")
    };
    Some((find(&file)?, REVALIDATE))
}

fn find(path: &str) -> Option<&'static Asset> {
    ASSETS
        .binary_search_by(|a| a.path.cmp(path))
        .ok()
        .map(|i| &ASSETS[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str, headers: &[(&str, &str)]) -> Response {
        let mut b = Request::builder();
        b.method(Method::Get).uri(path);
        for (k, v) in headers {
            b.header(*k, *v);
        }
        serve(&b.build())
    }

    fn header(r: &Response, name: &str) -> String {
        r.header(name)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    }

    #[test]
    fn pages_and_their_files_are_served_with_type_etag_cache_and_csp() {
        for (path, ty) in [
            ("/console", "text/html; charset=utf-8"),
            ("/console/", "text/html; charset=utf-8"),
            ("/shop", "text/html; charset=utf-8"),
            ("/shop/order", "text/html; charset=utf-8"),
            ("/console/app.js", "text/javascript; charset=utf-8"),
            ("/shop/style.css", "text/css; charset=utf-8"),
            ("/shop/pkg/oms_browser_bg.wasm", "application/wasm"),
        ] {
            let r = get(path, &[]);
            assert_eq!(*r.status(), 200, "{path}");
            assert_eq!(header(&r, "content-type"), ty, "{path}");
            assert_eq!(header(&r, "cache-control"), REVALIDATE, "{path}");
            assert!(header(&r, "etag").starts_with('"'), "{path}");
            let csp = header(&r, "content-security-policy");
            assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
            assert!(csp.contains("connect-src 'self'"));
            assert!(!r.body().is_empty());
        }
    }

    #[test]
    fn pages_load_their_scripts_by_content_address_which_is_immutable() {
        let page = String::from_utf8(get("/console", &[]).body().to_vec()).unwrap();
        assert!(!page.contains("{{asset"), "placeholders rewritten");
        let app = find("/console/app.js").unwrap();
        let url = format!("/console/_/{}/app.js", app.hash);
        assert!(page.contains(&url), "{page}");
        let r = get(&url, &[]);
        assert_eq!(header(&r, "cache-control"), IMMUTABLE);
        assert_eq!(r.body(), app.body);
        // an older build's address: the current file, revalidated
        let r = get("/console/_/0123/app.js", &[]);
        assert_eq!(header(&r, "cache-control"), REVALIDATE);
        assert_eq!(r.body(), app.body);
        // no inline script in any page
        for a in ASSETS.iter().filter(|a| a.path.ends_with(".html")) {
            let text = std::str::from_utf8(a.body).unwrap();
            for tag in text.split("<script").skip(1) {
                assert!(
                    tag.split('>').next().unwrap().contains("src="),
                    "{}",
                    a.path
                );
            }
        }
    }

    #[test]
    fn if_none_match_is_304_without_a_body() {
        let etag = header(&get("/shop", &[]), "etag");
        let r = get("/shop", &[("if-none-match", &format!("\"x\", {etag}"))]);
        assert_eq!(*r.status(), 304);
        assert!(r.body().is_empty());
        assert_eq!(header(&r, "etag"), etag);
        assert_eq!(
            *get("/shop", &[("if-none-match", "\"other\"")]).status(),
            200
        );
    }

    #[test]
    fn unknown_paths_are_404_problems_and_writes_405() {
        for path in [
            "/console/nope.js",
            "/shop/_/abc",
            "/elsewhere",
            "/console/_/x/nope.css",
        ] {
            let r = get(path, &[]);
            assert_eq!(*r.status(), 404, "{path}");
            assert_eq!(header(&r, "content-type"), "application/problem+json");
        }
        let r = serve(
            &Request::builder()
                .method(Method::Post)
                .uri("/console")
                .build(),
        );
        assert_eq!(*r.status(), 405);
        assert_eq!(header(&r, "allow"), "GET, HEAD");
        let r = serve(
            &Request::builder()
                .method(Method::Head)
                .uri("/console")
                .build(),
        );
        assert_eq!(*r.status(), 200);
        assert!(r.body().is_empty());
    }
}
