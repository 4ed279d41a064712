//! validate: a storefront request parsed into a domain [`Order`] (every problem named by its
//! JSON Pointer) and checked against the catalogue prices — `functions/validate` before it
//! stores the order. Outputs the order as stored.

use chrono::{DateTime, Utc};
use oms_domain::{Catalog, Order, OrderId};
use serde::Deserialize;

use crate::Error;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    /// The id the order gets.
    order_id: OrderId,
    /// When it is accepted.
    placed_at: DateTime<Utc>,
    /// The body the storefront sent.
    request: serde_json::Value,
    /// Prices of the SKUs (the function reads them from key-value).
    catalog: Catalog,
}

/// Validates the order in `input`; the order as JSON.
pub(crate) fn run(input: &[u8]) -> Result<Vec<u8>, Error> {
    let input: Input = serde_json::from_slice(input)?;
    let order = Order::from_request(&input.request, input.order_id, input.placed_at)
        .map_err(oms_domain::Error::from)?;
    input
        .catalog
        .check(&order)
        .map_err(oms_domain::Error::from)?;
    Ok(serde_json::to_vec(&order)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::ORDER_ID;
    use crate::{input, Step};
    use serde_json::{json, Value};

    #[test]
    fn the_fixture_order_is_accepted_with_its_totals() {
        let order: Order = serde_json::from_slice(&run(&input(Step::Validate)).unwrap()).unwrap();
        assert_eq!(order.id().to_string(), ORDER_ID);
        assert_eq!(order.lines().len(), 3);
        assert_eq!(order.totals().grand_total.to_string(), "87.63 USD");
        assert_eq!(order.units_by_sku().values().sum::<u32>(), 6);
    }

    #[test]
    fn a_price_that_differs_from_the_catalogue_is_refused_with_its_line() {
        let mut doc: Value = serde_json::from_slice(&input(Step::Validate)).unwrap();
        doc["catalog"]["CAP-RED"] = json!({"USD": "11.00"});
        match run(doc.to_string().as_bytes()) {
            Err(Error::Domain(oms_domain::Error::Order(v))) => {
                assert_eq!(v.0.len(), 1);
                assert_eq!(v.0[0].field, "/lines/2/unit_price");
                assert_eq!(v.0[0].code, oms_domain::ViolationCode::PriceMismatch);
            }
            other => panic!("{other:?}"),
        }
    }
}
