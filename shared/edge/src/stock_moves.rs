//! Applying the stock moves an order owes ([`oms_domain::StockMove`]): a shipment's units
//! leaving their location, a return's accepted units coming back on hand. Run by the step
//! that recorded them, right after its write, and by the reconciler for any that a crash or a
//! store error left pending — so a shipment update or an inspection that is never retried
//! still moves its stock exactly once.

use oms_domain::StockMove;

use crate::env::Env;
use crate::problem::FunctionError;
use crate::step::{run, Decision};
use crate::stock::{update_order_stock, update_stock};

/// Applies every stock move the order still owes (each idempotent: shipping is per order,
/// a restock once per receipt token), then clears them on the order in one step.
///
/// # Errors
/// 404 for an unknown order; storage errors and contention (the moves stay owed, for a retry
/// or the reconciler); a stock document that cannot take the move (500).
pub fn apply_stock_moves<E: Env>(env: &E, order_id: &str) -> Result<(), FunctionError> {
    run(env, order_id, |record| {
        if record.pending_moves().is_empty() {
            return Ok(Decision::Unchanged(()));
        }
        for owed in record.pending_moves() {
            match owed {
                StockMove::Ship { sku, location } => {
                    update_order_stock(env.kv(), sku.as_str(), location.as_str(), order_id, |d| {
                        d.ship(order_id)
                    })?;
                }
                StockMove::Restock {
                    sku,
                    location,
                    units,
                    token,
                } => {
                    update_stock(env.kv(), sku.as_str(), location.as_str(), |d| {
                        d.receive_once(token, *units)
                    })?;
                }
            }
        }
        record.moves_applied();
        Ok(Decision::Changed(()))
    })
}
