//! Refunds: what a request is worth, the ledger that keeps them within what was captured,
//! and the payment dimension of an order ([`PaymentState`], derived from the ledger) with the
//! typed payload of the refund events. The transitions that use them (cancel, refund, the
//! return steps) are methods of `OrderRecord` in `order_record/payment.rs`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{ReturnId, Sku};
use crate::money::{Money, MoneyError};
use crate::order::Order;
use crate::order_state::OrderStatus;
use crate::quantity::Quantity;
use crate::returns::{ReturnError, ReturnState};
use crate::timeline::TimelineError;

/// Where the order's money stands — its own dimension, beside the order status and the
/// fulfilment status (as commercetools' `PaymentState` or Medusa's `payment_status`).
/// Derived from the refund ledger, never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PaymentState {
    /// Funds are held, not taken (nothing can be refunded yet).
    Authorized,
    /// The order was cancelled before anything was captured: the hold is given up.
    Voided,
    /// Captured, nothing refunded.
    Paid,
    /// Part of what was captured has been refunded.
    PartiallyRefunded,
    /// Everything captured has been refunded.
    Refunded,
    /// Nothing authorized yet (a marketplace order paid later).
    Pending,
    /// Part of the amount is captured, the rest is outstanding (nothing refunded).
    PartiallyPaid,
}

impl PaymentState {
    /// The state of an order's money, from its ledger and whether it was cancelled.
    pub fn of(ledger: &RefundLedger, cancelled: bool) -> PaymentState {
        if ledger.captured().is_zero() {
            if cancelled {
                PaymentState::Voided
            } else {
                PaymentState::Authorized
            }
        } else if ledger.is_fully_refunded() {
            PaymentState::Refunded
        } else if ledger.refunded().is_zero() {
            PaymentState::Paid
        } else {
            PaymentState::PartiallyRefunded
        }
    }

    /// The state as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authorized => "authorized",
            Self::Voided => "voided",
            Self::Paid => "paid",
            Self::PartiallyRefunded => "partially_refunded",
            Self::Refunded => "refunded",
            Self::Pending => "pending",
            Self::PartiallyPaid => "partially_paid",
        }
    }
}

impl std::fmt::Display for PaymentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What caused a refund. Recorded on the refund's event, so the same cause arriving again (a
/// retried request, a redelivery, a second cancel) finds its refund instead of booking
/// another: no refund twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cause", rename_all = "snake_case")]
pub enum RefundCause {
    /// `POST /v1/orders/{id}/refunds` with this `Idempotency-Key`.
    Request {
        /// The request's key.
        idempotency_key: String,
    },
    /// The automatic refund of a captured payment when the order is cancelled.
    Cancellation,
    /// The accepted units of a return, at inspection.
    Return {
        /// The return.
        return_id: ReturnId,
    },
}

/// The data of `order.partially_refunded` / `order.refunded`: the refund, its cause, and the
/// totals right after it (amounts as decimal strings in `currency`, as the API writes them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefundRecorded {
    /// Why.
    #[serde(flatten)]
    pub cause: RefundCause,
    /// The caller's free-text reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What was refunded and how much.
    pub refund: Refund,
    /// Refunded so far, this refund included.
    pub refunded_total: String,
    /// Captured minus refunded, after this refund.
    pub refundable: String,
    /// The order's currency code.
    pub currency: String,
    /// The payment dimension after this refund.
    pub payment_status: PaymentState,
}

/// Why a cancellation, refund or return step was refused. A refused step changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// Something has shipped: the order can no longer be cancelled.
    #[error("an order that is {0} cannot be cancelled; request a return or a refund instead")]
    NotCancellable(OrderStatus),
    /// Nothing has shipped and the order is not cancelled: it is cancelled, not refunded.
    #[error("an order that is {0} cannot be refunded; cancel it instead, or wait until it ships")]
    NotRefundable(OrderStatus),
    /// Everything captured has been refunded already.
    #[error("the order is already fully refunded")]
    FullyRefunded,
    /// The ledger refused the refund.
    #[error(transparent)]
    Refund(#[from] RefundError),
    /// The return step was refused.
    #[error(transparent)]
    Return(#[from] ReturnError),
    /// The order has no return with this id.
    #[error("order has no return {0}")]
    UnknownReturn(ReturnId),
    /// The return was inspected before, with other verdicts.
    #[error("the return was already {0} with different verdicts")]
    VerdictsDiffer(ReturnState),
    /// An accepted line's SKU never shipped from anywhere, so it has nowhere to go back to.
    #[error("line {line} ({sku}) never shipped, so it cannot be restocked")]
    NowhereToRestock {
        /// The order line.
        line: usize,
        /// Its SKU.
        sku: Sku,
    },
    /// The event could not be recorded (a corrupted timeline).
    #[error(transparent)]
    Timeline(#[from] TimelineError),
    /// An event payload could not be encoded.
    #[error("event payload: {0}")]
    Payload(String),
}

/// Whether an order in `status` with this ledger takes a refund at all (before the items are
/// valued): only once something shipped, or after a cancellation, and not once everything
/// captured is back.
///
/// # Errors
/// [`PaymentError::NotRefundable`], [`PaymentError::FullyRefunded`].
pub fn refund_allowed(status: OrderStatus, ledger: &RefundLedger) -> Result<(), PaymentError> {
    if !matches!(
        status,
        OrderStatus::PartiallyShipped
            | OrderStatus::Shipped
            | OrderStatus::Delivered
            | OrderStatus::Cancelled
    ) {
        return Err(PaymentError::NotRefundable(status));
    }
    if ledger.is_fully_refunded() {
        return Err(PaymentError::FullyRefunded);
    }
    Ok(())
}

/// Why a refund was refused. A refused refund changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefundError {
    /// The request has no items.
    #[error("a refund needs at least one item")]
    Empty,
    /// Nothing has been captured, so there is nothing to refund (void the authorisation).
    #[error("the payment has not been captured")]
    NothingCaptured,
    /// The line index does not exist on the order.
    #[error("order has no line {line}")]
    UnknownLine {
        /// The requested index.
        line: usize,
    },
    /// More units than remain unrefunded on the line.
    #[error("line {line}: {requested} units requested but only {remaining} remain unrefunded")]
    QuantityExceeded {
        /// The line index.
        line: usize,
        /// Units asked for.
        requested: u32,
        /// Units not yet refunded.
        remaining: u32,
    },
    /// Shipping can be refunded once.
    #[error("shipping has already been refunded")]
    ShippingAlreadyRefunded,
    /// The request is worth nothing.
    #[error("the refund amount is zero")]
    ZeroAmount,
    /// The refund would exceed captured minus already refunded.
    #[error("refund of {requested} exceeds the refundable {refundable}")]
    ExceedsRefundable {
        /// The amount asked for.
        requested: Money,
        /// Captured minus already refunded.
        refundable: Money,
    },
    /// An amount was in the wrong currency or out of range.
    #[error(transparent)]
    Money(#[from] MoneyError),
}

/// One part of a refund request.
///
/// JSON: `{"kind": "line", "line": 0, "quantity": 1}`, `{"kind": "shipping"}` or
/// `{"kind": "amount", "amount": {"amount": "5.00", "currency": "USD"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RefundItem {
    /// Units of an order line, valued at their share of the line's net (after the line
    /// discount). Shares round down per unit count and add up exactly to the net once every
    /// unit is refunded.
    Line {
        /// Index into the order's lines.
        line: usize,
        /// Units to refund.
        quantity: Quantity,
    },
    /// The whole shipping amount.
    Shipping,
    /// An arbitrary goodwill amount.
    Amount {
        /// The amount, in the order's currency.
        amount: Money,
    },
}

/// A refund that was accepted: its amount and what it covered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Refund {
    /// Total to pay back.
    pub amount: Money,
    /// What it is for.
    pub items: Vec<RefundItem>,
}

/// What has been captured and refunded on an order, and which lines and shipping were
/// refunded. Invariant: `refunded ≤ captured`, both in the order's currency.
///
/// Each operation returns the new ledger, so a handler can store it with compare-and-swap
/// and a concurrent second refund cannot pass the cap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "LedgerRepr", into = "LedgerRepr")]
pub struct RefundLedger {
    captured: Money,
    refunded: Money,
    line_units: BTreeMap<usize, u32>,
    shipping_refunded: bool,
}

impl RefundLedger {
    /// A ledger with `captured` and nothing refunded.
    pub fn new(captured: Money) -> Self {
        Self {
            captured,
            refunded: Money::zero(captured.currency()),
            line_units: BTreeMap::new(),
            shipping_refunded: false,
        }
    }

    /// The ledger of a new order: captured is the payment amount if captured, else zero.
    pub fn for_order(order: &Order) -> Self {
        Self::new(order.payment().captured())
    }

    /// Total captured.
    pub const fn captured(&self) -> Money {
        self.captured
    }

    /// Total refunded so far.
    pub const fn refunded(&self) -> Money {
        self.refunded
    }

    /// Captured minus refunded.
    pub fn refundable(&self) -> Money {
        // Never fails: the invariant keeps refunded ≤ captured in one currency.
        self.captured
            .checked_sub(self.refunded)
            .unwrap_or(Money::zero(self.captured.currency()))
    }

    /// Units of a line refunded so far.
    pub fn units_refunded(&self, line: usize) -> u32 {
        self.line_units.get(&line).copied().unwrap_or(0)
    }

    /// Whether shipping was refunded.
    pub const fn shipping_refunded(&self) -> bool {
        self.shipping_refunded
    }

    /// Whether everything captured has been refunded (the refund records `order.refunded`,
    /// else `order.partially_refunded`).
    pub fn is_fully_refunded(&self) -> bool {
        !self.captured.is_zero() && self.refunded == self.captured
    }

    /// Records a later capture (e.g. at shipment).
    ///
    /// # Errors
    /// [`RefundError::Money`] on a currency mismatch or overflow.
    pub fn capture(&self, amount: Money) -> Result<Self, RefundError> {
        Ok(Self {
            captured: self.captured.checked_add(amount)?,
            ..self.clone()
        })
    }

    /// Values `items` against `order` without recording anything.
    ///
    /// # Errors
    /// As [`RefundLedger::refund`].
    pub fn quote(&self, order: &Order, items: &[RefundItem]) -> Result<Money, RefundError> {
        self.refund(order, items).map(|(_, r)| r.amount)
    }

    /// Values `items` against `order` and records them.
    ///
    /// # Errors
    /// [`RefundError`] when the request is empty or zero, names a missing line, refunds more
    /// units than remain on a line or shipping twice, nothing is captured, or the total
    /// exceeds captured minus already refunded.
    pub fn refund(
        &self,
        order: &Order,
        items: &[RefundItem],
    ) -> Result<(RefundLedger, Refund), RefundError> {
        if items.is_empty() {
            return Err(RefundError::Empty);
        }
        if self.captured.is_zero() {
            return Err(RefundError::NothingCaptured);
        }
        let mut next = self.clone();
        let mut amount = Money::zero(order.currency());
        for item in items {
            let value = match item {
                RefundItem::Line { line, quantity } => {
                    let l = order
                        .lines()
                        .get(*line)
                        .ok_or(RefundError::UnknownLine { line: *line })?;
                    let whole = l.quantity().get();
                    let done = next.units_refunded(*line);
                    let remaining = whole - done;
                    if quantity.get() > remaining {
                        return Err(RefundError::QuantityExceeded {
                            line: *line,
                            requested: quantity.get(),
                            remaining,
                        });
                    }
                    let after = done + quantity.get();
                    next.line_units.insert(*line, after);
                    l.net()
                        .share(after, whole)?
                        .checked_sub(l.net().share(done, whole)?)?
                }
                RefundItem::Shipping => {
                    if next.shipping_refunded {
                        return Err(RefundError::ShippingAlreadyRefunded);
                    }
                    next.shipping_refunded = true;
                    order.shipping().amount()
                }
                RefundItem::Amount { amount } => *amount,
            };
            amount = amount.checked_add(value)?;
        }
        if amount.is_zero() {
            return Err(RefundError::ZeroAmount);
        }
        let refundable = self.refundable();
        if amount.partial_cmp(&refundable) == Some(std::cmp::Ordering::Greater) {
            return Err(RefundError::ExceedsRefundable {
                requested: amount,
                refundable,
            });
        }
        next.refunded = self.refunded.checked_add(amount)?;
        Ok((
            next,
            Refund {
                amount,
                items: items.to_vec(),
            },
        ))
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LedgerRepr {
    captured: Money,
    refunded: Money,
    #[serde(default)]
    line_units: BTreeMap<usize, u32>,
    #[serde(default)]
    shipping_refunded: bool,
}

impl TryFrom<LedgerRepr> for RefundLedger {
    type Error = RefundError;
    fn try_from(r: LedgerRepr) -> Result<Self, RefundError> {
        // Validates currency match and refunded ≤ captured in one step.
        r.captured.checked_sub(r.refunded)?;
        Ok(Self {
            captured: r.captured,
            refunded: r.refunded,
            line_units: r.line_units,
            shipping_refunded: r.shipping_refunded,
        })
    }
}

impl From<RefundLedger> for LedgerRepr {
    fn from(l: RefundLedger) -> Self {
        LedgerRepr {
            captured: l.captured,
            refunded: l.refunded,
            line_units: l.line_units,
            shipping_refunded: l.shipping_refunded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::currency::Currency;
    use crate::ids::OrderId;
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;
    use serde_json::json;
    use uuid::Uuid;

    fn usd(s: &str) -> Money {
        Money::parse(s, Currency::USD).unwrap()
    }

    /// Two lines: 3 × 10.00 with 1.00 off (net 29.00) and 1 × 5.00; shipping 4.99; tax 0.
    fn order(status: &str) -> Order {
        let body = json!({
            "channel": "web",
            "customer": {"email": "a@example.com"},
            "currency": "USD",
            "lines": [
                {"sku": "A", "quantity": 3, "unit_price": "10.00", "discount": "1.00"},
                {"sku": "B", "quantity": 1, "unit_price": "5.00"}
            ],
            "shipping": {"method": "standard", "amount": "4.99",
                         "address": {"country": "US", "postal_code": "94107", "line1": "1 Main", "city": "SF"}},
            "tax": "0.00",
            "totals": {"subtotal": "35.00", "discount": "1.00", "shipping": "4.99", "tax": "0.00", "grand_total": "38.99"},
            "payment": {"reference": "pi_1", "status": status, "amount": "38.99"}
        });
        Order::from_request(
            &body,
            OrderId::new(Uuid::from_u128(1)),
            Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap(),
        )
        .unwrap()
    }

    fn line(line: usize, q: u64) -> RefundItem {
        RefundItem::Line {
            line,
            quantity: Quantity::new(q).unwrap(),
        }
    }

    #[test]
    fn line_refunds_prorate_the_discounted_net_exactly() {
        let o = order("captured");
        let ledger = RefundLedger::for_order(&o);
        let (l1, r1) = ledger.refund(&o, &[line(0, 1)]).unwrap();
        assert_eq!(r1.amount, usd("9.66"));
        let (l2, r2) = l1.refund(&o, &[line(0, 1)]).unwrap();
        assert_eq!(r2.amount, usd("9.67"));
        let (l3, r3) = l2.refund(&o, &[line(0, 1), RefundItem::Shipping]).unwrap();
        assert_eq!(r3.amount, usd("14.66"));
        assert_eq!(l3.refunded(), usd("33.99"));
        assert_eq!(
            l3.refund(&o, &[line(0, 1)]),
            Err(RefundError::QuantityExceeded {
                line: 0,
                requested: 1,
                remaining: 0
            })
        );
        assert_eq!(
            l3.refund(&o, &[RefundItem::Shipping]),
            Err(RefundError::ShippingAlreadyRefunded)
        );
        let (done, _) = l3.refund(&o, &[line(1, 1)]).unwrap();
        assert!(done.is_fully_refunded());
        assert_eq!(done.refundable(), usd("0.00"));
    }

    #[test]
    fn caps_and_refusals() {
        let o = order("captured");
        let ledger = RefundLedger::for_order(&o);
        let amount = |s: &str| RefundItem::Amount { amount: usd(s) };
        assert!(matches!(
            ledger.refund(&o, &[amount("39.00")]),
            Err(RefundError::ExceedsRefundable { .. })
        ));
        assert_eq!(ledger.quote(&o, &[amount("38.99")]), Ok(usd("38.99")));
        assert_eq!(ledger.refund(&o, &[]), Err(RefundError::Empty));
        assert_eq!(
            ledger.refund(&o, &[amount("0")]),
            Err(RefundError::ZeroAmount)
        );
        assert_eq!(
            ledger.refund(&o, &[line(5, 1)]),
            Err(RefundError::UnknownLine { line: 5 })
        );
        let eur = RefundItem::Amount {
            amount: Money::parse("1", Currency::EUR).unwrap(),
        };
        assert!(matches!(
            ledger.refund(&o, &[eur]),
            Err(RefundError::Money(_))
        ));
        let uncaptured = order("authorized");
        assert_eq!(
            RefundLedger::for_order(&uncaptured).refund(&uncaptured, &[amount("1")]),
            Err(RefundError::NothingCaptured)
        );
        let captured_later = RefundLedger::for_order(&uncaptured)
            .capture(usd("38.99"))
            .unwrap();
        assert!(captured_later.refund(&uncaptured, &[amount("1")]).is_ok());
    }

    #[test]
    fn items_and_ledgers_serialize() {
        let json = r#"[{"kind":"line","line":0,"quantity":2},{"kind":"shipping"},{"kind":"amount","amount":{"amount":"1.50","currency":"USD"}}]"#;
        let items: Vec<RefundItem> = serde_json::from_str(json).unwrap();
        assert_eq!(serde_json::to_string(&items).unwrap(), json);
        let o = order("captured");
        let (ledger, _) = RefundLedger::for_order(&o).refund(&o, &items).unwrap();
        let back: RefundLedger =
            serde_json::from_str(&serde_json::to_string(&ledger).unwrap()).unwrap();
        assert_eq!(back, ledger);
        let over = r#"{"captured":{"amount":"1.00","currency":"USD"},"refunded":{"amount":"2.00","currency":"USD"}}"#;
        assert!(serde_json::from_str::<RefundLedger>(over).is_err());
    }

    fn item() -> impl Strategy<Value = RefundItem> {
        prop_oneof![
            (0usize..3, 1u64..4).prop_map(|(l, q)| line(l, q)),
            Just(RefundItem::Shipping),
            (0u64..2_000).prop_map(|c| RefundItem::Amount {
                amount: Money::from_minor_units(c, Currency::USD).unwrap()
            }),
        ]
    }

    proptest! {
        /// Whatever is asked, in whatever order, the total refunded never exceeds what was
        /// captured and always equals the sum of the accepted refunds.
        #[test]
        fn never_refunds_more_than_captured(requests in proptest::collection::vec(proptest::collection::vec(item(), 1..4), 0..20)) {
            let o = order("captured");
            let mut ledger = RefundLedger::for_order(&o);
            let mut paid = Money::zero(Currency::USD);
            for items in requests {
                if let Ok((next, refund)) = ledger.refund(&o, &items) {
                    paid = paid.checked_add(refund.amount).unwrap();
                    ledger = next;
                }
                prop_assert!(ledger.refunded() <= ledger.captured());
                prop_assert_eq!(ledger.refunded(), paid);
            }
        }

        /// Refunding every unit and the shipping, in any split, returns exactly the lines' net
        /// plus shipping.
        #[test]
        fn full_line_refunds_add_up_exactly(splits in proptest::collection::vec(1u64..=3, 1..6)) {
            let o = order("captured");
            let mut ledger = RefundLedger::for_order(&o);
            let mut left = 3u64;
            for q in splits {
                let q = q.min(left);
                if q == 0 { break; }
                ledger = ledger.refund(&o, &[line(0, q)]).unwrap().0;
                left -= q;
            }
            if left > 0 {
                ledger = ledger.refund(&o, &[line(0, left)]).unwrap().0;
            }
            ledger = ledger.refund(&o, &[line(1, 1), RefundItem::Shipping]).unwrap().0;
            prop_assert_eq!(ledger.refunded(), usd("38.99"));
            prop_assert!(ledger.is_fully_refunded());
        }
    }
}
