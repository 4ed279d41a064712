//! query: the read side, edge-cached. Every read answers with a strong `ETag`
//! (`If-None-Match` → 304 without a body) and says who may keep it, for how long and under
//! which tags ([`caching`]): availability and the API description are public, kept by shared
//! caches until a write purges their tags (`oms_edge::purge`); an order and its timeline are
//! private, kept only per credential by `oms up`. Errors are never kept.
//!
//! - `GET /v1/orders/{id}`: the [`OrderView`] (status dimensions, lines, totals, reservation,
//!   plan, shipments, refunds, returns)
//! - `GET /v1/orders/{id}/events`: the order's timeline
//! - `GET /v1/availability/{sku}`: stock per location and available-to-promise
//!   ([`availability`])
//! - `GET /v1/openapi.json`: the API description (OpenAPI 3.1)
//!
//! Reads only: any other method is a 405 problem, any other path a 404 problem.
//!
//! An order and its timeline carry the customer's personal data: they are read by staff or
//! by the order's customer (its access token), checked before the order is read; without a
//! credential 401, with another order's token or another role 403. Availability and the API
//! description are public.

// The spin-sdk export macros expand to the FFI glue (export_name, unsafe) of the component
// ABI; nothing else in this crate is unsafe.
#![allow(unsafe_code)]

pub mod availability;
pub mod caching;
pub mod order_view;

use std::rc::Rc;

use oms_domain::{EventEnvelope, OrderId};
use oms_edge::{caller, keys, read_response, FunctionError, Kv, OrderRecord, Problem, SpinKv};
use serde::Serialize;
use serde_json::Value;
use spin_sdk::http::{Method, Params, Request, Response, Router};
use spin_sdk::http_component;

pub use caching::Caching;
pub use order_view::OrderView;

/// The OpenAPI document, kept beside this crate.
const OPENAPI: &str = include_str!("../openapi.json");

#[http_component]
fn handle(req: Request) -> Response {
    match SpinKv::open_default() {
        Ok(kv) => router(Rc::new(kv)).handle(req),
        Err(e) => FunctionError::from(e).response(),
    }
}

/// The read routes over a store (full paths, as `spin.toml` routes them here).
pub fn router<K: Kv + 'static>(kv: Rc<K>) -> Router {
    let mut r = Router::new();
    read(&mut r, &kv, "/v1/openapi.json", |_, _, _| {
        Ok((serde_json::from_str::<Value>(OPENAPI)?, Caching::openapi()))
    });
    read(&mut r, &kv, "/v1/orders/:id", |kv, req, p| {
        let record = load(kv, req, p)?;
        let caching = Caching::order(&record.order().id().to_string());
        Ok((serde_json::to_value(OrderView::of(&record))?, caching))
    });
    read(&mut r, &kv, "/v1/orders/:id/events", |kv, req, p| {
        let record = load(kv, req, p)?;
        let timeline = Timeline {
            order_id: record.order().id(),
            events: record.events().to_vec(),
        };
        Ok((timeline, Caching::order(&record.order().id().to_string())))
    });
    read(&mut r, &kv, "/v1/availability/:sku", |kv, _, p| {
        let view = availability::of(kv, p.get("sku").unwrap_or_default())?;
        let caching = Caching::availability(view.sku());
        Ok((view, caching))
    });
    r.any("/*", |req: Request, _: Params| {
        if matches!(req.method(), Method::Get | Method::Head) {
            Problem::not_found("route", req.path()).response()
        } else {
            Problem::method_not_allowed("GET, HEAD").response()
        }
    });
    r
}

/// Registers a cacheable read (GET and HEAD) whose body and caching `view` builds.
fn read<K: Kv + 'static, T: Serialize>(
    r: &mut Router,
    kv: &Rc<K>,
    path: &str,
    view: impl Fn(&K, &Request, &Params) -> Result<(T, Caching), FunctionError> + Copy + 'static,
) {
    for method in [Method::Get, Method::Head] {
        let kv = Rc::clone(kv);
        r.add(
            path,
            method,
            move |req: Request, params: Params| match view(&kv, &req, &params) {
                Ok((body, caching)) => caching.apply(read_response(&req, &body)),
                Err(e) => e.response(),
            },
        );
    }
}

/// The `:id` order, for staff or its customer.
///
/// # Errors
/// 401 without a credential, 403 for another role or another order's token (both before the
/// order is read); 400 naming `id` when it is not an order id; 404 when there is no such
/// order; a store error.
fn load(kv: &impl Kv, req: &Request, params: &Params) -> Result<OrderRecord, FunctionError> {
    let raw = params.get("id").unwrap_or_default();
    let parsed = OrderId::parse(raw);
    let actor = caller(req, kv, parsed.as_ref().ok().copied())?;
    match parsed {
        Ok(id) => actor.require_staff_or_customer(id)?,
        Err(_) => actor.require_staff()?,
    }
    let id = parsed.map_err(|e| {
        Problem::field(
            400,
            "malformed",
            "Malformed request",
            "id",
            "invalid_format",
            e.to_string(),
        )
    })?;
    kv.get_json(&keys::order(&id.to_string()))?
        .ok_or_else(|| Problem::not_found("order", raw).into())
}

/// `GET /v1/orders/{id}/events`: the order's timeline, oldest first.
#[derive(Serialize)]
struct Timeline {
    order_id: OrderId,
    events: Vec<EventEnvelope>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use oms_domain::{Order, StockLevel};
    use oms_edge::api_keys::{self, KeyRole};
    use oms_edge::{create, order_token, Env, MemEnv, MemKv, ShipmentRecord, StockDoc};
    use serde_json::json;
    use uuid::Uuid;

    const ORDER: u128 = 7;

    /// A store holding one validated order (created through the step runner, so it carries
    /// the runner's bookkeeping) and stock of `SKU-1` at one warehouse.
    fn store() -> Rc<MemKv> {
        let env = MemEnv::new();
        // A golden order document of the domain crate's intake tests.
        let body: Value = serde_json::from_str(include_str!(
            "../../../shared/tests/fixtures/valid/standard_usd.json"
        ))
        .unwrap();
        let order = Order::from_request(&body, OrderId::new(Uuid::from_u128(ORDER)), env.now())
            .expect("a valid order");
        let record = OrderRecord::accept(order, Uuid::from_u128(100), env.now()).unwrap();
        create(&env, record).unwrap();
        env.kv
            .set_json(
                keys::LOCATIONS,
                &json!([{"id": "wh-1", "kind": "warehouse", "coordinates": {"lat": 0, "lon": 0},
                    "cost_per_shipment": "0", "cost_per_unit": "0", "ships": true, "pickup": false,
                    "priority": 0}]),
            )
            .unwrap();
        let doc = StockDoc {
            level: StockLevel::new(10, 3, 2).unwrap(),
            ..StockDoc::default()
        };
        env.kv
            .set_json(&keys::stock("SKU-1", "wh-1"), &doc)
            .unwrap();
        Rc::new(env.kv)
    }

    /// A request as staff (a staff API key made in the store).
    fn get(kv: &Rc<MemKv>, method: Method, path: &str, etag: Option<&str>) -> Response {
        let token = key(kv, KeyRole::Staff, None);
        get_as(kv, method, path, etag, Some(&token))
    }

    fn get_as(
        kv: &Rc<MemKv>,
        method: Method,
        path: &str,
        etag: Option<&str>,
        token: Option<&str>,
    ) -> Response {
        let mut b = Request::builder();
        b.method(method).uri(path);
        if let Some(etag) = etag {
            b.header("if-none-match", etag);
        }
        if let Some(token) = token {
            b.header("authorization", format!("Bearer {token}"));
        }
        router(Rc::clone(kv)).handle(b.build())
    }

    fn key(kv: &Rc<MemKv>, role: KeyRole, location: Option<&str>) -> String {
        let made = api_keys::create(
            &**kv,
            role,
            location.map(str::to_string),
            "test".into(),
            "staff:root".into(),
            chrono::Utc::now(),
        );
        made.unwrap().1
    }

    #[test]
    fn an_order_is_read_by_staff_or_its_customer_only() {
        let kv = store();
        let own = order_token::issue(&*kv, OrderId::new(Uuid::from_u128(ORDER))).unwrap();
        let other = order_token::issue(&*kv, OrderId::new(Uuid::from_u128(8))).unwrap();
        let dock = key(&kv, KeyRole::Fulfilment, Some("wh-1"));
        for path in [order_path(), format!("{}/events", order_path())] {
            let status = |token: Option<&str>| {
                let r = get_as(&kv, Method::Get, &path, None, token);
                let body = String::from_utf8_lossy(r.body()).to_string();
                assert!(
                    *r.status() == 200 || !body.contains("example.com"),
                    "{path}: a refusal shows no personal data: {body}"
                );
                *r.status()
            };
            assert_eq!(status(None), 401, "{path}: no credential");
            assert_eq!(status(Some("not-a-token")), 401, "{path}: unknown token");
            assert_eq!(status(Some(&other)), 403, "{path}: another order's token");
            assert_eq!(status(Some(&dock)), 403, "{path}: a fulfilment key");
            assert_eq!(status(Some(&own)), 200, "{path}: the order's customer");
        }
        let unauthenticated = get_as(&kv, Method::Get, &order_path(), None, None);
        assert_eq!(
            unauthenticated
                .header("www-authenticate")
                .and_then(|v| v.as_str()),
            Some("Bearer")
        );
        // A customer token names its order: it opens no other path, not even a malformed one.
        let bad = get_as(&kv, Method::Get, "/v1/orders/nope", None, Some(&own));
        assert_eq!(*bad.status(), 403);
        // Availability and the API description stay public.
        for public in ["/v1/availability/SKU-1", "/v1/openapi.json"] {
            assert_eq!(*get_as(&kv, Method::Get, public, None, None).status(), 200);
        }
    }

    fn json_of(r: &Response) -> Value {
        serde_json::from_slice(r.body()).unwrap_or(Value::Null)
    }

    fn order_path() -> String {
        format!("/v1/orders/{}", Uuid::from_u128(ORDER))
    }

    #[test]
    fn the_order_view_shows_the_order_but_not_the_runners_bookkeeping() {
        let kv = store();
        let stored: Value = kv
            .get_json(&keys::order(&Uuid::from_u128(ORDER).to_string()))
            .unwrap()
            .unwrap();
        assert!(
            stored.get("version").is_some() && stored.get("marker").is_some(),
            "{stored}"
        );
        let r = get(&kv, Method::Get, &order_path(), None);
        assert_eq!(*r.status(), 200);
        let view = json_of(&r);
        assert_eq!(view["id"], Uuid::from_u128(ORDER).to_string());
        assert_eq!(
            (
                &view["status"],
                &view["fulfillment_status"],
                &view["payment_status"]
            ),
            (&json!("validated"), &json!("unfulfilled"), &json!("paid"))
        );
        assert_eq!(view["lines"][0]["sku"], "SKU-1");
        assert_eq!(view["links"]["events"], format!("{}/events", order_path()));
        for internal in ["outbox", "version", "marker", "events", "ledger", "order"] {
            assert!(
                view.get(internal).is_none(),
                "{internal} is not part of the view"
            );
        }
        let etag = r
            .header("etag")
            .and_then(|v| v.as_str())
            .unwrap()
            .to_string();
        assert_eq!(
            *get(&kv, Method::Get, &order_path(), Some(&etag)).status(),
            304
        );
        assert_eq!(*get(&kv, Method::Head, &order_path(), None).status(), 200);
    }

    #[test]
    fn the_timeline_lists_the_orders_events() {
        let kv = store();
        let r = get(&kv, Method::Get, &format!("{}/events", order_path()), None);
        let body = json_of(&r);
        assert_eq!(*r.status(), 200);
        assert_eq!(body["order_id"], Uuid::from_u128(ORDER).to_string());
        let types: Vec<&str> = body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["order.validated"]);
    }

    #[test]
    fn availability_sums_the_locations_stock() {
        let kv = store();
        let r = get(&kv, Method::Get, "/v1/availability/SKU-1", None);
        assert_eq!(
            json_of(&r),
            json!({"sku": "SKU-1", "on_hand": 10, "reserved": 3, "allocated": 2, "available": 5,
                "locations": [{"location": "wh-1", "kind": "warehouse", "on_hand": 10,
                    "reserved": 3, "allocated": 2, "available": 5, "pickup": false}]})
        );
        let unknown = json_of(&get(&kv, Method::Get, "/v1/availability/NOPE-1", None));
        assert_eq!(
            (unknown["available"].as_u64(), unknown["locations"].clone()),
            (Some(0), json!([]))
        );
    }

    #[test]
    fn bad_ids_unknown_orders_paths_and_writes_are_problems() {
        let kv = store();
        let bad = get(&kv, Method::Get, "/v1/orders/not-a-uuid", None);
        assert_eq!(
            (
                *bad.status(),
                json_of(&bad)["invalid-params"][0]["name"].as_str()
            ),
            (400, Some("id"))
        );
        let missing = format!("/v1/orders/{}", Uuid::from_u128(99));
        assert_eq!(*get(&kv, Method::Get, &missing, None).status(), 404);
        assert_eq!(*get(&kv, Method::Get, "/v1/nothing", None).status(), 404);
        let write = get(&kv, Method::Post, &order_path(), None);
        assert_eq!(*write.status(), 405);
        assert_eq!(
            write.header("allow").and_then(|v| v.as_str()),
            Some("GET, HEAD")
        );
        assert_eq!(
            write.header("content-type").and_then(|v| v.as_str()),
            Some("application/problem+json")
        );
        let doc = get(&kv, Method::Get, "/v1/openapi.json", None);
        assert_eq!(json_of(&doc)["openapi"], "3.1.0");
    }

    fn header(r: &Response, name: &str) -> Option<String> {
        r.header(name).and_then(|v| v.as_str()).map(str::to_string)
    }

    /// Every header a cache reads, by name (`None`: absent).
    fn cache_headers(r: &Response) -> Vec<(&'static str, Option<String>)> {
        [
            "cache-control",
            "cdn-cache-control",
            "surrogate-control",
            "surrogate-key",
            "cache-tag",
            "edge-cache-tag",
            "vary",
            "oms-cache-control",
        ]
        .into_iter()
        .map(|n| (n, header(r, n)))
        .collect()
    }

    #[test]
    fn public_reads_are_kept_by_shared_caches_under_their_tags() {
        let kv = store();
        let shared = Some(caching::SHARED.to_string());
        for (path, tags) in [
            (
                "/v1/availability/SKU-1",
                ["sku-SKU-1", "availability"].as_slice(),
            ),
            ("/v1/openapi.json", ["openapi"].as_slice()),
        ] {
            let r = get_as(&kv, Method::Get, path, None, None);
            let etag = header(&r, "etag").expect("a strong ETag");
            assert!(etag.starts_with('"'), "{path}: strong, not W/: {etag}");
            let expected = vec![
                ("cache-control", Some("public, no-cache".to_string())),
                ("cdn-cache-control", shared.clone()),
                ("surrogate-control", shared.clone()),
                ("surrogate-key", Some(tags.join(" "))),
                ("cache-tag", Some(tags.join(","))),
                ("edge-cache-tag", Some(tags.join(","))),
                ("vary", None),
                ("oms-cache-control", None),
            ];
            assert_eq!(cache_headers(&r), expected, "{path}");
            // The 304 carries the same instructions (RFC 9110 §15.4.5), and HEAD too.
            let not_modified = get_as(&kv, Method::Get, path, Some(&etag), None);
            assert_eq!(*not_modified.status(), 304);
            assert!(not_modified.body().is_empty());
            assert_eq!(cache_headers(&not_modified), expected, "{path}: 304");
            assert_eq!(header(&not_modified, "etag"), Some(etag));
            let head = get_as(&kv, Method::Head, path, None, None);
            assert_eq!(cache_headers(&head), expected, "{path}: HEAD");
        }
    }

    #[test]
    fn private_reads_are_kept_per_credential_by_the_host_only() {
        let kv = store();
        let id = Uuid::from_u128(ORDER);
        let own = order_token::issue(&*kv, OrderId::new(id)).unwrap();
        for path in [order_path(), format!("{}/events", order_path())] {
            for r in [
                get(&kv, Method::Get, &path, None),
                get_as(&kv, Method::Get, &path, None, Some(&own)),
            ] {
                assert_eq!(*r.status(), 200, "{path}");
                let expected = vec![
                    ("cache-control", Some("private, no-cache".to_string())),
                    ("cdn-cache-control", Some("no-store".to_string())),
                    ("surrogate-control", Some("no-store".to_string())),
                    ("surrogate-key", Some(format!("order-{id} credentials"))),
                    ("cache-tag", None),
                    ("edge-cache-tag", None),
                    ("vary", Some("Authorization".to_string())),
                    (
                        "oms-cache-control",
                        Some("private, max-age=3600, stale-if-error=300".to_string()),
                    ),
                ];
                assert_eq!(cache_headers(&r), expected, "{path}");
                let etag = header(&r, "etag").unwrap();
                let again = get_as(&kv, Method::Get, &path, Some(&etag), Some(&own));
                assert_eq!(*again.status(), 304, "{path}");
                assert_eq!(cache_headers(&again), expected, "{path}: 304");
            }
        }
    }

    #[test]
    fn errors_are_never_kept() {
        let kv = store();
        let missing = format!("/v1/orders/{}", Uuid::from_u128(99));
        for r in [
            get_as(&kv, Method::Get, &order_path(), None, None), // 401
            get_as(&kv, Method::Get, &order_path(), None, Some("nope")), // 401
            get(&kv, Method::Get, "/v1/orders/not-a-uuid", None), // 400
            get(&kv, Method::Get, &missing, None),               // 404
            get(&kv, Method::Get, "/v1/availability/a%20b", None), // 400
            get(&kv, Method::Get, "/v1/nothing", None),          // 404
            get(&kv, Method::Post, "/v1/availability/SKU-1", None), // 405
        ] {
            assert!(*r.status() >= 400);
            assert_eq!(
                header(&r, "cache-control").as_deref(),
                Some("no-store"),
                "{}",
                r.status()
            );
            for tagged in ["surrogate-key", "cache-tag", "edge-cache-tag"] {
                assert_eq!(header(&r, tagged), None, "{}: {tagged}", r.status());
            }
        }
    }

    #[test]
    fn the_fulfilment_dimension_comes_from_the_shipments_not_the_status() {
        let kv = store();
        let key = keys::order(&Uuid::from_u128(ORDER).to_string());
        let mut record: OrderRecord = kv.get_json(&key).unwrap().unwrap();
        let shipment = |n: u32, status| -> ShipmentRecord {
            serde_json::from_value(json!({
                "id": format!("{}-{n}", Uuid::from_u128(ORDER)), "location": "wh-1",
                "lines": [{"sku": "SKU-1", "units": 1}], "status": status,
            }))
            .unwrap()
        };
        *record.testkit_shipments_mut() = vec![shipment(1, "shipped"), shipment(2, "allocated")];
        kv.set_json(&key, &record).unwrap();
        let view = json_of(&get(&kv, Method::Get, &order_path(), None));
        assert_eq!(
            (
                &view["status"],
                &view["fulfillment_status"],
                &view["payment_status"]
            ),
            (
                &json!("validated"),
                &json!("partially_shipped"),
                &json!("paid")
            )
        );
        assert_eq!(view["shipments"][0]["status"], "shipped");
    }
}
