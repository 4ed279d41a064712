//! The key layout of the shared store (the stored order itself, [`OrderRecord`], is a domain
//! type in `oms-domain`).

pub use oms_domain::{OrderRecord, ShipmentRecord, ShipmentStatus};

/// Key layout of the `default` store (one place, so components agree).
pub mod keys {
    /// An order's record: `order:{id}`.
    pub fn order(id: &str) -> String {
        format!("order:{id}")
    }
    /// An idempotency entry: `idem:{scope}:{key}`.
    pub fn idempotency(scope: &str, key: &str) -> String {
        format!("idem:{scope}:{key}")
    }
    /// Catalog prices of a SKU: `catalog:{sku}`.
    pub fn catalog(sku: &str) -> String {
        format!("catalog:{sku}")
    }
    /// Stock of a SKU at a location: `stock:{sku}:{location}`, a `StockDoc` (holds and
    /// allocations per order) — always updated with `update_json`.
    pub fn stock(sku: &str, location: &str) -> String {
        format!("stock:{sku}:{location}")
    }
    /// Backorder policy of a SKU: `backorder:{sku}`.
    pub fn backorder(sku: &str) -> String {
        format!("backorder:{sku}")
    }
    /// The fulfilment locations (one document).
    pub const LOCATIONS: &str = "locations";
    /// Orders whose reservation expires (order id → expiry), for the expiry sweeper.
    pub const EXPIRING: &str = "reservations:expiring";
    /// The routing policy (split limit, cost per km).
    pub const ROUTING_POLICY: &str = "routing-policy";
    /// A marketplace order already taken in: `intake:{channel}:{external id}`.
    pub fn intake(channel: &str, external: &str) -> String {
        format!("intake:{channel}:{external}")
    }
    /// Webhook subscriptions (one document).
    pub const SUBSCRIPTIONS: &str = "subscriptions";
    /// A return authorisation: `return:{id}`.
    pub fn return_(id: &str) -> String {
        format!("return:{id}")
    }
}
