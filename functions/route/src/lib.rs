//! route: routes `order.reserved` events to fulfilment locations.
//!
//! Not implemented yet: every message is refused (the handler returns an error), so the queue
//! retries it and then dead-letters it where an operator sees it. Nothing is acknowledged as done.

// The spin-sdk export macros expand to the FFI glue (export_name, unsafe) of the component
// ABI; nothing else in this crate is unsafe.
#![allow(unsafe_code)]

use spin_sdk::redis_component;

#[redis_component]
fn on_message(message: bytes::Bytes) -> anyhow::Result<()> {
    anyhow::bail!(
        "route is not implemented yet; refusing message of {} bytes",
        message.len()
    )
}
