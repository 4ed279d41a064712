//! admin: not implemented yet.
//!
//! Not implemented yet: every request gets an RFC 9457 problem document with status 501, so a
//! client can never mistake this stub for an accepted order.

// The spin-sdk export macros expand to the FFI glue (export_name, unsafe) of the component
// ABI; nothing else in this crate is unsafe.
#![allow(unsafe_code)]

use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    not_implemented(req.path())
}

fn not_implemented(path: &str) -> Response {
    let body = serde_json::json!({
        "type": "https://oms.dev/problems/not-implemented",
        "title": "Not implemented",
        "status": 501,
        "detail": "admin is not implemented yet",
        "instance": path,
    });
    Response::builder()
        .status(501)
        .header("content-type", "application/problem+json")
        .body(body.to_string())
        .build()
}
