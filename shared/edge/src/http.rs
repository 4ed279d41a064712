//! HTTP helpers: JSON bodies and responses, conditional reads (ETag / 304), Spin headers.

use serde::Serialize;
use sha2::{Digest, Sha256};
use spin_sdk::http::{Request, Response};

use crate::problem::Problem;

/// A response ready to send or to store for idempotent replay.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: Vec<u8>,
}

/// A JSON response.
pub fn json_response<T: Serialize>(status: u16, value: &T) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(serde_json::to_vec(value).unwrap_or_default())
        .build()
}

/// A cacheable read: a strong `ETag` of the body, `304` when `If-None-Match` matches, and
/// `Cache-Control: no-cache` so caches (browsers, CDNs) may keep it but must revalidate —
/// order state changes at any time, and a 304 costs no body.
pub fn read_response<T: Serialize>(req: &Request, value: &T) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&body))[..32]);
    let matches = req
        .header("if-none-match")
        .and_then(|v| v.as_str())
        .is_some_and(|v| {
            v.split(',').any(|t| {
                let t = t.trim();
                t == "*" || t.trim_start_matches("W/") == etag
            })
        });
    let builder = |status| {
        let mut b = Response::builder();
        b.status(status)
            .header("etag", etag.as_str())
            .header("cache-control", "no-cache")
            .header("vary", "accept");
        b
    };
    if matches {
        builder(304).build()
    } else {
        builder(200)
            .header("content-type", "application/json")
            .body(body)
            .build()
    }
}

/// Parses the request body as JSON. A number with an integral value is read as that integer
/// however it is written (`2.0`, `1e3`): JSON does not tell them apart, and neither does
/// JSON Schema's `integer`, so every whole-number field takes them.
///
/// # Errors
/// A 400 problem when the body is empty or not JSON, naming the position.
pub fn json_body(req: &Request) -> Result<serde_json::Value, Problem> {
    oms_domain::storefront::parse_body(req.body()).map_err(Problem::from)
}

/// A `:name` route segment (Spin's `spin-path-match-<name>` header).
pub fn path_match(req: &Request, name: &str) -> Option<String> {
    req.header(&format!("spin-path-match-{name}"))
        .and_then(|v| v.as_str())
        .map(str::to_string)
}

/// A query-string parameter (no percent-decoding beyond `%2F`, `%3A`, `+`).
pub fn query_param(req: &Request, name: &str) -> Option<String> {
    req.query()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.replace("%2F", "/").replace("%3A", ":").replace('+', " "))
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use spin_sdk::http::{Method, Request};

    use super::json_body;

    fn parse(body: &str) -> serde_json::Value {
        let mut b = Request::builder();
        b.method(Method::Post)
            .uri("/")
            .body(body.as_bytes().to_vec());
        json_body(&b.build()).unwrap()
    }

    #[test]
    fn integral_numbers_are_integers_however_written() {
        let v = parse(r#"{"a": 2.0, "b": [1e3, -4.0, 0.5], "c": {"d": 18446744073709551615.0}}"#);
        assert_eq!(
            v,
            json!({"a": 2, "b": [1000, -4, 0.5], "c": {"d": 18446744073709551615.0}})
        );
        assert!(v["a"].is_u64() && v["b"][1].is_i64() && v["b"][2].is_f64());
        assert_eq!(parse("1e300"), json!(1e300));
    }
}
