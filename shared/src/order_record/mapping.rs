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
