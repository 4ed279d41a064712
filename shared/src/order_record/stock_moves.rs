//! Stock moves a step owes after its write: what must happen to stock documents because the
//! order changed (a shipment left, a return's accepted units came back), recorded on the order
//! in the same compare-and-swap as the change, applied afterwards (each move idempotent per
//! order or per token), then cleared. While any is pending the order owes work, so a crash
//! between the order's write and the stock's is finished by the reconciler, not only by a
//! retry of the same request.

use serde::{Deserialize, Serialize};

use super::OrderRecord;
use crate::{LocationId, Sku};

/// One owed change to a (SKU, location) stock document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StockMove {
    /// Everything the order has allocated of `sku` at `location` leaves (its shipment shipped).
    Ship {
        /// The SKU.
        sku: Sku,
        /// Where it ships from.
        location: LocationId,
    },
    /// `units` come back on hand at `location`, once per `token` (an accepted return line).
    Restock {
        /// The SKU.
        sku: Sku,
        /// Where they are put back.
        location: LocationId,
        /// How many.
        units: u32,
        /// The receipt token that makes the move happen once.
        token: String,
    },
}

impl OrderRecord {
    /// The stock moves this order still owes, oldest first.
    pub fn pending_moves(&self) -> &[StockMove] {
        &self.pending_moves
    }

    /// Records a move the order owes (once: the same move twice is one move).
    pub(crate) fn owe_move(&mut self, owed: StockMove) {
        if !self.pending_moves.contains(&owed) {
            self.pending_moves.push(owed);
        }
    }

    /// Marks every pending move as applied.
    pub fn moves_applied(&mut self) {
        self.pending_moves.clear();
    }
}
