//! Domain refusals as RFC 9457 problems naming the offending field of the request.

use oms_domain::{
    Inspection, Order, OrderRecord, PaymentError, RefundError, RefundItem, RefundLedger,
    ReturnAuthorization, ReturnError, TimelineError, Violation, ViolationCode,
};
use oms_edge::{FunctionError, Problem};

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
        ReturnError::NothingShipped | ReturnError::WrongState { .. } => Problem::conflict(detail),
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

/// A refused cancellation, refund or return step: 409 when the order's or the return's
/// state forbids it, 404 for an unknown return, 422 for the ledger's and the return's own
/// refusals (without a field to name: see the request-specific mappings below), 500 for a
/// corrupted timeline.
pub fn payment(e: PaymentError) -> FunctionError {
    match e {
        PaymentError::Refund(e) => one("", ViolationCode::NotAllowed, e.to_string()).into(),
        PaymentError::Return(e) => return_refused(e, &[], "", "quantity").into(),
        PaymentError::UnknownReturn(id) => Problem::not_found("return", &id.to_string()).into(),
        PaymentError::Timeline(TimelineError::Illegal(t)) => {
            Problem::conflict(t.to_string()).into()
        }
        PaymentError::Timeline(_) | PaymentError::Payload(_) => {
            FunctionError::Internal(e.to_string())
        }
        other => Problem::conflict(other.to_string()).into(),
    }
}

/// A refused `POST …/refunds`, naming the `/items/{i}/…` field at fault. `record` is the
/// order as it was (a refused refund changes nothing).
pub fn refund_request(
    e: PaymentError,
    record: &OrderRecord,
    items: &[RefundItem],
) -> FunctionError {
    match e {
        PaymentError::Refund(e) => refund_refused(
            e,
            record.ledger(),
            record.order(),
            items,
            "/items",
            |i, f| format!("/items/{i}/{f}"),
        )
        .into(),
        other => payment(other),
    }
}

/// A refused `POST …/returns`, naming the `/items/{i}/…` field at fault (`lines` are the
/// order lines of the request's items, in body order).
pub fn return_request(e: PaymentError, lines: &[usize]) -> FunctionError {
    match e {
        PaymentError::Return(e) => return_refused(e, lines, "/items", "quantity").into(),
        other => payment(other),
    }
}

/// A refused inspection of `ra`, naming the `/lines/{i}/…` verdict at fault
/// (`verdict_lines` are the order lines of the verdicts, in body order). `record` is the
/// order as it was.
pub fn inspection(
    e: PaymentError,
    record: &OrderRecord,
    ra: &ReturnAuthorization,
    verdicts: &[Inspection],
    verdict_lines: &[usize],
) -> FunctionError {
    match e {
        PaymentError::Return(e) => return_refused(e, verdict_lines, "/lines", "accepted").into(),
        PaymentError::Refund(e) => {
            let items = ra
                .inspect(verdicts)
                .and_then(|r| r.refund_items())
                .unwrap_or_default();
            let field_of = |i: usize, field: &str| {
                let Some(RefundItem::Line { line, .. }) = items.get(i) else {
                    return format!("/lines/{i}/{field}");
                };
                let at = verdict_lines.iter().position(|l| l == line).unwrap_or(i);
                format!("/lines/{at}/accepted")
            };
            refund_refused(
                e,
                record.ledger(),
                record.order(),
                &items,
                "/lines",
                field_of,
            )
            .into()
        }
        other => payment(other),
    }
}
