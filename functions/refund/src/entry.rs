//! The Spin HTTP entry point: wires the host's store and Redis into the handlers.

// The spin-sdk export macro expands to the FFI glue (export_name, unsafe) of the component
// ABI; nothing else in this crate is unsafe.
#![allow(unsafe_code)]

use std::cell::OnceCell;

use oms_edge::{Bus, FunctionError, SpinBus, SpinKv};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

use crate::context::Ctx;

/// Connects to Redis on the first publish, so reads never depend on the broker.
#[derive(Default)]
struct LazyBus(OnceCell<Result<SpinBus, String>>);

impl Bus for LazyBus {
    fn publish(&self, channel: &str, payload: &[u8]) -> Result<(), String> {
        match self.0.get_or_init(SpinBus::open) {
            Ok(bus) => bus.publish(channel, payload),
            Err(e) => Err(e.clone()),
        }
    }
}

#[http_component]
fn handle(req: Request) -> Response {
    let kv = match SpinKv::open_default() {
        Ok(kv) => kv,
        Err(e) => return FunctionError::from(e).response(),
    };
    let bus = LazyBus::default();
    let ctx = Ctx {
        kv: &kv,
        bus: &bus,
        clock: &oms_edge::now,
        ids: &oms_edge::new_id,
    };
    crate::routes::handle(&ctx, &req)
}
