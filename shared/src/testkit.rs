//! Test building blocks for this crate and the crates above it (feature `testkit`, enabled
//! only in their dev-dependencies): one valid order, shaped as a storefront would send it.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::json;

use uuid::Uuid;

use crate::{Order, OrderId, OrderRecord, Reservation, ShipmentRecord};

/// A valid web order for `quantity` units of `SKU-1` at `unit_price` (e.g. `"1.00"`), free
/// shipping to San Francisco, no tax, paid with status `payment` (`"captured"`,
/// `"authorized"` …).
///
/// # Panics
/// When the arguments do not make a valid order (a bad price), as a test fixture should.
pub fn sku1_order(
    id: OrderId,
    quantity: u32,
    unit_price: &str,
    payment: &str,
    now: DateTime<Utc>,
) -> Order {
    let price: Decimal = unit_price.parse().expect("unit price");
    let total = (price * Decimal::from(quantity)).round_dp(2).to_string();
    let body = json!({
        "channel": "web", "customer": {"email": "a@example.com"}, "currency": "USD",
        "lines": [{"sku": "SKU-1", "quantity": quantity, "unit_price": unit_price}],
        "shipping": {"method": "standard", "amount": "0.00",
            "address": {"country": "US", "postal_code": "94107", "line1": "1 Main", "city": "SF"}},
        "tax": "0.00",
        "totals": {"subtotal": total, "discount": "0.00", "shipping": "0.00", "tax": "0.00", "grand_total": total},
        "payment": {"reference": "pi_1", "status": payment, "amount": total}
    });
    Order::from_request(&body, id, now).expect("a valid fixture order")
}

/// Staging a record the way earlier steps would have left it, for tests that start mid-way.
impl OrderRecord {
    /// Sets the stock held for the order.
    pub fn testkit_set_reservation(&mut self, reservation: Option<Reservation>) {
        self.reservation = reservation;
    }

    /// Sets which events are still owed (empty: everything was published).
    pub fn testkit_set_outbox(&mut self, ids: Vec<Uuid>) {
        self.outbox = ids;
    }

    /// The shipments, to change as a racing writer would.
    pub fn testkit_shipments_mut(&mut self) -> &mut Vec<ShipmentRecord> {
        &mut self.shipments
    }
}
