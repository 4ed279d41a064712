//! Request bodies parsed into domain values, with every problem named by its JSON Pointer
//! (`/items/0/quantity`) so a rejection can list them all at once.

use oms_domain::{
    Currency, Money, Quantity, RefundItem, ReturnAuthorization, ReturnedItem, Violation,
    ViolationCode,
};
use serde_json::{Map, Value};

/// Longest accepted free-text reason.
const MAX_REASON: usize = 500;
/// Most items in one refund or return request.
const MAX_ITEMS: usize = 500;

/// `POST /v1/orders/{id}/refunds`: `{"items": [RefundItem, …], "reason": "…"?}`.
#[derive(Debug, Clone, PartialEq)]
pub struct RefundRequest {
    /// What to refund.
    pub items: Vec<RefundItem>,
    /// Why (kept on the timeline).
    pub reason: Option<String>,
}

/// `POST /v1/orders/{id}/returns`: `{"items": [{"line": 0, "quantity": 1}], "reason": "…"?}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReturnRequest {
    /// What comes back.
    pub items: Vec<ReturnedItem>,
    /// Why (kept on the timeline).
    pub reason: Option<String>,
}

/// `POST /v1/orders/{id}/cancel`: an optional `{"reason": "…"}` (an empty body is fine).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CancelRequest {
    /// Why (kept on the timeline).
    pub reason: Option<String>,
}

/// One verdict of `POST /v1/returns/{id}/inspection`: `{"line": 0, "accepted": true}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// The order line.
    pub line: usize,
    /// What was accepted.
    pub accepted: Accepted,
}

/// How much of a returned line passed inspection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// `true`: every returned unit.
    All,
    /// `false`: none.
    None,
    /// A number: that many units.
    Units(u32),
}

/// `POST /v1/returns/{id}/inspection`: `{"lines": [Verdict, …]}`.
#[derive(Debug, Clone, PartialEq)]
pub struct InspectionRequest {
    /// One verdict per returned line.
    pub verdicts: Vec<Verdict>,
}

impl InspectionRequest {
    /// The verdicts as the domain's per-line accepted units (`true` accepts every unit the
    /// return lists for that line).
    pub fn inspections(&self, ra: &ReturnAuthorization) -> Vec<oms_domain::Inspection> {
        self.verdicts
            .iter()
            .map(|v| {
                let returned = ra
                    .lines()
                    .iter()
                    .find(|l| l.line == v.line)
                    .map_or(0, |l| l.quantity.get());
                let accepted = match v.accepted {
                    Accepted::All => returned,
                    Accepted::None => 0,
                    Accepted::Units(n) => n,
                };
                oms_domain::Inspection {
                    line: v.line,
                    accepted,
                }
            })
            .collect()
    }
}

/// Collects violations while walking a document.
#[derive(Default)]
struct Found(Vec<Violation>);

impl Found {
    fn add(&mut self, field: impl Into<String>, code: ViolationCode, detail: impl Into<String>) {
        self.0.push(Violation::new(field, code, detail));
    }

    fn object<'v>(
        &mut self,
        v: &'v Value,
        at: &str,
        allowed: &[&str],
    ) -> Option<&'v Map<String, Value>> {
        let Some(obj) = v.as_object() else {
            self.add(at, ViolationCode::InvalidType, "must be an object");
            return None;
        };
        for k in obj.keys().filter(|k| !allowed.contains(&k.as_str())) {
            self.add(
                format!("{at}/{}", escape(k)),
                ViolationCode::UnknownField,
                "is not a known field",
            );
        }
        Some(obj)
    }

    fn list<'v>(
        &mut self,
        obj: &'v Map<String, Value>,
        at: &str,
        name: &str,
    ) -> Option<&'v [Value]> {
        let field = format!("{at}/{name}");
        match obj.get(name) {
            None | Some(Value::Null) => self.add(field, ViolationCode::Missing, "is required"),
            Some(Value::Array(a)) if a.is_empty() => {
                self.add(field, ViolationCode::Empty, "must list at least one item")
            }
            Some(Value::Array(a)) if a.len() > MAX_ITEMS => self.add(
                field,
                ViolationCode::TooMany,
                format!("at most {MAX_ITEMS} items"),
            ),
            Some(Value::Array(a)) => return Some(a),
            Some(_) => self.add(field, ViolationCode::InvalidType, "must be an array"),
        }
        None
    }

    fn line(&mut self, obj: &Map<String, Value>, at: &str) -> Option<usize> {
        let field = format!("{at}/line");
        match obj.get("line") {
            None | Some(Value::Null) => self.add(field, ViolationCode::Missing, "is required"),
            Some(v) => match v.as_u64().and_then(|n| usize::try_from(n).ok()) {
                Some(n) => return Some(n),
                None => self.add(
                    field,
                    ViolationCode::InvalidType,
                    "must be a line index (0, 1, …)",
                ),
            },
        }
        None
    }

    fn quantity(&mut self, obj: &Map<String, Value>, at: &str) -> Option<Quantity> {
        let field = format!("{at}/quantity");
        match obj.get("quantity") {
            None | Some(Value::Null) => self.add(field, ViolationCode::Missing, "is required"),
            Some(v) => match v.as_u64() {
                Some(n) => match Quantity::new(n) {
                    Ok(q) => return Some(q),
                    Err(e) => self.add(field, ViolationCode::OutOfRange, e.to_string()),
                },
                None => self.add(
                    field,
                    ViolationCode::InvalidType,
                    "must be a positive whole number",
                ),
            },
        }
        None
    }

    /// An amount in the order's currency: `"5.00"`, or `{"amount": "5.00", "currency": "USD"}`.
    fn amount(&mut self, obj: &Map<String, Value>, at: &str, currency: Currency) -> Option<Money> {
        let field = format!("{at}/amount");
        let text = match obj.get("amount") {
            None | Some(Value::Null) => {
                self.add(field, ViolationCode::Missing, "is required");
                return None;
            }
            Some(Value::String(s)) => s.as_str(),
            Some(Value::Object(m)) => {
                match m.get("currency").and_then(Value::as_str) {
                    Some(c) if c == currency.code() => {}
                    _ => {
                        self.add(
                            format!("{field}/currency"),
                            ViolationCode::UnknownCurrency,
                            format!("must be the order's currency {}", currency.code()),
                        );
                        return None;
                    }
                }
                match m.get("amount").and_then(Value::as_str) {
                    Some(s) => s,
                    None => {
                        self.add(
                            format!("{field}/amount"),
                            ViolationCode::InvalidType,
                            "must be a decimal string",
                        );
                        return None;
                    }
                }
            }
            Some(_) => {
                self.add(
                    field,
                    ViolationCode::InvalidType,
                    "must be a decimal string such as \"5.00\"",
                );
                return None;
            }
        };
        match Money::parse(text, currency) {
            Ok(m) if m.is_zero() => {
                self.add(field, ViolationCode::OutOfRange, "must be more than zero")
            }
            Ok(m) => return Some(m),
            Err(e) => {
                let code = match e {
                    oms_domain::MoneyError::TooManyDecimals { .. } => ViolationCode::DecimalPlaces,
                    oms_domain::MoneyError::Negative(_) => ViolationCode::NegativeAmount,
                    oms_domain::MoneyError::TooLarge => ViolationCode::OutOfRange,
                    _ => ViolationCode::InvalidFormat,
                };
                self.add(field, code, e.to_string());
            }
        }
        None
    }

    fn reason(&mut self, obj: &Map<String, Value>) -> Option<String> {
        match obj.get("reason") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.chars().count() <= MAX_REASON => Some(s.clone()),
            Some(Value::String(_)) => {
                self.add(
                    "/reason",
                    ViolationCode::OutOfRange,
                    format!("at most {MAX_REASON} characters"),
                );
                None
            }
            Some(_) => {
                self.add("/reason", ViolationCode::InvalidType, "must be a string");
                None
            }
        }
    }

    fn finish<T>(self, value: Option<T>) -> Result<T, Vec<Violation>> {
        match value {
            Some(v) if self.0.is_empty() => Ok(v),
            _ if self.0.is_empty() => Err(vec![Violation::new(
                "",
                ViolationCode::InvalidType,
                "invalid request",
            )]),
            _ => Err(self.0),
        }
    }
}

/// Escapes a JSON Pointer token (RFC 6901).
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

impl RefundRequest {
    /// Parses a refund request; amounts are in the order's `currency`.
    ///
    /// # Errors
    /// Every violation, each with its pointer.
    pub fn parse(body: &Value, currency: Currency) -> Result<RefundRequest, Vec<Violation>> {
        let mut found = Found::default();
        let parsed = found
            .object(body, "", &["items", "reason"])
            .and_then(|obj| {
                let reason = found.reason(obj);
                let list = found.list(obj, "", "items")?;
                let mut items = Vec::with_capacity(list.len());
                for (i, v) in list.iter().enumerate() {
                    let at = format!("/items/{i}");
                    let kind = v.get("kind").and_then(Value::as_str);
                    let allowed: &[&str] = match kind {
                        Some("line") => &["kind", "line", "quantity"],
                        Some("amount") => &["kind", "amount"],
                        Some("shipping") => &["kind"],
                        // An unknown kind is the one problem to report, not the fields that follow.
                        _ => &["kind", "line", "quantity", "amount"],
                    };
                    let Some(obj) = found.object(v, &at, allowed) else {
                        continue;
                    };
                    let item = match kind {
                        Some("line") => {
                            let (line, quantity) = (found.line(obj, &at), found.quantity(obj, &at));
                            line.zip(quantity)
                                .map(|(line, quantity)| RefundItem::Line { line, quantity })
                        }
                        Some("shipping") => Some(RefundItem::Shipping),
                        Some("amount") => found
                            .amount(obj, &at, currency)
                            .map(|amount| RefundItem::Amount { amount }),
                        None if obj.get("kind").is_none_or(Value::is_null) => {
                            found.add(
                                format!("{at}/kind"),
                                ViolationCode::Missing,
                                "is required: line, shipping or amount",
                            );
                            None
                        }
                        _ => {
                            found.add(
                                format!("{at}/kind"),
                                ViolationCode::InvalidFormat,
                                "must be line, shipping or amount",
                            );
                            None
                        }
                    };
                    items.extend(item);
                }
                Some(RefundRequest { items, reason })
            });
        found.finish(parsed)
    }
}

impl ReturnRequest {
    /// Parses a return request.
    ///
    /// # Errors
    /// Every violation, each with its pointer.
    pub fn parse(body: &Value) -> Result<ReturnRequest, Vec<Violation>> {
        let mut found = Found::default();
        let parsed = found
            .object(body, "", &["items", "reason"])
            .and_then(|obj| {
                let reason = found.reason(obj);
                let list = found.list(obj, "", "items")?;
                let mut items = Vec::with_capacity(list.len());
                for (i, v) in list.iter().enumerate() {
                    let at = format!("/items/{i}");
                    let Some(obj) = found.object(v, &at, &["line", "quantity"]) else {
                        continue;
                    };
                    let (line, quantity) = (found.line(obj, &at), found.quantity(obj, &at));
                    items.extend(
                        line.zip(quantity)
                            .map(|(line, quantity)| ReturnedItem { line, quantity }),
                    );
                }
                Some(ReturnRequest { items, reason })
            });
        found.finish(parsed)
    }
}

impl CancelRequest {
    /// Parses a cancellation; `None` (no body) is a cancellation without a reason.
    ///
    /// # Errors
    /// Every violation, each with its pointer.
    pub fn parse(body: Option<&Value>) -> Result<CancelRequest, Vec<Violation>> {
        let Some(body) = body else {
            return Ok(CancelRequest::default());
        };
        let mut found = Found::default();
        let parsed = found
            .object(body, "", &["reason"])
            .map(|obj| CancelRequest {
                reason: found.reason(obj),
            });
        found.finish(parsed)
    }
}

impl InspectionRequest {
    /// Parses an inspection.
    ///
    /// # Errors
    /// Every violation, each with its pointer.
    pub fn parse(body: &Value) -> Result<InspectionRequest, Vec<Violation>> {
        let mut found = Found::default();
        let parsed = found.object(body, "", &["lines"]).and_then(|obj| {
            let list = found.list(obj, "", "lines")?;
            let mut verdicts = Vec::with_capacity(list.len());
            for (i, v) in list.iter().enumerate() {
                let at = format!("/lines/{i}");
                let Some(obj) = found.object(v, &at, &["line", "accepted"]) else {
                    continue;
                };
                let line = found.line(obj, &at);
                let accepted = match obj.get("accepted") {
                    Some(Value::Bool(true)) => Some(Accepted::All),
                    Some(Value::Bool(false)) => Some(Accepted::None),
                    Some(n) if n.as_u64().is_some_and(|n| n <= u64::from(Quantity::MAX)) => n
                        .as_u64()
                        .and_then(|n| u32::try_from(n).ok())
                        .map(Accepted::Units),
                    None | Some(Value::Null) => {
                        found.add(
                            format!("{at}/accepted"),
                            ViolationCode::Missing,
                            "is required",
                        );
                        None
                    }
                    Some(_) => {
                        found.add(
                            format!("{at}/accepted"),
                            ViolationCode::InvalidType,
                            "must be true, false or a number of accepted units",
                        );
                        None
                    }
                };
                verdicts.extend(
                    line.zip(accepted)
                        .map(|(line, accepted)| Verdict { line, accepted }),
                );
            }
            Some(InspectionRequest { verdicts })
        });
        found.finish(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Vec<Violation>) -> Vec<String> {
        v.into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn refund_items_parse_in_the_order_currency() {
        let r = RefundRequest::parse(
            &json!({"items": [
                {"kind": "line", "line": 0, "quantity": 2},
                {"kind": "shipping"},
                {"kind": "amount", "amount": "5"},
                {"kind": "amount", "amount": {"amount": "1.50", "currency": "USD"}}
            ], "reason": "late"}),
            Currency::USD,
        )
        .unwrap();
        assert_eq!(r.items.len(), 4);
        assert_eq!(
            r.items[2],
            RefundItem::Amount {
                amount: Money::parse("5.00", Currency::USD).unwrap()
            }
        );
        assert_eq!(r.reason.as_deref(), Some("late"));
    }

    #[test]
    fn every_bad_refund_field_is_named() {
        let bad = RefundRequest::parse(
            &json!({"items": [
                {"kind": "line", "line": 0, "quantity": 0},
                {"kind": "line", "line": -1, "quantity": 1},
                {"kind": "amount", "amount": "1.001"},
                {"kind": "amount", "amount": {"amount": "1.00", "currency": "EUR"}},
                {"kind": "amount", "amount": "0.00"},
                {"kind": "bonus"},
                {"line": 0},
                {"kind": "shipping", "extra": 1},
                7
            ], "reason": 3, "note": "x"}),
            Currency::USD,
        )
        .unwrap_err();
        assert_eq!(
            fields(bad),
            [
                "/note",
                "/reason",
                "/items/0/quantity",
                "/items/1/line",
                "/items/2/amount",
                "/items/3/amount/currency",
                "/items/4/amount",
                "/items/5/kind",
                "/items/6/kind",
                "/items/7/extra",
                "/items/8",
            ]
        );
        assert_eq!(
            fields(RefundRequest::parse(&json!({"items": []}), Currency::USD).unwrap_err()),
            ["/items"]
        );
        assert_eq!(
            fields(RefundRequest::parse(&json!({}), Currency::USD).unwrap_err()),
            ["/items"]
        );
        assert_eq!(
            fields(RefundRequest::parse(&json!([1]), Currency::USD).unwrap_err()),
            [""]
        );
    }

    #[test]
    fn returns_cancellations_and_inspections_parse() {
        let r = ReturnRequest::parse(
            &json!({"items": [{"line": 1, "quantity": 2}], "reason": "too small"}),
        )
        .unwrap();
        assert_eq!((r.items[0].line, r.items[0].quantity.get()), (1, 2));
        assert_eq!(
            fields(
                ReturnRequest::parse(
                    &json!({"items": [{"line": 1}, {"line": 0, "quantity": "1"}]})
                )
                .unwrap_err()
            ),
            ["/items/0/quantity", "/items/1/quantity"]
        );
        assert_eq!(
            CancelRequest::parse(None).unwrap(),
            CancelRequest::default()
        );
        assert_eq!(
            CancelRequest::parse(Some(&json!({"reason": "changed mind"})))
                .unwrap()
                .reason
                .as_deref(),
            Some("changed mind")
        );
        assert_eq!(
            fields(CancelRequest::parse(Some(&json!({"why": 1}))).unwrap_err()),
            ["/why"]
        );
        let i = InspectionRequest::parse(&json!({"lines": [
            {"line": 0, "accepted": true}, {"line": 1, "accepted": false}, {"line": 2, "accepted": 1}
        ]}))
        .unwrap();
        assert_eq!(
            i.verdicts.iter().map(|v| v.accepted).collect::<Vec<_>>(),
            [Accepted::All, Accepted::None, Accepted::Units(1)]
        );
        assert_eq!(
            fields(
                InspectionRequest::parse(
                    &json!({"lines": [{"line": 0, "accepted": "yes"}, {"accepted": true}]})
                )
                .unwrap_err()
            ),
            ["/lines/0/accepted", "/lines/1/line"]
        );
    }
}
