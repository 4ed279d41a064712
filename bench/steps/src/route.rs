//! route: the fulfilment plan for the order over every location with [`plan`] — the fewest
//! shipments within the split limit, then the lowest cost of shipping, units and distance —
//! as `functions/route` computes it before allocating the stock. Outputs the plan.

use oms_domain::{plan, Inventory, Location, Order, RoutingPolicy, RoutingRequest};
use rust_decimal::Decimal;
use serde::Deserialize;

use crate::Error;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    /// The order as stored by validate.
    order: Order,
    /// Every location.
    locations: Vec<Location>,
    /// Stock the order may use, per SKU and location.
    inventory: Inventory,
    /// The routing policy (the function reads it from key-value).
    policy: Policy,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Policy {
    split_limit: usize,
    cost_per_km: Decimal,
}

/// Plans the order in `input`; the plan as JSON.
pub(crate) fn run(input: &[u8]) -> Result<Vec<u8>, Error> {
    let input: Input = serde_json::from_slice(input)?;
    let policy = RoutingPolicy::new(input.policy.split_limit, input.policy.cost_per_km)
        .map_err(oms_domain::Error::from)?;
    let planned = plan(
        &RoutingRequest::for_order(&input.order),
        &input.locations,
        &input.inventory,
        &policy,
    )
    .map_err(oms_domain::Error::from)?;
    Ok(serde_json::to_vec(&planned)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{input, Step};
    use oms_domain::FulfilmentPlan;
    use serde_json::Value;

    fn plan_of(doc: &Value) -> Result<FulfilmentPlan, Error> {
        run(doc.to_string().as_bytes()).map(|out| serde_json::from_slice(&out).unwrap())
    }

    #[test]
    fn no_location_has_everything_so_the_order_ships_in_two_parcels() {
        let doc: Value = serde_json::from_slice(&input(Step::Route)).unwrap();
        let planned = plan_of(&doc).unwrap();
        let summary: Vec<(String, Vec<(String, u32)>)> = planned
            .shipments
            .iter()
            .map(|s| {
                let lines = s
                    .lines
                    .iter()
                    .map(|l| (l.sku.to_string(), l.units))
                    .collect();
                (s.location.to_string(), lines)
            })
            .collect();
        let shipment = |location: &str, lines: &[(&str, u32)]| {
            let lines = lines.iter().map(|(sku, n)| (sku.to_string(), *n)).collect();
            (location.to_string(), lines)
        };
        // No single location has three caps. Of the pairs that cover the order, the two
        // warehouses are the cheapest (the dropshipper is across the country, the 3PL 560 km
        // away); within the pair, units go to the lower cost per unit (Reno) first.
        assert_eq!(
            summary,
            [
                shipment("wh-oakland", &[("CAP-RED", 1), ("TSHIRT-BLK-M", 1)]),
                shipment(
                    "wh-reno",
                    &[("CAP-RED", 2), ("MUG-WHT", 1), ("TSHIRT-BLK-M", 1)]
                ),
            ]
        );
    }

    #[test]
    fn a_split_limit_of_one_has_no_plan() {
        let mut doc: Value = serde_json::from_slice(&input(Step::Route)).unwrap();
        doc["policy"]["split_limit"] = 1.into();
        assert!(matches!(
            plan_of(&doc),
            Err(Error::Domain(oms_domain::Error::Routing(_)))
        ));
    }
}
