//! refund: a refund request (order lines, shipping, goodwill amounts) valued against the order
//! and recorded in its [`RefundLedger`], which refuses anything above what was captured minus
//! what was already refunded — `functions/refund` before it stores the ledger. Outputs the
//! refund and the new ledger.

use oms_domain::{Order, Refund, RefundItem, RefundLedger};
use serde::{Deserialize, Serialize};

use crate::Error;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    /// The order as stored by validate.
    order: Order,
    /// What was captured and refunded so far.
    ledger: RefundLedger,
    /// What to refund now.
    items: Vec<RefundItem>,
}

#[derive(Serialize)]
struct Output {
    refund: Refund,
    ledger: RefundLedger,
    fully_refunded: bool,
}

/// Records the refund in `input`; the refund and the new ledger as JSON.
pub(crate) fn run(input: &[u8]) -> Result<Vec<u8>, Error> {
    let input: Input = serde_json::from_slice(input)?;
    let (ledger, refund) = input
        .ledger
        .refund(&input.order, &input.items)
        .map_err(oms_domain::Error::from)?;
    Ok(serde_json::to_vec(&Output {
        refund,
        fully_refunded: ledger.is_fully_refunded(),
        ledger,
    })?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{input, Step};
    use oms_domain::RefundError;
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
        assert_eq!(out["fully_refunded"], false);
    }

    #[test]
    fn a_refund_above_what_remains_captured_is_refused() {
        let mut doc: Value = serde_json::from_slice(&input(Step::Refund)).unwrap();
        let goodwill = json!({"kind": "amount", "amount": {"amount": "22.70", "currency": "USD"}});
        doc["items"].as_array_mut().unwrap().push(goodwill);
        match run(doc.to_string().as_bytes()) {
            Err(Error::Domain(oms_domain::Error::Refund(RefundError::ExceedsRefundable {
                requested,
                refundable,
            }))) => {
                assert_eq!(requested.to_string(), "75.64 USD");
                assert_eq!(refundable.to_string(), "75.63 USD");
            }
            other => panic!("{other:?}"),
        }
    }
}
