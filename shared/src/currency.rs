//! ISO 4217 currencies and their minor-unit scale.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a currency code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CurrencyError {
    /// The code is not a supported ISO 4217 alphabetic code.
    #[error(
        "unknown or unsupported currency code {0:?} (expected an ISO 4217 code such as \"USD\")"
    )]
    Unknown(String),
}

/// Supported currencies with their ISO 4217 minor units (decimal places).
///
/// A closed table rather than "any three letters": the scale decides which amounts are valid,
/// so a currency we cannot scale correctly must be refused, not guessed.
const CURRENCIES: &[(&str, u32)] = &[
    ("AED", 2),
    ("AUD", 2),
    ("BHD", 3),
    ("BRL", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("CLP", 0),
    ("CNY", 2),
    ("CZK", 2),
    ("DKK", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("HKD", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("ISK", 0),
    ("JOD", 3),
    ("JPY", 0),
    ("KRW", 0),
    ("KWD", 3),
    ("MXN", 2),
    ("MYR", 2),
    ("NOK", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PHP", 2),
    ("PLN", 2),
    ("RON", 2),
    ("SAR", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("THB", 2),
    ("TND", 3),
    ("TRY", 2),
    ("TWD", 2),
    ("UGX", 0),
    ("USD", 2),
    ("VND", 0),
    ("ZAR", 2),
];

/// An ISO 4217 currency this system can price in, carrying its minor-unit scale
/// (USD/EUR 2, JPY/KRW 0, KWD/BHD 3).
///
/// Serialized as its three-letter code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(into = "String")]
pub struct Currency {
    code: &'static str,
    minor_units: u32,
}

impl Currency {
    /// United States dollar (2 decimals).
    pub const USD: Currency = Currency::known("USD", 2);
    /// Euro (2 decimals).
    pub const EUR: Currency = Currency::known("EUR", 2);
    /// Japanese yen (no decimals).
    pub const JPY: Currency = Currency::known("JPY", 0);
    /// Kuwaiti dinar (3 decimals).
    pub const KWD: Currency = Currency::known("KWD", 3);

    const fn known(code: &'static str, minor_units: u32) -> Self {
        Self { code, minor_units }
    }

    /// Parses an ISO 4217 alphabetic code. Codes are upper case; lower case is refused so
    /// that one currency has one spelling in stored data.
    ///
    /// # Errors
    /// [`CurrencyError::Unknown`] when the code is not in the supported table.
    pub fn parse(code: &str) -> Result<Self, CurrencyError> {
        CURRENCIES
            .iter()
            .find(|(c, _)| *c == code)
            .map(|&(code, minor_units)| Self { code, minor_units })
            .ok_or_else(|| CurrencyError::Unknown(code.to_owned()))
    }

    /// The three-letter code.
    pub const fn code(&self) -> &'static str {
        self.code
    }

    /// How many decimal places an amount in this currency may have.
    pub const fn minor_units(&self) -> u32 {
        self.minor_units
    }
}

impl TryFrom<String> for Currency {
    type Error = CurrencyError;
    fn try_from(code: String) -> Result<Self, CurrencyError> {
        Self::parse(&code)
    }
}

// Written by hand: the derive would treat the `&'static str` field as borrowed from the
// input and demand `'de: 'static`.
impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        Self::parse(&code).map_err(serde::de::Error::custom)
    }
}

impl FromStr for Currency {
    type Err = CurrencyError;
    fn from_str(code: &str) -> Result<Self, CurrencyError> {
        Self::parse(code)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.code.to_owned()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_follow_iso_4217() {
        for (code, scale) in [
            ("USD", 2),
            ("EUR", 2),
            ("JPY", 0),
            ("KRW", 0),
            ("KWD", 3),
            ("BHD", 3),
        ] {
            assert_eq!(
                Currency::parse(code).unwrap().minor_units(),
                scale,
                "{code}"
            );
        }
        assert_eq!(Currency::parse("USD").unwrap(), Currency::USD);
        assert_eq!(Currency::parse("KWD").unwrap(), Currency::KWD);
    }

    #[test]
    fn table_is_sorted_and_unique() {
        assert!(CURRENCIES.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn unknown_and_lowercase_codes_are_refused() {
        assert!(Currency::parse("usd").is_err());
        assert!(Currency::parse("XXX").is_err());
        assert!(Currency::parse("").is_err());
        assert!(serde_json::from_str::<Currency>("\"ABC\"").is_err());
        assert_eq!(
            serde_json::from_str::<Currency>("\"JPY\"").unwrap(),
            Currency::JPY
        );
        assert_eq!(serde_json::to_string(&Currency::EUR).unwrap(), "\"EUR\"");
    }
}
