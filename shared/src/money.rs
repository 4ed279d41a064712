//! Exact amounts of one currency.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize, Serializer};

use crate::currency::Currency;

/// Amounts must stay below one quadrillion major units. Far above any order, and it keeps
/// every sum and product this crate forms (≤ 10 000 units × 500 lines) exact in `Decimal`.
const MAX_EXCLUSIVE: i64 = 1_000_000_000_000_000;

/// Why an amount was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The text is not a plain decimal such as `"19.99"`.
    #[error("{0:?} is not a decimal amount such as \"19.99\"")]
    Malformed(String),
    /// More decimal places than the currency has minor units; never rounded silently.
    #[error("{currency} amounts have at most {max} decimal places (got {amount})")]
    TooManyDecimals {
        /// The currency of the amount.
        currency: Currency,
        /// Its minor units.
        max: u32,
        /// The amount as given.
        amount: String,
    },
    /// Amounts are never negative; discounts and refunds are subtracted, not added as negatives.
    #[error("amount must not be negative (got {0})")]
    Negative(String),
    /// Beyond the supported range.
    #[error("amount is out of range (must be below 10^15)")]
    TooLarge,
    /// Arithmetic was attempted across two currencies.
    #[error("cannot combine {left} with {right}")]
    CurrencyMismatch {
        /// The currency of the left operand.
        left: Currency,
        /// The currency of the right operand.
        right: Currency,
    },
    /// A subtraction or proportional share would go below zero or divide by zero.
    #[error("{0}")]
    Arithmetic(&'static str),
}

/// A non-negative, exact amount in one currency, held at exactly the currency's minor-unit
/// scale (`"5"` USD is stored and written as `"5.00"`).
///
/// Arithmetic is checked and only combines amounts of the same currency. Standalone it
/// serializes as `{"amount": "19.99", "currency": "USD"}`; inside an order, where the currency
/// is stated once, amounts are bare strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "MoneyRepr", into = "MoneyRepr")]
pub struct Money {
    amount: Decimal,
    currency: Currency,
}

impl Money {
    /// Builds an amount.
    ///
    /// Trailing zeros beyond the scale are exact and accepted (`19.990` USD is `19.99`); any
    /// non-zero digit beyond it is refused.
    ///
    /// # Errors
    /// [`MoneyError::Negative`], [`MoneyError::TooManyDecimals`] or [`MoneyError::TooLarge`].
    pub fn new(amount: Decimal, currency: Currency) -> Result<Self, MoneyError> {
        if amount.is_sign_negative() && !amount.is_zero() {
            return Err(MoneyError::Negative(amount.to_string()));
        }
        if amount >= Decimal::from(MAX_EXCLUSIVE) {
            return Err(MoneyError::TooLarge);
        }
        let scale = currency.minor_units();
        if amount.normalize().scale() > scale {
            return Err(MoneyError::TooManyDecimals {
                currency,
                max: scale,
                amount: amount.to_string(),
            });
        }
        let mut amount = amount.abs();
        // Exact: the value has at most `scale` significant decimals (checked above).
        amount.rescale(scale);
        Ok(Self { amount, currency })
    }

    /// Parses a plain decimal string (`"19.99"`, `"5"`, `"0.125"` for KWD). No sign, exponent,
    /// separators or whitespace: amounts arrive as JSON strings precisely so they stay exact.
    ///
    /// # Errors
    /// [`MoneyError::Malformed`] for anything but digits with an optional fraction,
    /// [`MoneyError::Negative`] for a leading minus, and the errors of [`Money::new`].
    pub fn parse(text: &str, currency: Currency) -> Result<Self, MoneyError> {
        let unsigned = text.strip_prefix('-');
        let digits = unsigned.unwrap_or(text);
        let (int, frac) = match digits.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (digits, None),
        };
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if text.len() > 40 || !all_digits(int) || !frac.is_none_or(all_digits) {
            return Err(MoneyError::Malformed(text.to_owned()));
        }
        if unsigned.is_some() {
            return Err(MoneyError::Negative(text.to_owned()));
        }
        let amount = Decimal::from_str_exact(digits).map_err(|_| MoneyError::TooLarge)?;
        Self::new(amount, currency).map_err(|e| match e {
            // Report the text as given, not the normalised decimal.
            MoneyError::TooManyDecimals { currency, max, .. } => MoneyError::TooManyDecimals {
                currency,
                max,
                amount: text.to_owned(),
            },
            other => other,
        })
    }

    /// Zero in a currency.
    pub fn zero(currency: Currency) -> Self {
        let mut amount = Decimal::ZERO;
        amount.rescale(currency.minor_units());
        Self { amount, currency }
    }

    /// Builds an amount from a count of minor units (cents for USD, yen for JPY).
    ///
    /// # Errors
    /// [`MoneyError::TooLarge`] when out of range.
    pub fn from_minor_units(units: u64, currency: Currency) -> Result<Self, MoneyError> {
        let amount = Decimal::from_i128_with_scale(i128::from(units), currency.minor_units());
        Self::new(amount, currency)
    }

    /// The amount as a count of minor units.
    pub fn minor_units(&self) -> u64 {
        // The amount is held at the currency's scale, so the mantissa is the minor-unit count;
        // it is non-negative and below 10^18, so it fits.
        u64::try_from(self.amount.mantissa()).unwrap_or(u64::MAX)
    }

    /// The exact amount.
    pub const fn amount(&self) -> Decimal {
        self.amount
    }

    /// The currency.
    pub const fn currency(&self) -> Currency {
        self.currency
    }

    /// Whether the amount is zero.
    pub fn is_zero(&self) -> bool {
        self.amount.is_zero()
    }

    fn same_currency(&self, other: &Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch {
                left: self.currency,
                right: other.currency,
            })
        }
    }

    /// The sum of two amounts.
    ///
    /// # Errors
    /// [`MoneyError::CurrencyMismatch`] across currencies, [`MoneyError::TooLarge`] on overflow.
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(&other)?;
        let sum = self
            .amount
            .checked_add(other.amount)
            .ok_or(MoneyError::TooLarge)?;
        Money::new(sum, self.currency)
    }

    /// The difference of two amounts.
    ///
    /// # Errors
    /// [`MoneyError::CurrencyMismatch`] across currencies, [`MoneyError::Arithmetic`] when
    /// `other` is larger than `self` (amounts never go negative).
    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(&other)?;
        if other.amount > self.amount {
            return Err(MoneyError::Arithmetic("subtraction would go below zero"));
        }
        Money::new(self.amount - other.amount, self.currency)
    }

    /// The amount multiplied by a count (unit price × quantity).
    ///
    /// # Errors
    /// [`MoneyError::TooLarge`] when the product is out of range.
    pub fn times(self, count: u32) -> Result<Money, MoneyError> {
        let product = self
            .amount
            .checked_mul(Decimal::from(count))
            .ok_or(MoneyError::TooLarge)?;
        Money::new(product, self.currency)
    }

    /// The sum of any number of amounts in `currency` (zero when empty).
    ///
    /// # Errors
    /// As [`Money::checked_add`].
    pub fn sum<I: IntoIterator<Item = Money>>(
        currency: Currency,
        items: I,
    ) -> Result<Money, MoneyError> {
        items
            .into_iter()
            .try_fold(Money::zero(currency), Money::checked_add)
    }

    /// `floor(self × part / whole)` in minor units: the share of an amount that `part` out of
    /// `whole` units carry.
    ///
    /// Rounding down per call and taking differences of cumulative shares
    /// (`share(a + b) − share(a)`) splits an amount into pieces that always add back up to it
    /// exactly, which is how partial refunds of a discounted line are computed.
    ///
    /// # Errors
    /// [`MoneyError::Arithmetic`] when `whole` is zero or `part > whole`.
    pub fn share(self, part: u32, whole: u32) -> Result<Money, MoneyError> {
        if whole == 0 || part > whole {
            return Err(MoneyError::Arithmetic(
                "share must be a part of a non-empty whole",
            ));
        }
        // Integer arithmetic on minor units: exact, unlike a Decimal division.
        let units = u128::from(self.minor_units()) * u128::from(part) / u128::from(whole);
        let units = u64::try_from(units).map_err(|_| MoneyError::TooLarge)?;
        Money::from_minor_units(units, self.currency)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

impl PartialOrd for Money {
    /// Amounts of different currencies are not comparable.
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        (self.currency == other.currency).then(|| self.amount.cmp(&other.amount))
    }
}

/// Serializes only the amount, as a string: used where the currency is stated once for a
/// whole document (an order).
pub(crate) fn serialize_amount<S: Serializer>(money: &Money, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&money.amount)
}

/// The wire form of a standalone amount.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MoneyRepr {
    amount: String,
    currency: Currency,
}

impl TryFrom<MoneyRepr> for Money {
    type Error = MoneyError;
    fn try_from(r: MoneyRepr) -> Result<Self, MoneyError> {
        Money::parse(&r.amount, r.currency)
    }
}

impl From<Money> for MoneyRepr {
    fn from(m: Money) -> Self {
        MoneyRepr {
            amount: m.amount.to_string(),
            currency: m.currency,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn usd(s: &str) -> Money {
        Money::parse(s, Currency::USD).unwrap()
    }

    #[test]
    fn parses_at_the_currency_scale() {
        assert_eq!(usd("19.99").amount().to_string(), "19.99");
        assert_eq!(usd("5").amount().to_string(), "5.00");
        assert_eq!(usd("19.990").amount().to_string(), "19.99");
        assert_eq!(usd("0").amount().to_string(), "0.00");
        assert_eq!(
            Money::parse("1000", Currency::JPY)
                .unwrap()
                .amount()
                .to_string(),
            "1000"
        );
        assert_eq!(
            Money::parse("1.125", Currency::KWD)
                .unwrap()
                .amount()
                .to_string(),
            "1.125"
        );
    }

    #[test]
    fn refuses_extra_precision_instead_of_rounding() {
        assert!(matches!(
            Money::parse("19.999", Currency::USD),
            Err(MoneyError::TooManyDecimals { max: 2, .. })
        ));
        assert!(matches!(
            Money::parse("100.5", Currency::JPY),
            Err(MoneyError::TooManyDecimals { max: 0, .. })
        ));
        assert!(matches!(
            Money::parse("1.0001", Currency::KWD),
            Err(MoneyError::TooManyDecimals { max: 3, .. })
        ));
    }

    #[test]
    fn refuses_malformed_negative_and_huge_text() {
        for bad in [
            "", ".5", "5.", "1e3", "1_000", " 1", "+1", "1,00", "0x10", "NaN",
        ] {
            assert!(
                matches!(
                    Money::parse(bad, Currency::USD),
                    Err(MoneyError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            Money::parse("-1.00", Currency::USD),
            Err(MoneyError::Negative(_))
        ));
        assert_eq!(
            Money::parse("1000000000000000", Currency::USD),
            Err(MoneyError::TooLarge)
        );
        assert!(Money::parse("999999999999999.99", Currency::USD).is_ok());
        assert_eq!(
            Money::parse(&"9".repeat(35), Currency::USD),
            Err(MoneyError::TooLarge)
        );
    }

    #[test]
    fn arithmetic_is_exact_and_same_currency_only() {
        assert_eq!(usd("0.10").checked_add(usd("0.20")).unwrap(), usd("0.30"));
        assert_eq!(usd("19.99").times(3).unwrap(), usd("59.97"));
        assert_eq!(usd("1.00").checked_sub(usd("0.01")).unwrap(), usd("0.99"));
        assert!(usd("1.00").checked_sub(usd("1.01")).is_err());
        let eur = Money::parse("1.00", Currency::EUR).unwrap();
        assert!(matches!(
            usd("1.00").checked_add(eur),
            Err(MoneyError::CurrencyMismatch { .. })
        ));
        assert_eq!(usd("1.00").partial_cmp(&eur), None);
        assert!(usd("1.00") < usd("1.01"));
    }

    #[test]
    fn shares_round_down_and_add_back_up() {
        let total = usd("10.00");
        assert_eq!(total.share(1, 3).unwrap(), usd("3.33"));
        assert_eq!(total.share(2, 3).unwrap(), usd("6.66"));
        assert_eq!(total.share(3, 3).unwrap(), total);
        assert!(total.share(1, 0).is_err());
        assert!(total.share(4, 3).is_err());
    }

    #[test]
    fn serde_is_a_string_amount_with_currency() {
        let json = serde_json::to_string(&usd("5")).unwrap();
        assert_eq!(json, r#"{"amount":"5.00","currency":"USD"}"#);
        assert_eq!(serde_json::from_str::<Money>(&json).unwrap(), usd("5"));
        // Numbers are refused: a float cannot carry an exact amount.
        assert!(serde_json::from_str::<Money>(r#"{"amount":5.0,"currency":"USD"}"#).is_err());
        assert!(serde_json::from_str::<Money>(r#"{"amount":"5.001","currency":"USD"}"#).is_err());
        assert!(serde_json::from_str::<Money>(r#"{"amount":"5","currency":"XYZ"}"#).is_err());
    }

    fn currency() -> impl Strategy<Value = Currency> {
        prop_oneof![
            Just(Currency::USD),
            Just(Currency::EUR),
            Just(Currency::JPY),
            Just(Currency::KWD)
        ]
    }

    proptest! {
        #[test]
        fn addition_loses_nothing(a in 0u64..1_000_000_000_000, b in 0u64..1_000_000_000_000, c in currency()) {
            let x = Money::from_minor_units(a, c).unwrap();
            let y = Money::from_minor_units(b, c).unwrap();
            let sum = x.checked_add(y).unwrap();
            prop_assert_eq!(sum.minor_units(), a + b);
            prop_assert_eq!(sum.checked_sub(y).unwrap(), x);
            prop_assert_eq!(sum.checked_sub(x).unwrap(), y);
        }

        #[test]
        fn text_round_trips_exactly(units in 0u64..1_000_000_000_000_000, c in currency()) {
            let m = Money::from_minor_units(units, c).unwrap();
            let back = Money::parse(&m.amount().to_string(), c).unwrap();
            prop_assert_eq!(back, m);
            prop_assert_eq!(back.minor_units(), units);
        }

        #[test]
        fn never_mixes_currencies(a in 0u64..1_000_000, b in 0u64..1_000_000, c in currency(), d in currency()) {
            prop_assume!(c != d);
            let x = Money::from_minor_units(a, c).unwrap();
            let y = Money::from_minor_units(b, d).unwrap();
            prop_assert!(x.checked_add(y).is_err());
            prop_assert!(x.checked_sub(y).is_err());
            prop_assert!(Money::sum(c, [x, y]).is_err());
        }

        #[test]
        fn shares_partition_the_whole(units in 0u64..1_000_000_000, cuts in proptest::collection::vec(1u32..50, 1..8)) {
            let total = Money::from_minor_units(units, Currency::USD).unwrap();
            let whole: u32 = cuts.iter().sum();
            let mut done = 0;
            let mut pieces = Vec::new();
            for cut in &cuts {
                let before = total.share(done, whole).unwrap();
                done += cut;
                pieces.push(total.share(done, whole).unwrap().checked_sub(before).unwrap());
            }
            prop_assert_eq!(Money::sum(Currency::USD, pieces).unwrap(), total);
        }
    }
}
