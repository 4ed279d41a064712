//! Catalogue prices and the check that an order's unit prices match them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::currency::Currency;
use crate::ids::Sku;
use crate::money::{Money, MoneyError};
use crate::order::{Order, OrderLine};
use crate::violation::{Violation, ViolationCode, Violations};

/// Why a catalogue could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// A price is not a valid amount in its currency.
    #[error("price of {sku} in {currency}: {error}")]
    Price {
        /// The SKU.
        sku: Sku,
        /// The currency.
        currency: Currency,
        /// What was wrong with the amount.
        error: MoneyError,
    },
}

/// Unit prices per SKU and currency. JSON form:
/// `{"SKU-1": {"USD": "19.99", "EUR": "18.50"}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(
    try_from = "BTreeMap<Sku, BTreeMap<Currency, String>>",
    into = "BTreeMap<Sku, BTreeMap<Currency, String>>"
)]
pub struct Catalog {
    prices: BTreeMap<Sku, BTreeMap<Currency, Money>>,
}

impl Catalog {
    /// An empty catalogue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the unit price of `sku` in the price's currency, replacing any previous one.
    pub fn set_price(&mut self, sku: Sku, price: Money) {
        self.prices
            .entry(sku)
            .or_default()
            .insert(price.currency(), price);
    }

    /// The unit price of `sku` in `currency`, if listed.
    pub fn price(&self, sku: &Sku, currency: Currency) -> Option<Money> {
        self.prices.get(sku)?.get(&currency).copied()
    }

    /// The problems with `lines` priced in `currency`: unknown SKUs, SKUs without a price in
    /// that currency, and unit prices that differ from the catalogue (field paths are
    /// `/lines/{i}/sku` and `/lines/{i}/unit_price`).
    pub fn mismatches(&self, lines: &[OrderLine], currency: Currency) -> Vec<Violation> {
        let mut out = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let Some(prices) = self.prices.get(line.sku()) else {
                out.push(Violation::new(
                    format!("/lines/{i}/sku"),
                    ViolationCode::UnknownSku,
                    format!("{} is not in the catalogue", line.sku()),
                ));
                continue;
            };
            match prices.get(&currency) {
                None => out.push(Violation::new(
                    format!("/lines/{i}/unit_price"),
                    ViolationCode::PriceUnavailable,
                    format!("{} has no {currency} price", line.sku()),
                )),
                Some(listed) if *listed != line.unit_price() => out.push(Violation::new(
                    format!("/lines/{i}/unit_price"),
                    ViolationCode::PriceMismatch,
                    format!(
                        "catalogue price of {} is {}, got {}",
                        line.sku(),
                        listed.amount(),
                        line.unit_price().amount()
                    ),
                )),
                Some(_) => {}
            }
        }
        out
    }

    /// Checks every line of an order against the catalogue.
    ///
    /// # Errors
    /// [`Violations`] listing each line whose SKU or unit price does not match.
    pub fn check(&self, order: &Order) -> Result<(), Violations> {
        let problems = self.mismatches(order.lines(), order.currency());
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Violations(problems))
        }
    }
}

impl TryFrom<BTreeMap<Sku, BTreeMap<Currency, String>>> for Catalog {
    type Error = CatalogError;
    fn try_from(raw: BTreeMap<Sku, BTreeMap<Currency, String>>) -> Result<Self, CatalogError> {
        let mut catalog = Catalog::new();
        for (sku, prices) in raw {
            for (currency, amount) in prices {
                let price =
                    Money::parse(&amount, currency).map_err(|error| CatalogError::Price {
                        sku: sku.clone(),
                        currency,
                        error,
                    })?;
                catalog.set_price(sku.clone(), price);
            }
        }
        Ok(catalog)
    }
}

impl From<Catalog> for BTreeMap<Sku, BTreeMap<Currency, String>> {
    fn from(c: Catalog) -> Self {
        c.prices
            .into_iter()
            .map(|(sku, prices)| {
                let prices = prices
                    .into_iter()
                    .map(|(cur, m)| (cur, m.amount().to_string()))
                    .collect();
                (sku, prices)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quantity::Quantity;

    fn usd(s: &str) -> Money {
        Money::parse(s, Currency::USD).unwrap()
    }

    fn line(sku: &str, price: &str) -> OrderLine {
        OrderLine::new(
            Sku::parse(sku).unwrap(),
            Quantity::ONE,
            usd(price),
            usd("0"),
        )
        .unwrap()
    }

    #[test]
    fn reports_each_line_that_differs() {
        let catalog: Catalog = serde_json::from_str(
            r#"{"A":{"USD":"10.00"},"B":{"USD":"5","EUR":"4.50"},"C":{"EUR":"1.00"}}"#,
        )
        .unwrap();
        assert_eq!(
            catalog.price(&Sku::parse("B").unwrap(), Currency::USD),
            Some(usd("5.00"))
        );
        let lines = [
            line("A", "10.00"),
            line("B", "4.99"),
            line("C", "1.00"),
            line("D", "1.00"),
        ];
        let problems = catalog.mismatches(&lines, Currency::USD);
        let got: Vec<_> = problems
            .iter()
            .map(|v| (v.field.as_str(), v.code))
            .collect();
        assert_eq!(
            got,
            [
                ("/lines/1/unit_price", ViolationCode::PriceMismatch),
                ("/lines/2/unit_price", ViolationCode::PriceUnavailable),
                ("/lines/3/sku", ViolationCode::UnknownSku),
            ]
        );
        assert!(catalog.mismatches(&lines[..1], Currency::USD).is_empty());
    }

    #[test]
    fn invalid_prices_are_refused_and_json_round_trips() {
        assert!(serde_json::from_str::<Catalog>(r#"{"A":{"JPY":"10.5"}}"#).is_err());
        assert!(serde_json::from_str::<Catalog>(r#"{"A":{"USD":10}}"#).is_err());
        let mut c = Catalog::new();
        c.set_price(Sku::parse("A").unwrap(), usd("1"));
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, r#"{"A":{"USD":"1.00"}}"#);
        assert_eq!(serde_json::from_str::<Catalog>(&json).unwrap(), c);
    }
}
