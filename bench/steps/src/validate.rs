//! validate: a storefront request taken in as `functions/validate` takes it —
//! [`crate::storefront::place`], the function's own code: parsed into a domain `Order` under
//! the id its `Idempotency-Key` derives, checked against the catalogue prices in the store,
//! and created through the step runner (with its `order.validated` in the outbox, published).
//! Outputs the answer and the order as stored.

use oms_domain::{IdempotencyKey, Order};
use serde::{Deserialize, Serialize};

use crate::world::{self, World};
use crate::Error;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Input {
    /// The store (the catalogue: `catalog:{sku}`) and the clock.
    pub world: World,
    /// The request's `Idempotency-Key`.
    pub idempotency_key: String,
    /// The body the storefront sent.
    pub request: serde_json::Value,
}

#[derive(Serialize)]
struct Output {
    /// The status the function answers with.
    status: u16,
    /// Its body.
    body: serde_json::Value,
    /// The order as stored.
    order: Order,
}

/// Takes in the order of `input`; the answer and the stored order as JSON.
pub(crate) fn run(input: &[u8]) -> Result<Vec<u8>, Error> {
    let input: Input = serde_json::from_slice(input)?;
    let (_, output) = take_in(&input)?;
    Ok(serde_json::to_vec(&output)?)
}

/// The world after the order of `input` was taken in (the next step's input).
pub(crate) fn after(input: &Input) -> Result<World, Error> {
    let (world, _) = take_in(input)?;
    Ok(world)
}

fn take_in(input: &Input) -> Result<(World, Output), Error> {
    let key = IdempotencyKey::parse(&input.idempotency_key).map_err(oms_domain::Error::from)?;
    let env = input.world.env()?;
    let answer = crate::storefront::place(&env, &key, &input.request)?;
    let body: serde_json::Value = serde_json::from_str(&answer.body)?;
    let id = body["id"].as_str().unwrap_or_default().to_string();
    let output = Output {
        status: answer.status,
        order: world::order(&env, &id)?.order().clone(),
        body,
    };
    Ok((World::after(&env, input.world.now)?, output))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{input, Step};
    use serde_json::Value;

    #[test]
    fn the_fixture_order_is_accepted_with_its_totals() {
        let out: Value = serde_json::from_slice(&run(&input(Step::Validate)).unwrap()).unwrap();
        assert_eq!(out["status"], 202);
        assert_eq!(out["body"]["status"], "validated");
        let order: Order = serde_json::from_value(out["order"].clone()).unwrap();
        assert_eq!(out["body"]["id"], order.id().to_string());
        assert_eq!(order.lines().len(), 3);
        assert_eq!(order.totals().grand_total.to_string(), "87.63 USD");
        assert_eq!(order.units_by_sku().values().sum::<u32>(), 6);
    }

    #[test]
    fn a_price_that_differs_from_the_catalogue_is_refused_with_its_line() {
        let mut doc: Value = serde_json::from_slice(&input(Step::Validate)).unwrap();
        doc["world"]["store"]["catalog:CAP-RED"] = serde_json::json!({"USD": "11.00"});
        match run(doc.to_string().as_bytes()) {
            Err(Error::Step(problem)) => {
                assert!(problem.starts_with("422 "), "{problem}");
                assert!(problem.contains("/lines/2/unit_price"), "{problem}");
            }
            other => panic!("{other:?}"),
        }
    }
}
