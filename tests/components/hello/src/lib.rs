//! hello: the smallest HTTP component — any request gets `200 text/plain` "hello". It measures
//! what serving a request costs apart from the work a function does, and imports nothing beyond
//! `wasi:http` and the WASI interfaces every component gets, so the same component also runs
//! under `wasmtime serve` for comparison.

// The spin-sdk export macros expand to the FFI glue (export_name, unsafe) of the component
// ABI; nothing else in this crate is unsafe.
#![allow(unsafe_code)]

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(_req: Request) -> impl IntoResponse {
    Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body("hello")
        .build()
}
