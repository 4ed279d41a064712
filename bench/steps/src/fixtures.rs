//! The fixed input of each step: one storefront order of three lines (two SKUs discounted,
//! express delivery to a geocoded address), a catalogue of four SKUs, five locations of every
//! kind with stock spread over them, a ledger with an earlier partial refund, and an
//! `order.routed` event with a subscriber's signing secret.
//!
//! Reserve, route and refund take the order as the validate step outputs it (what the
//! functions read back from key-value).

use serde_json::{json, Value};

use crate::{run, Step};

const ORDER_REQUEST: &str = include_str!("../fixtures/order_request.json");
const CATALOG: &str = include_str!("../fixtures/catalog.json");
const NETWORK: &str = include_str!("../fixtures/network.json");
const REFUND: &str = include_str!("../fixtures/refund.json");
const NOTIFY: &str = include_str!("../fixtures/notify.json");

/// The id the order is given (the validate function draws a fresh one).
pub(crate) const ORDER_ID: &str = "0196a1b2-7c3d-7e4f-8a5b-000000000001";
/// When the order is accepted (the validate function reads the clock).
const PLACED_AT: &str = "2025-06-01T12:00:00Z";
/// When the order is reserved.
const RESERVED_AT: &str = "2025-06-01T12:00:01Z";
/// How long holds of unpaid orders last (the reserve function's variable).
const RESERVATION_TTL_MINUTES: u32 = 30;

/// The fixed input document of `step`, as JSON bytes.
///
/// # Panics
/// Only if the fixtures compiled into this crate were broken; its tests run every step on them.
pub fn input(step: Step) -> Vec<u8> {
    let doc = match step {
        Step::Validate => json!({
            "order_id": ORDER_ID,
            "placed_at": PLACED_AT,
            "request": fixture(ORDER_REQUEST),
            "catalog": fixture(CATALOG),
        }),
        Step::Reserve => {
            let network = fixture(NETWORK);
            json!({
                "order": stored_order(),
                "locations": network["locations"],
                "inventory": network["inventory"],
                "now": RESERVED_AT,
                "ttl_minutes": RESERVATION_TTL_MINUTES,
            })
        }
        Step::Route => {
            let network = fixture(NETWORK);
            json!({
                "order": stored_order(),
                "locations": network["locations"],
                "inventory": network["inventory"],
                "policy": {"split_limit": 3, "cost_per_km": "0.01"},
            })
        }
        Step::Refund => {
            let refund = fixture(REFUND);
            json!({
                "order": stored_order(),
                "ledger": refund["ledger"],
                "items": refund["items"],
            })
        }
        Step::Notify => fixture(NOTIFY),
    };
    doc.to_string().into_bytes()
}

fn fixture(text: &str) -> Value {
    serde_json::from_str(text).expect("the fixtures are JSON")
}

/// The fixture order as the validate step outputs it.
fn stored_order() -> Value {
    let order = run(Step::Validate, &input(Step::Validate)).expect("the fixture order is valid");
    serde_json::from_slice(&order).expect("validate outputs JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_accepts_its_fixed_input() {
        for step in Step::ALL {
            let output = run(step, &input(step));
            assert!(output.is_ok(), "{step}: {output:?}");
        }
    }
}
