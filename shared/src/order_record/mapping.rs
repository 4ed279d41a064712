//! Mapping an order's unmapped lines (see [`crate::OrderLine`]) to SKUs once staff have
//! resolved the items, before the order is reserved.

use super::OrderRecord;
use crate::{OrderStatus, Sku};

/// Why lines could not be mapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// Lines are mapped only before stock is reserved for the order (it is `validated`; an
    /// order with unmapped lines is held from reserving until they are mapped).
    #[error("the order is {0}; lines can only be mapped before it is reserved")]
    OrderStatus(OrderStatus),
}

impl OrderRecord {
    /// Maps unmapped lines: each `(line index, SKU)` whose line is unmapped takes the SKU
    /// ([`crate::Order::map_line`]); other pairs are ignored. Records no event: the caller
    /// releases the `unmapped_item` hold once no line is left unmapped, and that release
    /// (`order.hold_released`, its note naming the mappings) is the audit trail. The lines
    /// mapped, in index order.
    ///
    /// # Errors
    /// [`MappingError::OrderStatus`] unless the order is `validated`.
    pub fn map_lines(&mut self, mapped: &[(usize, Sku)]) -> Result<Vec<usize>, MappingError> {
        let status = self.status();
        if status != OrderStatus::Validated {
            return Err(MappingError::OrderStatus(status));
        }
        let mut done: Vec<usize> = mapped
            .iter()
            .filter(|(i, sku)| self.order.map_line(*i, sku.clone()))
            .map(|(i, _)| *i)
            .collect();
        done.sort_unstable();
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChannelId, Order, OrderId};
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    #[test]
    fn unmapped_lines_take_their_sku_while_the_order_is_validated() {
        let body = json!({
            "channel": "shop", "customer": {}, "currency": "USD",
            "lines": [
                {"sku": "SKU-1", "quantity": 1, "unit_price": "1.00"},
                {"sku": "unmapped-42", "quantity": 2, "unit_price": "2.00",
                 "item": {"variant_id": "42"}, "unmapped": true}
            ],
            "shipping": {"method": "standard", "amount": "0"},
            "tax": "0",
            "totals": {"subtotal": "5.00", "discount": "0", "shipping": "0", "tax": "0", "grand_total": "5.00"},
            "payment": {"reference": "p", "status": "captured", "amount": "5.00"}
        });
        let at = Utc.with_ymd_and_hms(2026, 12, 2, 8, 0, 0).unwrap();
        let id = OrderId::for_marketplace(&ChannelId::parse("shop").unwrap(), "1");
        let order = Order::from_marketplace_request(&body, id, at).unwrap();
        assert!(order.needs_address());
        assert_eq!(
            order.units_by_sku().len(),
            1,
            "the unmapped line is not reserved"
        );
        let mut record = OrderRecord::take_in(order, at).unwrap();
        let sku = |s: &str| Sku::parse(s).unwrap();
        assert_eq!(
            record.map_lines(&[(0, sku("X")), (1, sku("SKU-2")), (7, sku("Y"))]),
            Ok(vec![1]),
            "only unmapped lines that exist are mapped"
        );
        assert_eq!(record.order().lines()[1].sku().as_str(), "SKU-2");
        assert_eq!(record.order().lines()[0].sku().as_str(), "SKU-1");
        assert_eq!(record.order().unmapped_lines().count(), 0);
        assert_eq!(record.order().units_by_sku().len(), 2);
        // The stored form round-trips.
        let stored = serde_json::to_value(record.order()).unwrap();
        assert_eq!(
            &serde_json::from_value::<Order>(stored).unwrap(),
            record.order()
        );
        record
            .transition(
                OrderStatus::Reserved,
                json!({}),
                uuid::Uuid::from_u128(9),
                at,
            )
            .unwrap();
        assert_eq!(
            record.map_lines(&[(1, sku("Z"))]),
            Err(MappingError::OrderStatus(OrderStatus::Reserved))
        );
    }
}
