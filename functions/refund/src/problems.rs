//! Domain refusals as RFC 9457 problems naming the offending field of the request.

use oms_domain::{
    Order, RefundError, RefundItem, RefundLedger, ReturnError, Violation, ViolationCode,
};
use oms_edge::Problem;

/// 422 listing every invalid field.
pub fn invalid(violations: &[Violation]) -> Problem {
    Problem::invalid("the request has invalid fields", violations)
}

fn one(field: impl Into<String>, code: ViolationCode, detail: impl Into<String>) -> Problem {
    let detail = detail.into();
    Problem::invalid(detail.clone(), &[Violation::new(field, code, detail)])
}

/// The index of the first item at which the ledger refuses (a refund is valued item by item,
/// so the shortest refused prefix ends at the culprit). `None` for whole-request refusals.
fn culprit(
    ledger: &RefundLedger,
    order: &Order,
    items: &[RefundItem],
    e: &RefundError,
) -> Option<usize> {
    if matches!(
        e,
        RefundError::Empty | RefundError::NothingCaptured | RefundError::ZeroAmount
    ) {
        return None;
    }
    (1..=items.len())
        .find(|&k| matches!(ledger.refund(order, &items[..k]), Err(ref e) if *e != RefundError::ZeroAmount))
        .map(|k| k - 1)
}

/// A refund the ledger refused, as a 422 naming the item field at fault:
/// `{items_at}/{i}/quantity` for too many units, `…/line` for an unknown line, `…/amount`
/// for an amount above what is refundable, `{items_at}` for the request as a whole.
/// `field_of(i, field)` turns an item index into its pointer (refund requests and return
/// inspections list items differently).
pub fn refund_refused(
    e: RefundError,
    ledger: &RefundLedger,
    order: &Order,
    items: &[RefundItem],
    items_at: &str,
    field_of: impl Fn(usize, &str) -> String,
) -> Problem {
    let (code, whole) = match &e {
        RefundError::Empty => (ViolationCode::Empty, true),
        RefundError::NothingCaptured | RefundError::ShippingAlreadyRefunded => {
            (ViolationCode::NotAllowed, false)
        }
        RefundError::Money(_) => (ViolationCode::InvalidFormat, false),
        _ => (ViolationCode::OutOfRange, false),
    };
    let at = culprit(ledger, order, items, &e)
        .filter(|_| !whole)
        .map(|i| {
            let field = match (&items[i], &e) {
                (RefundItem::Line { .. }, RefundError::UnknownLine { .. }) => "line",
                (RefundItem::Line { .. }, _) => "quantity",
                (RefundItem::Shipping, _) => "kind",
                (RefundItem::Amount { .. }, _) => "amount",
            };
            field_of(i, field)
        });
    one(
        at.unwrap_or_else(|| items_at.to_string()),
        code,
        e.to_string(),
    )
}

/// A return step the domain refused. `lines` are the order-line indexes of the request's
/// entries in body order (`/items/…` of a return request, `/lines/…` of an inspection), so
/// the problem can point at the entry; `units` names the entry's unit field.
pub fn return_refused(e: ReturnError, lines: &[usize], list_at: &str, units: &str) -> Problem {
    let first = |line: usize| lines.iter().position(|&l| l == line);
    let entry = |i: usize, field: &str| format!("{list_at}/{i}/{field}");
    let detail = e.to_string();
    match e {
        ReturnError::NotReturnable(_) | ReturnError::WrongState { .. } => Problem::conflict(detail),
        ReturnError::Empty | ReturnError::NothingAccepted => {
            one(list_at, ViolationCode::Empty, detail)
        }
        ReturnError::UnknownLine(l) => match first(l) {
            Some(i) => one(entry(i, "line"), ViolationCode::OutOfRange, detail),
            None => one(list_at, ViolationCode::OutOfRange, detail),
        },
        ReturnError::DuplicateLine(l) => {
            let second = lines
                .iter()
                .enumerate()
                .filter(|(_, &x)| x == l)
                .nth(1)
                .map(|(i, _)| i);
            match second {
                Some(i) => one(entry(i, "line"), ViolationCode::NotAllowed, detail),
                None => one(list_at, ViolationCode::NotAllowed, detail),
            }
        }
        ReturnError::InspectionMismatch(l) => match first(l) {
            Some(i) => one(
                entry(i, "line"),
                ViolationCode::NotAllowed,
                format!("line {l} is not part of this return"),
            ),
            None => one(
                list_at,
                ViolationCode::Missing,
                format!("line {l} was returned and needs a verdict"),
            ),
        },
        ReturnError::QuantityExceeded { line, .. } | ReturnError::AcceptedExceeds { line, .. } => {
            match first(line) {
                Some(i) => one(entry(i, units), ViolationCode::OutOfRange, detail),
                None => one(list_at, ViolationCode::OutOfRange, detail),
            }
        }
    }
}
