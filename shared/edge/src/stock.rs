//! Stock documents in the store: a (SKU, location)'s [`StockDoc`] (the domain's per-order
//! stock ledger) under `keys::stock`, changed by one compare-and-swap at a time
//! ([`update_stock`]), and a SKU's backorder promises ([`BackorderDoc`]).

use std::collections::BTreeMap;

pub use oms_domain::StockDoc;
use oms_domain::{BackorderPolicy, StockError};
use serde::{Deserialize, Serialize};

use crate::kv::{update_json, Change, Kv};
use crate::problem::FunctionError;
use crate::record::keys;

/// Applies a stock operation to one (SKU, location) document by compare-and-swap, writing only
/// when it changes something; the document after. A missing document is empty stock.
///
/// # Errors
/// Storage errors; a [`StockError`] (an operation that does not fit the stock) as an internal
/// error — callers use this for operations that are valid by construction (releases,
/// deallocations, shipping an existing allocation).
pub fn update_stock<K: Kv>(
    kv: &K,
    sku: &str,
    location: &str,
    op: impl Fn(&StockDoc) -> Result<StockDoc, StockError>,
) -> Result<StockDoc, FunctionError> {
    update_json(kv, &keys::stock(sku, location), |cur: Option<StockDoc>| {
        let doc = cur.unwrap_or_default();
        let next = op(&doc)
            .map_err(|e| FunctionError::Internal(format!("stock {sku}@{location}: {e}")))?;
        if next == doc {
            Ok(Change::Keep(next))
        } else {
            Ok(Change::Write(next.clone(), next))
        }
    })
}

/// The units of one SKU promised beyond stock (backorders), per order
/// (`backorder-promises:{sku}`): the SKU's backorder limit ([`BackorderPolicy::UpTo`]) is
/// checked against and counted in this one document, so a promise is one compare-and-swap —
/// concurrent orders cannot exceed the limit, and a redelivery finds its own promise instead
/// of counting twice. A promise is given back when the order ends up reserved in full,
/// rejected or cancelled ([`BackorderDoc::release`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BackorderDoc {
    /// Units promised per order id.
    #[serde(default)]
    pub promised: BTreeMap<String, u32>,
}

impl BackorderDoc {
    /// The key of a SKU's promises.
    pub fn key(sku: &str) -> String {
        format!("backorder-promises:{sku}")
    }

    /// Units promised to all orders.
    pub fn outstanding(&self) -> u32 {
        self.promised
            .values()
            .fold(0u32, |sum, n| sum.saturating_add(*n))
    }

    /// Units promised to `order`.
    pub fn promised_to(&self, order: &str) -> u32 {
        self.promised.get(order).copied().unwrap_or(0)
    }

    /// Promises `order` exactly `units` under `policy`: the document after, or `None` when
    /// the limit does not allow it (counting every other order's promise). Idempotent: an
    /// order already promised `units` gets the document unchanged.
    pub fn promise(
        &self,
        order: &str,
        units: u32,
        policy: BackorderPolicy,
    ) -> Option<BackorderDoc> {
        if self.promised_to(order) == units {
            return Some(self.clone());
        }
        let others = self.outstanding() - self.promised_to(order);
        if !policy.allows(others, units) {
            return None;
        }
        let mut next = self.clone();
        if units == 0 {
            next.promised.remove(order);
        } else {
            next.promised.insert(order.to_string(), units);
        }
        Some(next)
    }

    /// Gives back what was promised to `order` (no-op when nothing was).
    pub fn release(&self, order: &str) -> BackorderDoc {
        let mut next = self.clone();
        next.promised.remove(order);
        next
    }
}

/// Applies `op` to a SKU's [`BackorderDoc`] by compare-and-swap, writing only when it changes
/// something; `op`'s verdict (`None`: refused, nothing written).
///
/// # Errors
/// Storage errors.
pub fn update_backorders<K: Kv>(
    kv: &K,
    sku: &str,
    op: impl Fn(&BackorderDoc) -> Option<BackorderDoc>,
) -> Result<Option<BackorderDoc>, FunctionError> {
    update_json(kv, &BackorderDoc::key(sku), |cur: Option<BackorderDoc>| {
        let doc = cur.unwrap_or_default();
        match op(&doc) {
            Some(next) if next != doc => {
                Ok::<_, FunctionError>(Change::Write(next.clone(), Some(next)))
            }
            verdict => Ok(Change::Keep(verdict)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backorder_promises_count_once_per_order_within_the_limit() {
        let limit = BackorderPolicy::UpTo(3);
        let d = BackorderDoc::default().promise("o1", 2, limit).unwrap();
        assert_eq!(
            d.promise("o1", 2, limit).unwrap(),
            d,
            "a redelivery counts once"
        );
        assert!(d.promise("o2", 2, limit).is_none(), "only one unit is left");
        let d = d.promise("o2", 1, limit).unwrap();
        assert_eq!(d.outstanding(), 3);
        let d = d.release("o1");
        assert_eq!((d.outstanding(), d.release("o1")), (1, d.clone()));
        assert!(d.promise("o3", 1, BackorderPolicy::Never).is_none());
        assert!(d.promise("o3", 9, BackorderPolicy::Unlimited).is_some());
    }
}
