//! The Spin HTTP entry point: the host's stores and Redis as an [`oms_edge::SpinEnv`], and
//! the component's router.

// The spin-sdk export macro expands to the FFI glue (export_name, unsafe) of the component
// ABI; nothing else in this crate is unsafe.
#![allow(unsafe_code)]

use std::rc::Rc;

use oms_edge::SpinEnv;
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    match SpinEnv::open() {
        Ok(env) => crate::routes::router(Rc::new(env)).handle(req),
        Err(e) => e.response(),
    }
}
