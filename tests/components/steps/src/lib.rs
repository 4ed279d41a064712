//! steps: each order lifecycle step's core logic (`oms-bench-steps`) behind HTTP, so the host's
//! benchmarks can time a step as a component against the same code run natively.
//!
//! `POST /<step>` (validate, reserve, route, refund, notify) with the step's input document as
//! the body answers 200 with its output, or 422 with the reason the step refused the input.
//! `?n=K` runs the step K times in the one call and answers the last output, to time execution
//! apart from what a request costs.

// The spin-sdk export macros expand to the FFI glue (export_name, unsafe) of the component
// ABI; nothing else in this crate is unsafe.
#![allow(unsafe_code)]

use std::num::NonZeroU32;

use oms_bench_steps::{run_repeated, Step};
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    if *req.method() != Method::Post {
        return text(405, "use POST /<step>");
    }
    let Ok(step) = req.path().trim_start_matches('/').parse::<Step>() else {
        return text(
            404,
            "no such step (validate, reserve, route, refund, notify)",
        );
    };
    let Some(times) = times(req.query()) else {
        return text(400, "n must be a positive integer");
    };
    match run_repeated(step, req.body(), times) {
        Ok(output) => Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(output)
            .build(),
        Err(e) => text(422, &e.to_string()),
    }
}

/// How many runs the query asks for (`n=K`, default 1); `None` when `n` is not positive.
fn times(query: &str) -> Option<NonZeroU32> {
    match query.split('&').find_map(|pair| pair.strip_prefix("n=")) {
        Some(n) => n.parse().ok(),
        None => NonZeroU32::new(1),
    }
}

fn text(status: u16, body: &str) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(body.to_string())
        .build()
}
