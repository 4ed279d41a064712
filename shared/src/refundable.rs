//! What can still be refunded of an order, from the order as a client reads it
//! (`GET /v1/orders/{id}`): the refund ledger is rebuilt by replaying the order's refunds
//! through [`RefundLedger::refund`], and every figure comes from the same ledger methods the
//! refund component uses, so a client shows what `POST /v1/orders/{id}/refunds` will accept.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::money::Money;
use crate::order::Order;
use crate::order_state::OrderStatus;
use crate::problem::ProblemDocument;
use crate::quantity::Quantity;
use crate::refund::{refund_allowed, Refund, RefundError, RefundItem, RefundLedger};
use crate::violation::{Violation, ViolationCode};

/// What can still be refunded (amounts as decimal strings in `currency`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Refundable {
    /// The order's currency code.
    pub currency: String,
    /// Captured so far.
    pub captured: String,
    /// Refunded so far.
    pub refunded: String,
    /// Captured minus refunded: the most any refund can still be.
    pub refundable: String,
    /// Whether the refund endpoint takes a refund now.
    pub allowed: bool,
    /// Why not, when it does not (the refund component's message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Each line: units refunded, units left and what refunding all of them is worth.
    pub lines: Vec<RefundableLine>,
    /// The shipping amount, refundable once.
    pub shipping: RefundableShipping,
}

/// One order line's refundable part.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RefundableLine {
    /// Index into the order's lines (`{"kind": "line", "line": …}`).
    pub line: usize,
    /// The SKU.
    pub sku: String,
    /// Units ordered.
    pub quantity: u32,
    /// Units refunded so far.
    pub refunded: u32,
    /// Units that can still be refunded.
    pub remaining: u32,
    /// What refunding every remaining unit is worth (its share of the line's net), capped by
    /// nothing: the refund as a whole is capped by `refundable`.
    pub amount: String,
}

/// The shipping part.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RefundableShipping {
    /// The shipping amount.
    pub amount: String,
    /// Whether it was refunded already.
    pub refunded: bool,
}

fn problem(field: &str, code: ViolationCode, detail: impl Into<String>) -> ProblemDocument {
    ProblemDocument::invalid(
        "the order is invalid",
        &[Violation::new(field, code, detail)],
    )
}

/// The order inside a view. A view carries `totals.tax` but not `tax` or `taxes_included`:
/// tax is taken from the totals, and taxes count as included when the totals only add up so.
fn order_of(view: &Map<String, Value>) -> Result<Order, ProblemDocument> {
    // The order fields of the view (the rest is what happened to it): what the order was
    // placed with, plus what intake assigned.
    let mut doc: Map<String, Value> = crate::order_intake::ASSIGNED_FIELDS
        .iter()
        .chain(crate::order_intake::REQUEST_FIELDS)
        .filter_map(|k| view.get(*k).map(|v| ((*k).to_string(), v.clone())))
        .collect();
    if !doc.contains_key("tax") {
        if let Some(tax) = view.get("totals").and_then(|t| t.get("tax")) {
            doc.insert("tax".into(), tax.clone());
        }
    }
    let guess_included = !doc.contains_key("taxes_included");
    let first = crate::order_intake::parse(&Value::Object(doc.clone()), None);
    match first {
        Err(v)
            if guess_included
                && v.contains("/totals/grand_total", ViolationCode::TotalMismatch) =>
        {
            doc.insert("taxes_included".into(), Value::Bool(true));
            crate::order_intake::parse(&Value::Object(doc), None)
                .map_err(|_| ProblemDocument::invalid("the order is invalid", &v.0))
        }
        other => other.map_err(|v| ProblemDocument::invalid("the order is invalid", &v.0)),
    }
}

/// A money field of the view: `{"amount": "5.00", "currency": "USD"}` as the server writes it
/// (a bare amount string is read too).
fn money_field(
    view: &Map<String, Value>,
    field: &str,
    order: &Order,
) -> Result<Money, ProblemDocument> {
    let path = format!("/{field}");
    let text = match view.get(field) {
        None | Some(Value::Null) => {
            return Err(problem(
                &path,
                ViolationCode::Missing,
                format!("{field} is required"),
            ))
        }
        Some(Value::String(s)) => s.as_str(),
        Some(Value::Object(m)) => {
            let currency = m.get("currency").and_then(Value::as_str);
            if currency != Some(order.currency().code()) {
                return Err(problem(
                    &format!("{path}/currency"),
                    ViolationCode::InvalidFormat,
                    format!("must be the order's currency {}", order.currency().code()),
                ));
            }
            m.get("amount").and_then(Value::as_str).ok_or_else(|| {
                problem(
                    &format!("{path}/amount"),
                    ViolationCode::InvalidType,
                    "must be a decimal string such as \"19.99\"",
                )
            })?
        }
        Some(_) => {
            return Err(problem(
                &path,
                ViolationCode::InvalidType,
                "must be an amount {\"amount\", \"currency\"}",
            ))
        }
    };
    Money::parse(text, order.currency())
        .map_err(|e| problem(&path, ViolationCode::InvalidFormat, e.to_string()))
}

/// What can still be refunded of the order `view` describes (`GET /v1/orders/{id}`: its order
/// fields, `status`, `refunds`, `refunded_total`, `refundable`; amounts as the server writes
/// them, `{"amount", "currency"}`).
///
/// # Errors
/// 422 "the order is invalid" naming the field that does not read as an order view.
pub fn refundable(view: &Value) -> Result<Refundable, ProblemDocument> {
    let Some(view) = view.as_object() else {
        return Err(problem(
            "",
            ViolationCode::InvalidType,
            "must be a JSON object",
        ));
    };
    let order = order_of(view)?;
    let status: OrderStatus = view
        .get("status")
        .ok_or_else(|| problem("/status", ViolationCode::Missing, "status is required"))
        .and_then(|s| {
            serde_json::from_value(s.clone())
                .map_err(|e| problem("/status", ViolationCode::InvalidFormat, e.to_string()))
        })?;
    let refunds: Vec<Refund> = match view.get("refunds") {
        None | Some(Value::Null) => Vec::new(),
        Some(r) => serde_json::from_value(r.clone())
            .map_err(|e| problem("/refunds", ViolationCode::InvalidFormat, e.to_string()))?,
    };
    // Captured = refunded + refundable, as the view reports the ledger; its line units and
    // shipping flag come from replaying the refunds.
    let refunded = money_field(view, "refunded_total", &order)?;
    let left = money_field(view, "refundable", &order)?;
    let captured = refunded
        .checked_add(left)
        .map_err(|e| problem("/refundable", ViolationCode::OutOfRange, e.to_string()))?;
    let mut ledger = RefundLedger::new(captured);
    for (i, r) in refunds.iter().enumerate() {
        ledger = ledger
            .refund(&order, &r.items)
            .map_err(|e| {
                problem(
                    &format!("/refunds/{i}"),
                    ViolationCode::NotAllowed,
                    e.to_string(),
                )
            })?
            .0;
    }
    if ledger.refunded() != refunded {
        return Err(problem(
            "/refunded_total",
            ViolationCode::TotalMismatch,
            format!("the refunds add up to {}", ledger.refunded().amount()),
        ));
    }
    let lines = order
        .lines()
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let done = ledger.units_refunded(i);
            let remaining = l.quantity().get().saturating_sub(done);
            let amount = match Quantity::new(u64::from(remaining)) {
                Err(_) => Money::zero(order.currency()),
                Ok(quantity) => {
                    let item = RefundItem::Line { line: i, quantity };
                    match ledger.quote(&order, std::slice::from_ref(&item)) {
                        Ok(a) => a,
                        Err(RefundError::ExceedsRefundable { requested, .. }) => requested,
                        Err(_) => Money::zero(order.currency()),
                    }
                }
            };
            RefundableLine {
                line: i,
                sku: l.sku().to_string(),
                quantity: l.quantity().get(),
                refunded: done,
                remaining,
                amount: amount.amount().to_string(),
            }
        })
        .collect();
    let allowed = refund_allowed(status, &ledger);
    Ok(Refundable {
        currency: order.currency().code().to_string(),
        captured: ledger.captured().amount().to_string(),
        refunded: ledger.refunded().amount().to_string(),
        refundable: ledger.refundable().amount().to_string(),
        allowed: allowed.is_ok(),
        reason: allowed.err().map(|e| e.to_string()),
        lines,
        shipping: RefundableShipping {
            amount: order.shipping().amount().amount().to_string(),
            refunded: ledger.shipping_refunded(),
        },
    })
}
