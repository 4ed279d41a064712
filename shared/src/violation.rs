//! Problems found in a request, each tied to the field it concerns.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A stable, machine-readable reason for a [`Violation`]. Clients may switch on these; the
/// set only grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationCode {
    /// A required field is absent (or `null`).
    Missing,
    /// The field has the wrong JSON type (e.g. a number where a money string is required).
    InvalidType,
    /// The field is not part of the document; typos are refused rather than ignored.
    UnknownField,
    /// The text does not have the required shape (identifier, e-mail, postal code, decimal).
    InvalidFormat,
    /// A number or amount is outside its allowed range.
    OutOfRange,
    /// A list that must not be empty is empty.
    Empty,
    /// A list or map has more entries than allowed.
    TooMany,
    /// The currency is not a supported ISO 4217 code.
    UnknownCurrency,
    /// The country is not an ISO 3166-1 alpha-2 code.
    UnknownCountry,
    /// An amount has more decimal places than its currency allows.
    DecimalPlaces,
    /// An amount is negative.
    NegativeAmount,
    /// A discount is larger than the amount it applies to.
    DiscountExceedsAmount,
    /// A client-supplied total differs from the recomputed one.
    TotalMismatch,
    /// The payment amount differs from the order's grand total.
    PaymentMismatch,
    /// A field is present where the rest of the document forbids it (e.g. a pickup location
    /// on a delivered order).
    NotAllowed,
    /// The line's unit price differs from the catalogue price.
    PriceMismatch,
    /// The SKU is not in the catalogue.
    UnknownSku,
    /// The SKU is in the catalogue but has no price in the order's currency.
    PriceUnavailable,
}

impl ViolationCode {
    /// The code as written in JSON (`"total_mismatch"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::InvalidType => "invalid_type",
            Self::UnknownField => "unknown_field",
            Self::InvalidFormat => "invalid_format",
            Self::OutOfRange => "out_of_range",
            Self::Empty => "empty",
            Self::TooMany => "too_many",
            Self::UnknownCurrency => "unknown_currency",
            Self::UnknownCountry => "unknown_country",
            Self::DecimalPlaces => "decimal_places",
            Self::NegativeAmount => "negative_amount",
            Self::DiscountExceedsAmount => "discount_exceeds_amount",
            Self::TotalMismatch => "total_mismatch",
            Self::PaymentMismatch => "payment_mismatch",
            Self::NotAllowed => "not_allowed",
            Self::PriceMismatch => "price_mismatch",
            Self::UnknownSku => "unknown_sku",
            Self::PriceUnavailable => "price_unavailable",
        }
    }
}

impl fmt::Display for ViolationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem in a request: an RFC 9457 `invalid-params` entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Violation {
    /// JSON Pointer (RFC 6901) to the offending field, e.g. `/lines/0/unit_price`; `""` is
    /// the whole document.
    pub field: String,
    /// Stable machine-readable reason.
    pub code: ViolationCode,
    /// Human-readable explanation.
    pub detail: String,
}

impl Violation {
    /// Builds a violation.
    pub fn new(field: impl Into<String>, code: ViolationCode, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            code,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = if self.field.is_empty() {
            "/"
        } else {
            &self.field
        };
        write!(f, "{field}: {} ({})", self.detail, self.code)
    }
}

/// Escapes one JSON Pointer reference token (RFC 6901 §3: `~` → `~0`, `/` → `~1`).
pub(crate) fn escape_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// All the problems found in one request, in document order. Never empty when returned as an
/// error.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, thiserror::Error)]
#[serde(transparent)]
pub struct Violations(pub Vec<Violation>);

impl Violations {
    /// The violations as a slice.
    pub fn as_slice(&self) -> &[Violation] {
        &self.0
    }

    /// Whether a violation with this field and code is present.
    pub fn contains(&self, field: &str, code: ViolationCode) -> bool {
        self.0.iter().any(|v| v.field == field && v.code == code)
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} problem(s)", self.0.len())?;
        for (i, v) in self.0.iter().enumerate() {
            f.write_str(if i == 0 { ": " } else { "; " })?;
            v.fmt(f)?;
        }
        Ok(())
    }
}

impl IntoIterator for Violations {
    type Item = Violation;
    type IntoIter = std::vec::IntoIter<Violation>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_their_names() {
        for code in [
            ViolationCode::Missing,
            ViolationCode::TotalMismatch,
            ViolationCode::DiscountExceedsAmount,
            ViolationCode::PriceUnavailable,
        ] {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::Value::String(code.as_str().to_owned())
            );
        }
    }

    #[test]
    fn pointer_tokens_are_escaped() {
        assert_eq!(escape_token("a/b~c"), "a~1b~0c");
    }

    #[test]
    fn display_lists_every_problem() {
        let v = Violations(vec![
            Violation::new("/a", ViolationCode::Missing, "a is required"),
            Violation::new("", ViolationCode::InvalidType, "must be an object"),
        ]);
        assert_eq!(
            v.to_string(),
            "2 problem(s): /a: a is required (missing); /: must be an object (invalid_type)"
        );
    }
}
