//! route: on `order.reserved`, plans fulfilment (single location if possible, else the fewest
//! shipments within the split limit, then lowest cost; pickup orders only from their store)
//! and turns the reservation into per-location allocations by compare-and-swap. When an
//! allocation loses a race the order is re-planned on fresh stock; when no plan exists it is
//! backordered with the reason. Emits `order.routed`.
//!
//! Also takes fulfilment updates from warehouses and 3PLs over HTTP:
//! - `POST /v1/shipments/{id}/shipped` `{"carrier": "ups", "tracking": "1Z..."}`
//! - `POST /v1/shipments/{id}/delivered`

// The spin-sdk export macros expand to the FFI glue (export_name, unsafe) of the component
// ABI; nothing else in this crate is unsafe.
#![allow(unsafe_code)]

mod fulfilment;
mod routing;

use oms_domain::EventEnvelope;
use oms_edge::{new_id, now, SpinBus, SpinKv};
use spin_sdk::http::{Request, Response};
use spin_sdk::{http_component, redis_component};

#[redis_component]
fn on_message(message: bytes::Bytes) -> anyhow::Result<()> {
    let event: EventEnvelope = match serde_json::from_slice(&message) {
        Ok(e) => e,
        Err(e) => {
            // A message that can never parse would only be retried into the dead letters.
            eprintln!("route: dropping unreadable message: {e}");
            return Ok(());
        }
    };
    let kv = SpinKv::open_default()?;
    let bus = SpinBus::open().map_err(anyhow::Error::msg)?;
    routing::handle(&kv, &bus, &event, now(), new_id).map_err(|e| anyhow::anyhow!("{e:?}"))
}

#[http_component]
fn shipment_update(req: Request) -> Response {
    match fulfilment::handle(&req) {
        Ok(r) => r,
        Err(e) => e.response(),
    }
}
