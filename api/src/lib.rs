//! The OMS's HTTP contract: an OpenAPI 3.1 document generated from the code with `utoipa`.
//!
//! - Request and response bodies that are domain types (`oms-domain`, feature `openapi`) take
//!   their schema from `#[derive(ToSchema)]` on those types: orders, lines, totals, shipments,
//!   refunds, returns, reservations, plans, events, locations, policies.
//! - Bodies the functions build ad hoc (`json!`) or parse by hand from JSON are described by
//!   the schema structs of this crate, one module per component ([`validate`], [`query`],
//!   [`route`], [`refund`], [`notify`], [`admin`], [`reserve`], [`insights`]), each beside the
//!   `#[utoipa::path]` declarations of that component's routes. They must mirror what the
//!   function returns; schemathesis' response conformance checks them against the server.
//! - [`problem`]: the RFC 9457 problem document and the shared error responses.
//!
//! [`document`] assembles everything; `functions/query/openapi.json` is its output (served at
//! `GET /v1/openapi.json`), kept in step by this crate's test
//! (`UPDATE_OPENAPI=1 cargo test --release -p oms-api` rewrites it) or the `oms-openapi`
//! binary.

pub mod admin;
pub mod insights;
pub mod notify;
pub mod problem;
pub mod query;
pub mod refund;
pub mod reserve;
pub mod route;
pub mod validate;

use std::path::{Path, PathBuf};

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};

/// Where the query component reads the document from (relative to the workspace root).
pub const DOCUMENT_PATH: &str = "functions/query/openapi.json";

/// What every operation shares, said once in the document's description.
const DESCRIPTION: &str = "Order management at the edge.

Errors are RFC 9457 `application/problem+json` documents (schema `Problem`) naming the \
offending field in `invalid-params` (a JSON Pointer, a header or a path parameter). Any \
request may also be answered 413 (body larger than the host accepts), 500 (logged; generic \
body) or 504 (the function ran past its deadline; retry).

Undeclared methods: a method not listed for a path is answered 405 with an `Allow` header \
naming the methods the path takes (response `MethodNotAllowed`); an unknown path is a 404 \
problem.

Credentials (`Authorization: Bearer <token>`): `staff` (the bootstrap admin token or a \
staff API key `oms_sk_…`), `fulfilment` (an API key `oms_fk_…` bound to one location), \
`customer` (the per-order `access_token` returned in the 202 of `POST /v1/orders`). No or a \
bad credential is a 401 with `WWW-Authenticate: Bearer`; a valid credential of the wrong \
role, order or location is a 403. Both change nothing.

Reads answer with a strong `ETag` and `Cache-Control: no-cache`; `If-None-Match` gives a \
304 without a body; `HEAD` is answered like `GET` without the body. Events (webhooks) \
follow Standard Webhooks.";

/// The whole API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Edge OMS",
        version = "0.1.0",
        description = DESCRIPTION,
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    servers((url = "http://127.0.0.1:3000", description = "`oms up`")),
    components(
        schemas(problem::Problem, problem::InvalidParam),
        responses(
        problem::BadRequest,
        problem::Unauthorized,
        problem::Forbidden,
        problem::NotFound,
        problem::MethodNotAllowed,
        problem::Conflict,
        problem::Unprocessable,
        problem::Unavailable,
        problem::Gone,
        problem::NotModified,
        ),
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "orders", description = "Order intake: storefronts and marketplaces"),
        (name = "reads", description = "Cacheable reads (ETag / 304)"),
        (name = "fulfilment", description = "Shipment updates from warehouses and 3PLs"),
        (name = "holds", description = "Order holds (staff)"),
        (name = "after-sales", description = "Cancellations, refunds, returns"),
        (name = "webhooks", description = "Outbound webhook subscriptions (staff)"),
        (name = "admin", description = "Reference data, keys, aliases, the reconciler (staff)"),
        (name = "insights", description = "KPIs and order search, projections of the events (staff)"),
    ),
)]
pub struct ApiDoc;

/// The three bearer credentials.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        for (name, what) in [
            (
                "staff",
                "the bootstrap token (Spin variable `admin_token`, comma-separated for rotation) or a staff API key `oms_sk_<keyid>_<secret>`",
            ),
            (
                "fulfilment",
                "a fulfilment API key `oms_fk_<keyid>_<secret>`, bound to one location: only that location's shipments",
            ),
            (
                "customer",
                "the order's access token `oms_ot_…` (the `access_token` of its 202): that order only",
            ),
        ] {
            let scheme = HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(what))
                .build();
            components.add_security_scheme(name, SecurityScheme::Http(scheme));
        }
    }
}

/// The document.
pub fn document() -> Document {
    let mut doc = ApiDoc::openapi();
    for component in [
        validate::Api::openapi(),
        query::Api::openapi(),
        route::Api::openapi(),
        refund::Api::openapi(),
        notify::Api::openapi(),
        admin::Api::openapi(),
        reserve::Api::openapi(),
        insights::Api::openapi(),
    ] {
        doc.merge(component);
    }
    doc
}

/// The document as served: pretty JSON (keys in a stable order), ending in a newline.
///
/// # Panics
/// Never for the document built here (it is plain data).
pub fn to_json() -> String {
    let mut value = serde_json::to_value(document()).expect("the OpenAPI document serializes");
    camel_case_links(&mut value);
    unsigned_ranges(&mut value);
    optional_bodies(&mut value);
    let mut text = serde_json::to_string_pretty(&value).expect("JSON values serialize");
    text.push('\n');
    text
}

/// utoipa 5 writes a link's fields in snake case (`operation_id`); OpenAPI spells them
/// `operationId`, `operationRef`, `requestBody`.
fn camel_case_links(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::Object(links)) = map.get_mut("links") {
                for link in links.values_mut() {
                    if let serde_json::Value::Object(link) = link {
                        for (from, to) in [
                            ("operation_id", "operationId"),
                            ("operation_ref", "operationRef"),
                            ("request_body", "requestBody"),
                        ] {
                            if let Some(v) = link.remove(from) {
                                link.insert(to.to_string(), v);
                            }
                        }
                    }
                }
            }
            map.values_mut().for_each(camel_case_links);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(camel_case_links),
        _ => {}
    }
}

/// utoipa 5 writes `format: int32` (with `minimum: 0`) for a `u32`, and clients read int32 as
/// at most 2147483647 where the server takes up to 4294967295: an unsigned integer says its
/// real range instead (the format is dropped, the maximum kept when the field has its own).
fn unsigned_ranges(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            let unsigned = map.get("format").and_then(|f| f.as_str()) == Some("int32")
                && map
                    .get("minimum")
                    .and_then(serde_json::Value::as_f64)
                    .is_some_and(|m| m >= 0.0);
            if unsigned {
                map.remove("format");
                map.entry("maximum").or_insert(serde_json::json!(u32::MAX));
            }
            map.values_mut().for_each(unsigned_ranges);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(unsigned_ranges),
        _ => {}
    }
}

/// utoipa 5 writes an optional request body (`Option<T>`) as `oneOf: [null, T]`, which reads as
/// "the JSON value `null`"; an optional body is an absent one: `T`, with `required: false`.
fn optional_bodies(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    let bodies = paths
        .values_mut()
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut())
        .filter_map(|op| op.get_mut("requestBody"));
    for body in bodies {
        let Some(contents) = body.get_mut("content").and_then(|c| c.as_object_mut()) else {
            continue;
        };
        let mut optional = false;
        for content in contents.values_mut() {
            let Some(schema) = content.get_mut("schema") else {
                continue;
            };
            let branches = schema.get("oneOf").and_then(|o| o.as_array()).cloned();
            if let Some(branches) = branches.filter(|b| b.len() == 2) {
                let not_null: Vec<_> = branches
                    .into_iter()
                    .filter(|b| b.get("type").and_then(|t| t.as_str()) != Some("null"))
                    .collect();
                if let [only] = not_null.as_slice() {
                    *schema = only.clone();
                    optional = true;
                }
            }
        }
        if optional {
            body["required"] = serde_json::Value::Bool(false);
        }
    }
}

/// The workspace root (this crate is `api/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from(".."), Path::to_path_buf)
}
