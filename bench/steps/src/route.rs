//! route: the reserved order routed as `functions/route` routes it —
//! [`crate::routing::handle`], the function's own step on the step runner: planned with the
//! domain's `plan` on the order's own holds (else on all stock), the plan allocated in the
//! stock documents, the outcome stored by `OrderRecord::route` with `order.routed`, the stock
//! settled to it. Outputs the order's status, plan and shipments, and every stock document.

use std::collections::BTreeMap;

use oms_domain::FulfilmentPlan;
use oms_edge::ShipmentRecord;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::world::{self, World};
use crate::Error;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Input {
    /// The store (the reserved order, its holds, locations, policy) and the clock.
    pub world: World,
    /// The order to route.
    pub order_id: String,
}

#[derive(Debug, Serialize)]
struct Output {
    status: &'static str,
    plan: Option<FulfilmentPlan>,
    shipments: Vec<ShipmentRecord>,
    stock: BTreeMap<String, Value>,
}

/// Routes the order of `input`; the outcome as JSON.
pub(crate) fn run(input: &[u8]) -> Result<Vec<u8>, Error> {
    let input: Input = serde_json::from_slice(input)?;
    let (_, output) = route(&input)?;
    Ok(serde_json::to_vec(&output)?)
}

/// The world after the order of `input` was routed (the next step's input).
pub(crate) fn after(input: &Input) -> Result<World, Error> {
    Ok(route(input)?.0)
}

fn route(input: &Input) -> Result<(World, Output), Error> {
    let env = input.world.env()?;
    crate::routing::handle(&env, &input.order_id)?;
    let record = world::order(&env, &input.order_id)?;
    let output = Output {
        status: record.status().as_str(),
        plan: record.plan().cloned(),
        shipments: record.shipments().to_vec(),
        stock: world::stock(&env)?,
    };
    Ok((World::after(&env, input.world.now)?, output))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{input, Step};

    fn outcome(doc: &Value) -> Value {
        serde_json::from_slice(&run(doc.to_string().as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn the_order_is_routed_and_its_holds_become_allocations() {
        let doc: Value = serde_json::from_slice(&input(Step::Route)).unwrap();
        let out = outcome(&doc);
        assert_eq!(out["status"], "routed", "{out}");
        let order = doc["order_id"].as_str().unwrap();
        let docs = out["stock"].as_object().unwrap();
        assert!(docs.values().all(|d| d["holds"].get(order).is_none()));
        let allocated: u64 = docs
            .values()
            .filter_map(|d| d["allocations"][order].as_u64())
            .sum();
        let shipped: u64 = out["shipments"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["lines"].as_array().unwrap())
            .map(|l| l["units"].as_u64().unwrap())
            .sum();
        assert_eq!((allocated, shipped), (6, 6));
        assert_eq!(
            out["shipments"].as_array().unwrap().len(),
            out["plan"]["shipments"].as_array().unwrap().len()
        );
    }

    #[test]
    fn a_redelivered_trigger_changes_nothing() {
        let doc: Value = serde_json::from_slice(&input(Step::Route)).unwrap();
        let once = outcome(&doc);
        let mut twice: Value = serde_json::from_slice(&input(Step::Route)).unwrap();
        let input: Input = serde_json::from_value(twice.clone()).unwrap();
        twice["world"] = serde_json::to_value(after(&input).unwrap()).unwrap();
        assert_eq!(outcome(&twice), once);
    }
}
