//! Return authorisations: requested → received → inspected → refunded, with per-line
//! acceptance deciding both the refund and what goes back on the shelf.
//!
//! Only units that left a warehouse can come back: a request is capped per line by the units
//! shipped (shipments shipped or delivered) less the units earlier returns of the order
//! already cover, never by the units ordered — an unshipped unit refunded and restocked
//! would be money and stock that do not exist.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::EventType;
use crate::ids::{LocationId, OrderId, ReturnId, Sku};
use crate::order::Order;
use crate::quantity::Quantity;
use crate::refund::RefundItem;

/// Why a return step was refused. A refused step changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReturnError {
    /// Nothing of the order has shipped yet, so nothing can be returned (cancel instead).
    #[error("nothing of this order has shipped yet, so nothing can be returned")]
    NothingShipped,
    /// A return covers at least one line.
    #[error("a return must include at least one line")]
    Empty,
    /// The line index does not exist on the order.
    #[error("order has no line {0}")]
    UnknownLine(usize),
    /// A line appears twice in one request or inspection.
    #[error("line {0} is listed twice")]
    DuplicateLine(usize),
    /// More units than were shipped and not already returned.
    #[error("line {line}: {requested} units requested but only {remaining} shipped and not yet returned")]
    QuantityExceeded {
        /// The line index.
        line: usize,
        /// Units asked for.
        requested: u32,
        /// Units shipped and not yet returned.
        remaining: u32,
    },
    /// The step does not follow from the current state.
    #[error("return is {actual}, expected {expected}")]
    WrongState {
        /// The state the step needs.
        expected: ReturnState,
        /// The current state.
        actual: ReturnState,
    },
    /// An inspection must decide every returned line, and only those.
    #[error("inspection must cover exactly the returned lines (line {0})")]
    InspectionMismatch(usize),
    /// More units accepted than were returned on the line.
    #[error("line {line}: {accepted} units accepted but only {returned} returned")]
    AcceptedExceeds {
        /// The line index.
        line: usize,
        /// Units accepted.
        accepted: u32,
        /// Units returned.
        returned: u32,
    },
    /// Nothing was accepted, so there is nothing to refund.
    #[error("no units were accepted")]
    NothingAccepted,
}

/// Where a return is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ReturnState {
    /// The customer asked; the parcel is on its way.
    Requested,
    /// The parcel arrived.
    Received,
    /// Each line was accepted or rejected.
    Inspected,
    /// The accepted lines were refunded. Terminal.
    Refunded,
}

impl ReturnState {
    /// The event recorded when a return enters this state.
    pub fn event_type(self) -> EventType {
        match self {
            Self::Requested => EventType::ReturnRequested,
            Self::Received => EventType::ReturnReceived,
            Self::Inspected => EventType::ReturnInspected,
            Self::Refunded => EventType::ReturnRefunded,
        }
    }
}

impl std::fmt::Display for ReturnState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Requested => "requested",
            Self::Received => "received",
            Self::Inspected => "inspected",
            Self::Refunded => "refunded",
        })
    }
}

/// What the customer sends back: units of one order line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReturnedItem {
    /// Index into the order's lines.
    pub line: usize,
    /// Units returned.
    pub quantity: Quantity,
}

/// The inspection verdict for one returned line: how many units are accepted (the rest are
/// rejected, e.g. damaged or not the item sold).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inspection {
    /// Index into the order's lines.
    pub line: usize,
    /// Units accepted (0 rejects the whole line).
    pub accepted: u32,
}

/// One line of a return.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReturnLine {
    /// Index into the order's lines.
    pub line: usize,
    /// The SKU (copied from the order so restocking needs no lookup).
    pub sku: Sku,
    /// Units returned.
    pub quantity: Quantity,
    /// Units accepted at inspection; `None` before.
    pub accepted: Option<u32>,
}

/// Units of one SKU going back on hand at one location.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RestockPlacement {
    /// The SKU.
    pub sku: Sku,
    /// Where it goes back on hand (a location that shipped it).
    pub location: LocationId,
    /// Units.
    pub units: u32,
}

/// Where the accepted units of one returned line go back on hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LineRestock {
    /// The order line.
    pub line: usize,
    /// Units per location.
    pub placements: Vec<RestockPlacement>,
}

/// The data of `return.requested`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnRequested {
    /// The return.
    pub return_id: ReturnId,
    /// What comes back.
    pub lines: Vec<ReturnLine>,
    /// The customer's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The data of `return.received`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnReceived {
    /// The return.
    pub return_id: ReturnId,
}

/// The data of `return.inspected`: the verdicts and where accepted units go back on hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnInspected {
    /// The return.
    pub return_id: ReturnId,
    /// The returned lines with their accepted units.
    pub lines: Vec<ReturnLine>,
    /// The restock plan (applied once per line and location).
    pub restock: Vec<LineRestock>,
}

/// The data of `return.refunded`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReturnRefunded {
    /// The return.
    pub return_id: ReturnId,
    /// The refund of its accepted units.
    pub refund: crate::refund::Refund,
}

/// A return authorisation for part of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ReturnRepr", into = "ReturnRepr")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReturnAuthorization {
    id: ReturnId,
    order_id: OrderId,
    state: ReturnState,
    lines: Vec<ReturnLine>,
}

impl ReturnAuthorization {
    /// Opens a return for `items` of `order`. `shipped[i]` is how many units of line `i` have
    /// shipped (missing entries: none); `previous` are the order's earlier returns: units
    /// they cover (accepted units once inspected) cannot be returned again.
    ///
    /// # Errors
    /// [`ReturnError::NothingShipped`] when no unit has shipped; otherwise when the request
    /// is empty, names an unknown or duplicate line, or asks for more units of a line than
    /// shipped and are not yet returned ([`ReturnError::QuantityExceeded`]).
    pub fn request(
        id: ReturnId,
        order: &Order,
        shipped: &[u32],
        items: &[ReturnedItem],
        previous: &[ReturnAuthorization],
    ) -> Result<Self, ReturnError> {
        if shipped.iter().all(|&u| u == 0) {
            return Err(ReturnError::NothingShipped);
        }
        if items.is_empty() {
            return Err(ReturnError::Empty);
        }
        let mut taken: BTreeMap<usize, u32> = BTreeMap::new();
        for r in previous.iter().filter(|r| r.order_id == order.id()) {
            for l in &r.lines {
                *taken.entry(l.line).or_insert(0) += l.accepted.unwrap_or(l.quantity.get());
            }
        }
        let mut lines = Vec::with_capacity(items.len());
        for item in items {
            let ordered = order
                .lines()
                .get(item.line)
                .ok_or(ReturnError::UnknownLine(item.line))?;
            if lines.iter().any(|l: &ReturnLine| l.line == item.line) {
                return Err(ReturnError::DuplicateLine(item.line));
            }
            let remaining = shipped
                .get(item.line)
                .copied()
                .unwrap_or(0)
                .min(ordered.quantity().get())
                .saturating_sub(taken.get(&item.line).copied().unwrap_or(0));
            if item.quantity.get() > remaining {
                return Err(ReturnError::QuantityExceeded {
                    line: item.line,
                    requested: item.quantity.get(),
                    remaining,
                });
            }
            lines.push(ReturnLine {
                line: item.line,
                sku: ordered.sku().clone(),
                quantity: item.quantity,
                accepted: None,
            });
        }
        Ok(Self {
            id,
            order_id: order.id(),
            state: ReturnState::Requested,
            lines,
        })
    }

    /// A return as recorded earlier (e.g. replayed from the order's `return.*` events).
    ///
    /// # Errors
    /// [`ReturnError`] when the lines do not fit the state (verdicts before inspection, none
    /// after, duplicate lines, nothing accepted on a refunded return).
    pub fn restore(
        id: ReturnId,
        order_id: OrderId,
        state: ReturnState,
        lines: Vec<ReturnLine>,
    ) -> Result<Self, ReturnError> {
        Self::try_from(ReturnRepr {
            id,
            order_id,
            state,
            lines,
        })
    }

    /// The return's id.
    pub const fn id(&self) -> ReturnId {
        self.id
    }

    /// The order.
    pub const fn order_id(&self) -> OrderId {
        self.order_id
    }

    /// The current state.
    pub const fn state(&self) -> ReturnState {
        self.state
    }

    /// The returned lines.
    pub fn lines(&self) -> &[ReturnLine] {
        &self.lines
    }

    fn expect(&self, expected: ReturnState) -> Result<(), ReturnError> {
        if self.state == expected {
            Ok(())
        } else {
            Err(ReturnError::WrongState {
                expected,
                actual: self.state,
            })
        }
    }

    /// The parcel arrived.
    ///
    /// # Errors
    /// [`ReturnError::WrongState`] unless requested.
    pub fn receive(&self) -> Result<Self, ReturnError> {
        self.expect(ReturnState::Requested)?;
        Ok(Self {
            state: ReturnState::Received,
            ..self.clone()
        })
    }

    /// Records the verdict for every line.
    ///
    /// # Errors
    /// [`ReturnError::WrongState`] unless received; [`ReturnError::InspectionMismatch`] or
    /// [`ReturnError::DuplicateLine`] unless each returned line is decided exactly once;
    /// [`ReturnError::AcceptedExceeds`] when accepting more than was returned.
    pub fn inspect(&self, verdicts: &[Inspection]) -> Result<Self, ReturnError> {
        self.expect(ReturnState::Received)?;
        let mut decided: BTreeMap<usize, u32> = BTreeMap::new();
        for v in verdicts {
            if decided.insert(v.line, v.accepted).is_some() {
                return Err(ReturnError::DuplicateLine(v.line));
            }
        }
        let mut lines = self.lines.clone();
        for l in &mut lines {
            let accepted = decided
                .remove(&l.line)
                .ok_or(ReturnError::InspectionMismatch(l.line))?;
            if accepted > l.quantity.get() {
                return Err(ReturnError::AcceptedExceeds {
                    line: l.line,
                    accepted,
                    returned: l.quantity.get(),
                });
            }
            l.accepted = Some(accepted);
        }
        if let Some((&extra, _)) = decided.iter().next() {
            return Err(ReturnError::InspectionMismatch(extra));
        }
        Ok(Self {
            state: ReturnState::Inspected,
            lines,
            ..self.clone()
        })
    }

    /// What to refund: the accepted units of each line, to pass to
    /// [`crate::RefundLedger::refund`].
    ///
    /// # Errors
    /// [`ReturnError::WrongState`] unless inspected; [`ReturnError::NothingAccepted`] when
    /// every unit was rejected.
    pub fn refund_items(&self) -> Result<Vec<RefundItem>, ReturnError> {
        self.expect(ReturnState::Inspected)?;
        let items: Vec<RefundItem> = self
            .lines
            .iter()
            .filter_map(|l| {
                let accepted = Quantity::new(u64::from(l.accepted?)).ok()?;
                Some(RefundItem::Line {
                    line: l.line,
                    quantity: accepted,
                })
            })
            .collect();
        if items.is_empty() {
            return Err(ReturnError::NothingAccepted);
        }
        Ok(items)
    }

    /// Marks the accepted lines as refunded.
    ///
    /// # Errors
    /// As [`ReturnAuthorization::refund_items`].
    pub fn mark_refunded(&self) -> Result<Self, ReturnError> {
        self.refund_items()?;
        Ok(Self {
            state: ReturnState::Refunded,
            ..self.clone()
        })
    }

    /// Units to put back into stock per SKU: the accepted units, once inspected (empty
    /// before).
    pub fn restock(&self) -> BTreeMap<Sku, u32> {
        let mut out = BTreeMap::new();
        for l in &self.lines {
            if let Some(accepted) = l.accepted.filter(|&a| a > 0) {
                *out.entry(l.sku.clone()).or_insert(0) += accepted;
            }
        }
        out
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReturnRepr {
    id: ReturnId,
    order_id: OrderId,
    state: ReturnState,
    lines: Vec<ReturnLine>,
}

impl TryFrom<ReturnRepr> for ReturnAuthorization {
    type Error = ReturnError;
    fn try_from(r: ReturnRepr) -> Result<Self, ReturnError> {
        if r.lines.is_empty() {
            return Err(ReturnError::Empty);
        }
        let inspected = matches!(r.state, ReturnState::Inspected | ReturnState::Refunded);
        for (i, l) in r.lines.iter().enumerate() {
            if r.lines[..i].iter().any(|o| o.line == l.line) {
                return Err(ReturnError::DuplicateLine(l.line));
            }
            match l.accepted {
                Some(accepted) if !inspected || accepted > l.quantity.get() => {
                    return Err(ReturnError::InspectionMismatch(l.line))
                }
                None if inspected => return Err(ReturnError::InspectionMismatch(l.line)),
                _ => {}
            }
        }
        if r.state == ReturnState::Refunded && r.lines.iter().all(|l| l.accepted == Some(0)) {
            return Err(ReturnError::NothingAccepted);
        }
        Ok(Self {
            id: r.id,
            order_id: r.order_id,
            state: r.state,
            lines: r.lines,
        })
    }
}

impl From<ReturnAuthorization> for ReturnRepr {
    fn from(r: ReturnAuthorization) -> Self {
        ReturnRepr {
            id: r.id,
            order_id: r.order_id,
            state: r.state,
            lines: r.lines,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::currency::Currency;
    use crate::money::Money;
    use crate::refund::RefundLedger;
    use chrono::{TimeZone, Utc};
    use serde_json::json;
    use uuid::Uuid;

    fn order() -> Order {
        let body = json!({
            "channel": "web",
            "customer": {"email": "a@example.com"},
            "currency": "USD",
            "lines": [
                {"sku": "A", "quantity": 2, "unit_price": "10.00"},
                {"sku": "B", "quantity": 1, "unit_price": "5.00"}
            ],
            "shipping": {"method": "pickup", "amount": "0.00", "pickup_location": "store-1"},
            "tax": "0.00",
            "totals": {"subtotal": "25.00", "discount": "0.00", "shipping": "0.00", "tax": "0.00", "grand_total": "25.00"},
            "payment": {"reference": "pi_1", "status": "captured", "amount": "25.00"}
        });
        Order::from_request(
            &body,
            OrderId::new(Uuid::from_u128(1)),
            Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap(),
        )
        .unwrap()
    }

    fn item(line: usize, q: u64) -> ReturnedItem {
        ReturnedItem {
            line,
            quantity: Quantity::new(q).unwrap(),
        }
    }

    fn rid(n: u128) -> ReturnId {
        ReturnId::new(Uuid::from_u128(n))
    }

    #[test]
    fn full_flow_refunds_and_restocks_accepted_units() {
        let o = order();
        let r = ReturnAuthorization::request(rid(1), &o, &[2, 1], &[item(0, 2), item(1, 1)], &[])
            .unwrap();
        assert_eq!(r.state(), ReturnState::Requested);
        assert!(r.restock().is_empty());
        assert!(matches!(
            r.inspect(&[]),
            Err(ReturnError::WrongState { .. })
        ));
        let r = r.receive().unwrap();
        let r = r
            .inspect(&[
                Inspection {
                    line: 0,
                    accepted: 1,
                },
                Inspection {
                    line: 1,
                    accepted: 0,
                },
            ])
            .unwrap();
        assert_eq!(r.restock(), BTreeMap::from([(Sku::parse("A").unwrap(), 1)]));
        let items = r.refund_items().unwrap();
        assert_eq!(
            items,
            [RefundItem::Line {
                line: 0,
                quantity: Quantity::ONE
            }]
        );
        let (_, refund) = RefundLedger::for_order(&o).refund(&o, &items).unwrap();
        assert_eq!(refund.amount, Money::parse("10.00", Currency::USD).unwrap());
        let done = r.mark_refunded().unwrap();
        assert_eq!(done.state().event_type(), EventType::ReturnRefunded);
        assert!(done.receive().is_err());
        let json = serde_json::to_string(&done).unwrap();
        assert_eq!(
            serde_json::from_str::<ReturnAuthorization>(&json).unwrap(),
            done
        );
    }

    #[test]
    fn requests_are_checked_against_the_order_and_earlier_returns() {
        let o = order();
        let req = |items: &[ReturnedItem], prev: &[ReturnAuthorization]| {
            ReturnAuthorization::request(rid(2), &o, &[2, 1], items, prev)
        };
        assert_eq!(
            ReturnAuthorization::request(rid(2), &o, &[0, 0], &[item(0, 1)], &[]),
            Err(ReturnError::NothingShipped)
        );
        assert_eq!(
            ReturnAuthorization::request(rid(2), &o, &[], &[item(0, 1)], &[]),
            Err(ReturnError::NothingShipped)
        );
        // Line 0 shipped one of its two units (a split order): the unshipped one cannot
        // come back, nor can line 1, which has not shipped at all.
        let split =
            |items: &[ReturnedItem]| ReturnAuthorization::request(rid(2), &o, &[1, 0], items, &[]);
        assert_eq!(
            split(&[item(0, 2)]),
            Err(ReturnError::QuantityExceeded {
                line: 0,
                requested: 2,
                remaining: 1
            })
        );
        assert_eq!(
            split(&[item(1, 1)]),
            Err(ReturnError::QuantityExceeded {
                line: 1,
                requested: 1,
                remaining: 0
            })
        );
        assert!(split(&[item(0, 1)]).is_ok());
        assert_eq!(req(&[], &[]), Err(ReturnError::Empty));
        assert_eq!(req(&[item(9, 1)], &[]), Err(ReturnError::UnknownLine(9)));
        assert_eq!(
            req(&[item(0, 1), item(0, 1)], &[]),
            Err(ReturnError::DuplicateLine(0))
        );
        assert!(matches!(
            req(&[item(0, 3)], &[]),
            Err(ReturnError::QuantityExceeded { remaining: 2, .. })
        ));
        // An open return for one unit leaves one; once inspected, only accepted units count.
        let first = req(&[item(0, 1)], &[]).unwrap();
        assert!(matches!(
            req(&[item(0, 2)], std::slice::from_ref(&first)),
            Err(ReturnError::QuantityExceeded { remaining: 1, .. })
        ));
        let rejected = first
            .receive()
            .unwrap()
            .inspect(&[Inspection {
                line: 0,
                accepted: 0,
            }])
            .unwrap();
        assert!(req(&[item(0, 2)], std::slice::from_ref(&rejected)).is_ok());
        assert_eq!(rejected.refund_items(), Err(ReturnError::NothingAccepted));
    }

    #[test]
    fn inspections_must_match_the_returned_lines() {
        let o = order();
        let r = ReturnAuthorization::request(rid(3), &o, &[2, 1], &[item(0, 1)], &[])
            .unwrap()
            .receive()
            .unwrap();
        assert_eq!(r.inspect(&[]), Err(ReturnError::InspectionMismatch(0)));
        assert_eq!(
            r.inspect(&[
                Inspection {
                    line: 0,
                    accepted: 1
                },
                Inspection {
                    line: 1,
                    accepted: 0
                }
            ]),
            Err(ReturnError::InspectionMismatch(1))
        );
        assert!(matches!(
            r.inspect(&[Inspection {
                line: 0,
                accepted: 2
            }]),
            Err(ReturnError::AcceptedExceeds { .. })
        ));
        assert_eq!(
            r.inspect(&[
                Inspection {
                    line: 0,
                    accepted: 1
                },
                Inspection {
                    line: 0,
                    accepted: 1
                }
            ]),
            Err(ReturnError::DuplicateLine(0))
        );
    }
}
