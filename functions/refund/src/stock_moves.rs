//! Stock changes this component makes: releasing what a cancelled order held or had
//! allocated, and putting accepted returned units back on hand. Each is one compare-and-swap
//! per (SKU, location) document and idempotent per order or receipt token, so a retry after
//! a crash never releases or restocks twice.

use oms_domain::{LocationId, Sku};
use oms_edge::{keys, update_json, Change, FunctionError, Kv, StockDoc};
use serde::{Deserialize, Serialize};

/// Units of one SKU at one location.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Placement {
    /// The SKU.
    pub sku: Sku,
    /// The location.
    pub location: LocationId,
    /// Units.
    pub units: u32,
}

fn stock_error(key: &str, e: impl std::fmt::Display) -> FunctionError {
    FunctionError::Internal(format!("stock {key}: {e}"))
}

/// Returns everything `order` holds or has allocated at each placement to available stock.
/// Releases both the hold and the allocation, whichever the document has: the record may
/// lag a routing step that already turned the hold into an allocation.
///
/// # Errors
/// Storage errors, contention (503), an inconsistent stock document (500).
pub fn release<K: Kv>(kv: &K, order: &str, placements: &[Placement]) -> Result<(), FunctionError> {
    for p in placements {
        let key = keys::stock(p.sku.as_str(), p.location.as_str());
        update_json::<_, _, _, FunctionError>(kv, &key, |doc: Option<StockDoc>| match doc {
            Some(d) if d.held_by(order) > 0 || d.allocated_to(order) > 0 => {
                let next = d
                    .release(order)
                    .and_then(|d| d.deallocate(order))
                    .map_err(|e| stock_error(&key, e))?;
                Ok(Change::Write(next, ()))
            }
            _ => Ok(Change::Keep(())),
        })?;
    }
    Ok(())
}

/// Puts returned units back on hand, once per `token` and document (a retry adds nothing).
///
/// # Errors
/// Storage errors, contention (503), overflow (500).
pub fn restock<K: Kv>(kv: &K, token: &str, placements: &[Placement]) -> Result<(), FunctionError> {
    for p in placements {
        let key = keys::stock(p.sku.as_str(), p.location.as_str());
        update_json::<_, _, _, FunctionError>(kv, &key, |doc: Option<StockDoc>| {
            let doc = doc.unwrap_or_default();
            if doc.receipts.contains(token) {
                return Ok(Change::Keep(()));
            }
            let next = doc
                .receive_once(token, p.units)
                .map_err(|e| stock_error(&key, e))?;
            Ok(Change::Write(next, ()))
        })?;
    }
    Ok(())
}
