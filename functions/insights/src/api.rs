//! The staff routes: `GET /v1/kpis`, `GET /v1/kpis/metrics`, `GET /v1/search/orders`.
//! Each checks the caller first (401 without a credential, 403 for another role) and reads
//! nothing before.

use std::rc::Rc;

use oms_domain::{ChannelId, OrderId, OrderStatus};
use oms_edge::{caller, json_response, FunctionError, Kv, Problem};
use spin_sdk::http::{Method, Params, Request, Response, Router};

use crate::kpi::{self, Kpis};
use crate::metrics;
use crate::search::{self, Cursor, Filter};

/// Results per page when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 20;
/// Most results per page.
pub const MAX_LIMIT: usize = 100;

/// The routes over a store.
pub fn router<K: Kv + 'static>(kv: Rc<K>) -> Router {
    let mut r = Router::new();
    route(&mut r, &kv, "/v1/kpis", |kv, _| {
        Ok(json_response(200, &Kpis::of(&kpi::totals(kv)?)))
    });
    route(&mut r, &kv, "/v1/kpis/metrics", |kv, _| {
        let text = metrics::text(&kpi::totals(kv)?).map_err(FunctionError::Internal)?;
        Ok(Response::builder()
            .status(200)
            .header("content-type", metrics::content_type())
            .header("cache-control", "no-store")
            .body(text)
            .build())
    });
    route(&mut r, &kv, "/v1/search/orders", |kv, req| {
        let (filter, limit, cursor) = parse_search(req)?;
        Ok(json_response(
            200,
            &search::search(kv, &filter, limit, cursor)?,
        ))
    });
    r.any("/*", |req: Request, _: Params| {
        if matches!(req.method(), Method::Get) {
            Problem::not_found("route", req.path()).response()
        } else {
            Problem::method_not_allowed("GET").response()
        }
    });
    r
}

fn route<K: Kv + 'static>(
    r: &mut Router,
    kv: &Rc<K>,
    path: &str,
    answer: impl Fn(&K, &Request) -> Result<Response, FunctionError> + 'static,
) {
    let kv = Rc::clone(kv);
    r.get(path, move |req: Request, _: Params| {
        let run = || {
            caller(&req, &*kv, None)?.require_staff()?;
            answer(&kv, &req)
        };
        run().unwrap_or_else(|e| e.response())
    });
}

fn invalid(field: &str, reason: &str) -> FunctionError {
    Problem::field(
        422,
        "validation",
        "Invalid request",
        field,
        "invalid_format",
        reason,
    )
    .into()
}

/// The search parameters (absent ones do not filter; an empty one is refused like any value
/// that does not parse).
fn parse_search(req: &Request) -> Result<(Filter, usize, Option<Cursor>), FunctionError> {
    let mut filter = Filter::default();
    if let Some(q) = param(req, "q") {
        // Only the hyphenated form the API writes (the schema's pattern), not every form
        // `Uuid` reads.
        if let Some(id) = Some(&q)
            .filter(|q| q.len() == 36)
            .and_then(|q| OrderId::parse(q).ok())
        {
            filter.id = Some(id);
        } else if q.contains('@') {
            filter.email = Some(q);
        } else {
            return Err(invalid("q", "expected an order id or an e-mail address"));
        }
    }
    if let Some(email) = param(req, "email") {
        if email.is_empty() {
            return Err(invalid("email", "an empty e-mail address"));
        }
        if filter
            .email
            .as_deref()
            .is_some_and(|q| !q.eq_ignore_ascii_case(&email))
        {
            // `q` names another address: nothing matches both.
            filter.id = Some(OrderId::new(uuid::Uuid::nil()));
        }
        filter.email = Some(email);
    }
    if let Some(status) = param(req, "status") {
        let parsed = serde_json::from_value::<OrderStatus>(serde_json::Value::String(status));
        filter.status = Some(parsed.map_err(|_| invalid("status", "not an order status"))?);
    }
    if let Some(channel) = param(req, "channel") {
        let parsed = ChannelId::parse(&channel).map_err(|e| invalid("channel", &e.to_string()))?;
        filter.channel = Some(parsed.as_str().to_string());
    }
    let limit = match param(req, "limit") {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| invalid("limit", "expected an integer from 1 to 100"))?,
    };
    let cursor = match param(req, "cursor") {
        None => None,
        Some(text) => Some(
            Cursor::parse(&text)
                .ok_or_else(|| invalid("cursor", "not a cursor this search returned"))?,
        ),
    };
    Ok((filter, limit, cursor))
}

/// A query parameter, percent-decoded (`+` as a space); `None` when absent.
fn param(req: &Request, name: &str) -> Option<String> {
    req.query()
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(k, _)| decode(k) == name)
        .map(|(_, v)| decode(v))
}

fn decode(text: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| Some((hex(*bytes.get(i + 1)?)?, hex(*bytes.get(i + 2)?)?)))
            .flatten();
        match (bytes[i], escaped) {
            (_, Some((hi, lo))) => {
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (b, None) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
