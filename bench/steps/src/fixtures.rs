//! The fixed input of each step: one storefront order of three lines (two SKUs discounted,
//! express delivery to a geocoded address), a catalogue of four SKUs, five locations of every
//! kind with stock spread over them, and an `order.routed` event with a subscriber's signing
//! secret.
//!
//! Validate reads the catalogue and the customers' order-token secret (fixed here, so every
//! run answers the same access token). Each later step starts from the store the step before it
//! left (computed here, by the same step code): reserve from the validated order and the
//! network's locations and stock, route from the reservation, refund from the routed order
//! with every shipment handed to a carrier and an earlier partial refund (one cap).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use oms_domain::StockLevel;
use oms_edge::{keys, StockDoc};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::world::World;
use crate::{refund, reserve, route, validate, Step};

const ORDER_REQUEST: &str = include_str!("../fixtures/order_request.json");
const CATALOG: &str = include_str!("../fixtures/catalog.json");
const NETWORK: &str = include_str!("../fixtures/network.json");
const REFUND: &str = include_str!("../fixtures/refund.json");
const NOTIFY: &str = include_str!("../fixtures/notify.json");

/// The storefront's `Idempotency-Key` (the order id derives from it and the channel).
const IDEMPOTENCY_KEY: &str = "bench-order-0001";
/// When the order is accepted.
const PLACED_AT: &str = "2025-06-01T12:00:00Z";
/// When the order is reserved.
const RESERVED_AT: &str = "2025-06-01T12:00:01Z";
/// When the order is routed.
const ROUTED_AT: &str = "2025-06-01T12:00:02Z";
/// When the refund is requested.
const REFUNDED_AT: &str = "2025-06-03T09:00:00Z";
/// How long holds of unpaid orders last (the reserve function's variable).
const RESERVATION_TTL_MINUTES: u32 = 30;
/// The order whose holds and allocations make up the stock the network already has committed.
const OTHERS: &str = "00000000-0000-0000-0000-00000000beef";

/// The fixed input document of `step`, as JSON bytes.
///
/// # Panics
/// Only if the fixtures compiled into this crate were broken, or a step refused them; this
/// crate's tests run every step on them.
pub fn input(step: Step) -> Vec<u8> {
    let doc = match step {
        Step::Validate => serde_json::to_value(validate_input()),
        Step::Reserve => serde_json::to_value(reserve_input()),
        Step::Route => serde_json::to_value(route_input()),
        Step::Refund => refund_input(),
        Step::Notify => Ok(fixture(NOTIFY)),
    };
    doc.expect("the fixtures serialize")
        .to_string()
        .into_bytes()
}

fn fixture(text: &str) -> Value {
    serde_json::from_str(text).expect("the fixtures are JSON")
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("the fixture times are RFC 3339")
}

/// The catalogue as the admin API stores it (`catalog:{sku}`): all validate reads.
fn catalog() -> BTreeMap<String, Value> {
    match fixture(CATALOG) {
        Value::Object(prices) => prices
            .into_iter()
            .map(|(sku, prices)| (keys::catalog(&sku), prices))
            .collect(),
        _ => panic!("the catalogue fixture is an object"),
    }
}

/// The network's locations and stock documents as the admin API stores them (what other
/// orders hold and were allocated is held by one other order).
fn network() -> BTreeMap<String, Value> {
    #[derive(Deserialize)]
    struct Stock {
        sku: String,
        location: String,
        on_hand: u32,
        reserved: u32,
        allocated: u32,
    }
    let network = fixture(NETWORK);
    let mut store = BTreeMap::from([(keys::LOCATIONS.to_string(), network["locations"].clone())]);
    let stock: Vec<Stock> = serde_json::from_value(network["inventory"].clone()).expect("stock");
    for s in stock {
        let mut doc = StockDoc {
            level: StockLevel::new(s.on_hand, s.reserved, s.allocated).expect("a stock level"),
            ..StockDoc::default()
        };
        for (units, to) in [
            (s.reserved, &mut doc.holds),
            (s.allocated, &mut doc.allocations),
        ] {
            if units > 0 {
                to.insert(OTHERS.to_string(), units);
            }
        }
        let value = serde_json::to_value(doc).expect("a stock document");
        store.insert(keys::stock(&s.sku, &s.location), value);
    }
    store
}

fn validate_input() -> validate::Input {
    let mut store = catalog();
    // `oms_edge::order_token`'s secret, as the first storefront order of a store makes it.
    store.insert(
        "secret:order_token".into(),
        json!({"current": "5e".repeat(32), "previous": []}),
    );
    validate::Input {
        world: World {
            now: at(PLACED_AT),
            store,
        },
        idempotency_key: IDEMPOTENCY_KEY.into(),
        request: fixture(ORDER_REQUEST),
    }
}

/// The id of the fixture order (derived from its intent).
fn order_id(world: &World) -> String {
    let key = world
        .store
        .keys()
        .find_map(|k| k.strip_prefix("order:"))
        .expect("validate stored the order");
    key.to_string()
}

fn reserve_input() -> reserve::Input {
    let mut world = validate::after(&validate_input()).expect("the fixture order is valid");
    world.now = at(RESERVED_AT);
    world.store.extend(network());
    reserve::Input {
        order_id: order_id(&world),
        world,
        ttl_minutes: RESERVATION_TTL_MINUTES,
    }
}

fn route_input() -> route::Input {
    let mut world = reserve::after(&reserve_input()).expect("the fixture order is reserved");
    world.now = at(ROUTED_AT);
    route::Input {
        order_id: order_id(&world),
        world,
    }
}

fn refund_input() -> serde_json::Result<Value> {
    let routed = route::after(&route_input()).expect("the fixture order is routed");
    let id = order_id(&routed);
    let mut world = refund::ship_all(&routed, &id).expect("the shipments ship");
    world.now = at(REFUNDED_AT);
    let request = fixture(REFUND);
    let earlier = refund::Input {
        world,
        order_id: id.clone(),
        idempotency_key: "earlier-refund".into(),
        items: serde_json::from_value(request["earlier"].clone())?,
    };
    let world = refund::after(&earlier).expect("the earlier refund is booked");
    Ok(json!({
        "world": world,
        "order_id": id,
        "idempotency_key": "bench-refund",
        "items": request["items"],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run;

    #[test]
    fn every_step_accepts_its_fixed_input() {
        for step in Step::ALL {
            let output = run(step, &input(step));
            assert!(output.is_ok(), "{step}: {output:?}");
        }
    }
}
