//! The order lifecycle as an explicit state machine: the order dimension only. Money has
//! its own dimension (`OrderRecord::payment_status`, derived from the refund ledger): a
//! refund records `order.partially_refunded` / `order.refunded` on the timeline but never
//! moves the order, so a partially refunded split order still ships and delivers.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::event::EventType;

/// Where an order is in its lifecycle.
///
/// | from | allowed next |
/// | --- | --- |
/// | `validated` | `reserved`, `backordered`, `rejected`, `cancelled` |
/// | `backordered` | `reserved`, `cancelled` |
/// | `reserved` | `routed`, `cancelled` |
/// | `routed` | `routed` (re-route), `partially_shipped`, `shipped`, `cancelled` |
/// | `partially_shipped` | `partially_shipped`, `shipped` |
/// | `shipped` | `delivered` |
/// | `rejected`, `cancelled`, `delivered` | — (terminal) |
///
/// Orders are cancellable until something ships. The repeatable steps record one event per
/// shipment or re-route. Refunds and returns are not order statuses: their events leave
/// the status alone (see [`crate::EventType::status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum OrderStatus {
    /// Accepted at intake.
    Validated,
    /// Stock is held for every line.
    Reserved,
    /// Waiting for stock the backorder policy allows promising.
    Backordered,
    /// Could not be reserved and may not be backordered. Terminal.
    Rejected,
    /// Fulfilment locations chosen and stock allocated.
    Routed,
    /// Some shipments have left.
    PartiallyShipped,
    /// Every shipment has left.
    Shipped,
    /// The carrier delivered (or the customer collected). Terminal.
    Delivered,
    /// Cancelled before shipment; its stock is released. Terminal.
    Cancelled,
}

/// The data of `order.cancelled`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCancelled {
    /// The caller's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The status it was cancelled from.
    pub from: OrderStatus,
}

/// A status change the lifecycle forbids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an order cannot go from {from} to {to}")]
pub struct IllegalTransition {
    /// The current status.
    pub from: OrderStatus,
    /// The requested status.
    pub to: OrderStatus,
}

impl OrderStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [OrderStatus; 9] = [
        Self::Validated,
        Self::Reserved,
        Self::Backordered,
        Self::Rejected,
        Self::Routed,
        Self::PartiallyShipped,
        Self::Shipped,
        Self::Delivered,
        Self::Cancelled,
    ];

    /// The statuses reachable in one step.
    pub fn allowed_next(self) -> &'static [OrderStatus] {
        use OrderStatus::*;
        match self {
            Validated => &[Reserved, Backordered, Rejected, Cancelled],
            Backordered => &[Reserved, Cancelled],
            Reserved => &[Routed, Backordered, Cancelled],
            Routed => &[Routed, PartiallyShipped, Shipped, Cancelled],
            PartiallyShipped => &[PartiallyShipped, Shipped],
            Shipped => &[Delivered],
            Rejected | Cancelled | Delivered => &[],
        }
    }

    /// Whether `to` is reachable in one step.
    pub fn can_transition_to(self, to: OrderStatus) -> bool {
        self.allowed_next().contains(&to)
    }

    /// Moves to `to` if the lifecycle allows it.
    ///
    /// # Errors
    /// [`IllegalTransition`] naming both statuses otherwise.
    pub fn transition(self, to: OrderStatus) -> Result<OrderStatus, IllegalTransition> {
        if self.can_transition_to(to) {
            Ok(to)
        } else {
            Err(IllegalTransition { from: self, to })
        }
    }

    /// Whether the order can still be cancelled (nothing has shipped).
    pub fn is_cancellable(self) -> bool {
        self.can_transition_to(Self::Cancelled)
    }

    /// Whether no further status change is possible.
    pub fn is_terminal(self) -> bool {
        self.allowed_next().is_empty()
    }

    /// The event recorded when an order enters this status.
    pub fn event_type(self) -> EventType {
        match self {
            Self::Validated => EventType::OrderValidated,
            Self::Reserved => EventType::OrderReserved,
            Self::Backordered => EventType::OrderBackordered,
            Self::Rejected => EventType::OrderRejected,
            Self::Routed => EventType::OrderRouted,
            Self::PartiallyShipped => EventType::OrderPartiallyShipped,
            Self::Shipped => EventType::OrderShipped,
            Self::Delivered => EventType::OrderDelivered,
            Self::Cancelled => EventType::OrderCancelled,
        }
    }

    /// The status as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Validated => "validated",
            Self::Reserved => "reserved",
            Self::Backordered => "backordered",
            Self::Rejected => "rejected",
            Self::Routed => "routed",
            Self::PartiallyShipped => "partially_shipped",
            Self::Shipped => "shipped",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::OrderStatus::*;
    use super::*;

    #[test]
    fn happy_path_is_allowed() {
        let mut s = Validated;
        for next in [Reserved, Routed, PartiallyShipped, Shipped, Delivered] {
            s = s.transition(next).unwrap();
        }
        assert_eq!(s, Delivered);
        assert!(Validated
            .transition(Backordered)
            .unwrap()
            .can_transition_to(Reserved));
    }

    #[test]
    fn illegal_moves_are_typed_errors() {
        assert_eq!(
            Validated.transition(Shipped),
            Err(IllegalTransition {
                from: Validated,
                to: Shipped
            })
        );
        assert!(Shipped.transition(Cancelled).is_err());
        assert!(Delivered.transition(Shipped).is_err());
        assert!(Reserved.transition(Reserved).is_err());
        assert_eq!(
            IllegalTransition {
                from: Shipped,
                to: Cancelled
            }
            .to_string(),
            "an order cannot go from shipped to cancelled"
        );
    }

    #[test]
    fn cancellable_exactly_until_shipped() {
        let cancellable: Vec<_> = OrderStatus::ALL
            .into_iter()
            .filter(|s| s.is_cancellable())
            .collect();
        assert_eq!(cancellable, [Validated, Reserved, Backordered, Routed]);
    }

    #[test]
    fn terminal_states_and_event_names() {
        let terminal: Vec<_> = OrderStatus::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(terminal, [Rejected, Delivered, Cancelled]);
        for s in OrderStatus::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
            assert_eq!(s.event_type().status(), Some(s));
        }
    }
}
