//! reserve: the order's units held as `functions/reserve` holds them —
//! [`crate::reservation::handle`], the function's own step on the step runner: held where the
//! routing planner would ship from (else walked by priority), backorders promised where the
//! SKU's policy allows, the outcome decided by `OrderRecord::record_reservation` and stored
//! with its event, then the order's stock settled to it. Outputs the order's status,
//! reservation and reason, and every stock document after the step.

use std::collections::BTreeMap;

use chrono::Duration;
use oms_domain::Reservation;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::world::{self, World};
use crate::Error;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Input {
    /// The store (the validated order, locations, stock, policies) and the clock.
    pub world: World,
    /// The order to reserve.
    pub order_id: String,
    /// How long holds of an order whose payment is only authorized last (the function's
    /// `reservation_ttl_minutes` variable).
    pub ttl_minutes: u32,
}

#[derive(Debug, Serialize)]
struct Output {
    status: &'static str,
    reservation: Option<Reservation>,
    reason: Option<String>,
    stock: BTreeMap<String, Value>,
}

/// Reserves the order of `input`; the outcome as JSON.
pub(crate) fn run(input: &[u8]) -> Result<Vec<u8>, Error> {
    let input: Input = serde_json::from_slice(input)?;
    let (_, output) = reserve(&input)?;
    Ok(serde_json::to_vec(&output)?)
}

/// The world after the order of `input` was reserved (the next step's input).
pub(crate) fn after(input: &Input) -> Result<World, Error> {
    Ok(reserve(input)?.0)
}

fn reserve(input: &Input) -> Result<(World, Output), Error> {
    let env = input.world.env()?;
    let ttl = Duration::minutes(i64::from(input.ttl_minutes));
    crate::reservation::handle(&env, &input.order_id, ttl)?;
    let record = world::order(&env, &input.order_id)?;
    let output = Output {
        status: record.status().as_str(),
        reservation: record.reservation().cloned(),
        reason: record.reason().map(str::to_string),
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
    fn every_unit_is_held_and_the_stock_documents_say_by_whom() {
        let doc: Value = serde_json::from_slice(&input(Step::Reserve)).unwrap();
        let out = outcome(&doc);
        assert_eq!(out["status"], "reserved", "{out}");
        let held: u64 = out["reservation"]["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["units"].as_u64().unwrap())
            .sum();
        assert_eq!(held, 6, "every unit of the order is held");
        let order = doc["order_id"].as_str().unwrap();
        let in_docs: u64 = out["stock"]
            .as_object()
            .unwrap()
            .values()
            .filter_map(|d| d["holds"][order].as_u64())
            .sum();
        assert_eq!(in_docs, 6, "the stock documents hold the same units");
        assert_eq!(
            out["reservation"]["expires_at"],
            Value::Null,
            "captured payment"
        );
    }

    #[test]
    fn an_order_the_network_cannot_cover_is_rejected_and_holds_nothing() {
        let mut doc: Value = serde_json::from_slice(&input(Step::Reserve)).unwrap();
        let store = doc["world"]["store"].as_object_mut().unwrap();
        store.retain(|k, _| !k.starts_with("stock:CAP-RED:") || k == "stock:CAP-RED:wh-reno");
        let out = outcome(&doc);
        assert_eq!(out["status"], "rejected", "{out}");
        let order = doc["order_id"].as_str().unwrap();
        assert!(out["stock"]
            .as_object()
            .unwrap()
            .values()
            .all(|d| d["holds"].get(order).is_none()));
    }
}
