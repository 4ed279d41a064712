//! refund: a refund request (order lines, shipping, goodwill amounts) booked as
//! `functions/refund` books it — `OrderRecord::refund` inside the step runner: valued against
//! the order, refused above what was captured minus what was already refunded, recorded with
//! its event (the payment dimension moves, the order status does not). Outputs the refund, the
//! ledger after it and the order's payment status.

use oms_domain::{OrderRecord, PaymentError, RefundCause, RefundItem, RefundLedger, ShipmentId};
use oms_edge::{run as step, Decision, Env, FunctionError, MemEnv};
use serde::{Deserialize, Serialize};

use crate::world::{self, World};
use crate::Error;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Input {
    /// The store (the shipped order) and the clock.
    pub world: World,
    /// The order to refund.
    pub order_id: String,
    /// The request's `Idempotency-Key` (the refund's cause).
    pub idempotency_key: String,
    /// What to refund.
    pub items: Vec<RefundItem>,
}

#[derive(Serialize)]
struct Output {
    refund: Option<oms_domain::Refund>,
    ledger: RefundLedger,
    payment_status: oms_domain::PaymentState,
    fully_refunded: bool,
}

/// Books the refund of `input`; the refund and the new ledger as JSON.
pub(crate) fn run(input: &[u8]) -> Result<Vec<u8>, Error> {
    let input: Input = serde_json::from_slice(input)?;
    let env = input.world.env()?;
    let record = refund(&env, &input)?;
    Ok(serde_json::to_vec(&Output {
        refund: record.refunds().last().cloned(),
        fully_refunded: record.ledger().is_fully_refunded(),
        payment_status: record.payment_status(),
        ledger: record.ledger().clone(),
    })?)
}

/// The world after the refund of `input` (fixtures build on it).
pub(crate) fn after(input: &Input) -> Result<World, Error> {
    let env = input.world.env()?;
    refund(&env, input)?;
    World::after(&env, input.world.now)
}

/// The decision of the refund function's step: the domain's refund, on the runner.
fn refund(env: &MemEnv, input: &Input) -> Result<OrderRecord, Error> {
    let cause = RefundCause::Request {
        idempotency_key: input.idempotency_key.clone(),
    };
    let (event_id, now) = (env.new_id(), env.now());
    let booked = step(env, &input.order_id, |record| {
        match record.refund(cause.clone(), &input.items, None, event_id, now) {
            Ok(true) => Ok(Decision::Changed(Ok(()))),
            Ok(false) => Ok(Decision::Unchanged(Ok(()))),
            Err(e) => Ok::<_, FunctionError>(Decision::Unchanged(Err(e))),
        }
    })?;
    booked.map_err(|e: PaymentError| Error::Step(e.to_string()))?;
    world::order(env, &input.order_id)
}

/// Hands every shipment of the routed order in `world` to a carrier, as the route function's
/// shipment updates do (`OrderRecord::ship` on the runner): a refundable order.
pub(crate) fn ship_all(world: &World, order_id: &str) -> Result<World, Error> {
    let env = world.env()?;
    let label =
        |s: &str| oms_domain::ShipmentLabel::parse(s).map_err(|e| Error::Step(e.to_string()));
    for shipment in world::order(&env, order_id)?.shipments() {
        let id =
            ShipmentId::parse(&shipment.id.to_string()).map_err(|e| Error::Step(e.to_string()))?;
        let (carrier, tracking) = (label("ups")?, label(&format!("1Z-{}", shipment.id))?);
        let (event_id, now) = (env.new_id(), env.now());
        step(&env, order_id, |record| {
            match record.ship(&id, carrier.clone(), tracking.clone(), event_id, now) {
                Ok(true) => Ok(Decision::Changed(())),
                Ok(false) => Ok(Decision::Unchanged(())),
                Err(e) => Err(FunctionError::Internal(e.to_string())),
            }
        })?;
    }
    World::after(&env, world.now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{input, Step};
    use serde_json::{json, Value};

    #[test]
    fn values_lines_by_their_net_share_plus_shipping() {
        let out: Value = serde_json::from_slice(&run(&input(Step::Refund)).unwrap()).unwrap();
        // 1 of 2 T-shirts (net 37.98) = 18.99; caps 2 and 3 of 3 (net 36.00) = 24.00; 9.95.
        assert_eq!(
            out["refund"]["amount"],
            json!({"amount": "52.94", "currency": "USD"})
        );
        assert_eq!(out["ledger"]["refunded"]["amount"], "64.94");
        assert_eq!(out["ledger"]["line_units"], json!({"0": 1, "2": 3}));
        assert_eq!(out["ledger"]["shipping_refunded"], true);
        assert_eq!(
            (&out["fully_refunded"], &out["payment_status"]),
            (&json!(false), &json!("partially_refunded"))
        );
    }

    #[test]
    fn a_refund_above_what_remains_captured_is_refused() {
        let mut doc: Value = serde_json::from_slice(&input(Step::Refund)).unwrap();
        let goodwill = json!({"kind": "amount", "amount": {"amount": "22.70", "currency": "USD"}});
        doc["items"].as_array_mut().unwrap().push(goodwill);
        match run(doc.to_string().as_bytes()) {
            Err(Error::Step(why)) => {
                assert!(
                    why.contains("75.64 USD") && why.contains("75.63 USD"),
                    "{why}"
                );
            }
            other => panic!("{:?}", other.map(String::from_utf8)),
        }
    }
}
