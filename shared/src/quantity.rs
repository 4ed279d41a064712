//! How many units of one SKU a line asks for.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a quantity was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Zero units is not an order line.
    #[error("quantity must be at least 1")]
    Zero,
    /// More units than one line may ask for.
    #[error("quantity must be at most {max} (got {got})", max = Quantity::MAX)]
    TooLarge {
        /// The rejected value.
        got: u64,
    },
}

/// A positive number of units on one order line, at most [`Quantity::MAX`].
///
/// The bound keeps every derived amount (price × quantity, summed over lines) far inside the
/// exact range of `Decimal`, and stops a typo of a few extra digits from reserving a whole
/// warehouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u32")]
pub struct Quantity(u32);

impl Quantity {
    /// The largest quantity one line may carry.
    pub const MAX: u32 = 10_000;

    /// One unit.
    pub const ONE: Quantity = Quantity(1);

    /// Builds a quantity.
    ///
    /// # Errors
    /// [`QuantityError::Zero`] for 0, [`QuantityError::TooLarge`] above [`Quantity::MAX`].
    pub fn new(units: u64) -> Result<Self, QuantityError> {
        match units {
            0 => Err(QuantityError::Zero),
            // The match arm guarantees the value fits in u32.
            1..=10_000 => Ok(Self(units as u32)),
            got => Err(QuantityError::TooLarge { got }),
        }
    }

    /// The number of units.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u64> for Quantity {
    type Error = QuantityError;
    fn try_from(units: u64) -> Result<Self, QuantityError> {
        Self::new(units)
    }
}

impl From<Quantity> for u32 {
    fn from(q: Quantity) -> u32 {
        q.0
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive() {
        assert_eq!(Quantity::new(0), Err(QuantityError::Zero));
        assert_eq!(Quantity::new(1).unwrap().get(), 1);
        assert_eq!(Quantity::new(10_000).unwrap().get(), 10_000);
        assert_eq!(
            Quantity::new(10_001),
            Err(QuantityError::TooLarge { got: 10_001 })
        );
        assert!(Quantity::new(u64::MAX).is_err());
    }

    #[test]
    fn deserialization_checks_bounds() {
        assert_eq!(serde_json::from_str::<Quantity>("3").unwrap().get(), 3);
        assert!(serde_json::from_str::<Quantity>("0").is_err());
        assert!(serde_json::from_str::<Quantity>("-1").is_err());
        assert!(serde_json::from_str::<Quantity>("1.5").is_err());
        assert!(serde_json::from_str::<Quantity>("20000").is_err());
        assert_eq!(serde_json::to_string(&Quantity::ONE).unwrap(), "1");
    }
}
