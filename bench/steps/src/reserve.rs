//! reserve: the order's units held against stock levels — per SKU, at the shipping locations
//! (or the pickup store) in priority order, each taking what it has available — then all held
//! at once with [`Reservation::hold`]; an order the network cannot cover is rejected with its
//! shortfalls. `functions/reserve` does the same over key-value with one compare-and-swap per
//! stock document. Outputs the outcome and the stock levels after it.

use chrono::{DateTime, TimeDelta, Utc};
use oms_domain::{Inventory, Location, Order, PaymentStatus, Reservation, ReservedLine, Shortfall};
use serde::{Deserialize, Serialize};

use crate::Error;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    /// The order as stored by validate.
    order: Order,
    /// Every location.
    locations: Vec<Location>,
    /// Stock levels per SKU and location.
    inventory: Inventory,
    /// When the reservation is made.
    now: DateTime<Utc>,
    /// How long holds of an order whose payment is only authorized last.
    ttl_minutes: u32,
}

#[derive(Debug, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
enum Outcome {
    /// Every unit is held.
    Reserved {
        reservation: Reservation,
        inventory: Inventory,
    },
    /// Some SKU is short: nothing is held.
    Rejected { shortfalls: Vec<Shortfall> },
}

/// Reserves the order in `input`; the outcome as JSON.
pub(crate) fn run(input: &[u8]) -> Result<Vec<u8>, Error> {
    let input: Input = serde_json::from_slice(input)?;
    Ok(serde_json::to_vec(&reserve(&input)?)?)
}

fn reserve(input: &Input) -> Result<Outcome, oms_domain::Error> {
    let order = &input.order;
    let candidates = candidates(order, &input.locations);
    let mut lines = Vec::new();
    let mut shortfalls = Vec::new();
    for (sku, wanted) in order.units_by_sku() {
        let mut need = wanted;
        for location in &candidates {
            let take = need.min(input.inventory.available(&sku, location.id()));
            if take > 0 {
                lines.push(ReservedLine {
                    sku: sku.clone(),
                    location: location.id().clone(),
                    units: take,
                });
                need -= take;
            }
        }
        if need > 0 {
            shortfalls.push(Shortfall {
                sku,
                requested: wanted,
                available: wanted - need,
            });
        }
    }
    if !shortfalls.is_empty() {
        return Ok(Outcome::Rejected { shortfalls });
    }
    let expires = (order.payment().status() == PaymentStatus::Authorized)
        .then(|| input.now + TimeDelta::minutes(i64::from(input.ttl_minutes)));
    let reservation = Reservation::new(order.id(), lines, expires)?;
    let inventory = reservation.hold(&input.inventory)?;
    Ok(Outcome::Reserved {
        reservation,
        inventory,
    })
}

/// Where the order may be served from, best first: its pickup store, or every location that
/// ships, by (priority, id).
fn candidates<'a>(order: &Order, locations: &'a [Location]) -> Vec<&'a Location> {
    let pickup = order.shipping().pickup_location();
    let mut candidates: Vec<&Location> = locations
        .iter()
        .filter(|l| match pickup {
            Some(store) => l.id() == store,
            None => l.ships(),
        })
        .collect();
    candidates.sort_by(|a, b| (a.priority(), a.id()).cmp(&(b.priority(), b.id())));
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{input, Step};
    use oms_domain::{LocationId, Sku};
    use serde_json::{json, Value};

    fn parse(doc: &[u8]) -> Input {
        serde_json::from_slice(doc).unwrap()
    }

    fn line(sku: &str, location: &str, units: u32) -> ReservedLine {
        ReservedLine {
            sku: Sku::parse(sku).unwrap(),
            location: LocationId::parse(location).unwrap(),
            units,
        }
    }

    #[test]
    fn holds_each_sku_at_the_first_locations_that_have_it() {
        let input = parse(&input(Step::Reserve));
        let Outcome::Reserved {
            reservation,
            inventory,
        } = reserve(&input).unwrap()
        else {
            panic!("not reserved")
        };
        assert_eq!(
            reservation.lines(),
            [
                line("CAP-RED", "wh-oakland", 1),
                line("CAP-RED", "wh-reno", 2),
                line("MUG-WHT", "wh-reno", 1),
                line("TSHIRT-BLK-M", "wh-oakland", 2),
            ]
        );
        assert_eq!(reservation.expires_at(), None, "the payment is captured");
        let sku = Sku::parse("TSHIRT-BLK-M").unwrap();
        let oakland = LocationId::parse("wh-oakland").unwrap();
        assert_eq!(inventory.level(&sku, &oakland).reserved(), 4);
        assert_eq!(inventory.available(&sku, &oakland), 3);
    }

    #[test]
    fn an_order_the_network_cannot_cover_holds_nothing() {
        let mut doc: Value = serde_json::from_slice(&input(Step::Reserve)).unwrap();
        let entries = doc["inventory"].as_array_mut().unwrap();
        entries.retain(|e| e["sku"] != "CAP-RED" || e["location"] == "wh-reno");
        let outcome: Value =
            serde_json::from_slice(&run(doc.to_string().as_bytes()).unwrap()).unwrap();
        assert_eq!(
            outcome,
            json!({"status": "rejected", "shortfalls": [{"sku": "CAP-RED", "requested": 3, "available": 2}]})
        );
    }
}
