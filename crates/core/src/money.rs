//! Exact money: a non-negative decimal with at most two fraction digits, written as a JSON number.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// The most fraction digits an amount may carry (cents).
pub const MAX_SCALE: u32 = 2;

/// An exact, non-negative amount. Never passes through a binary float: JSON numbers are read
/// and written from their decimal text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(Decimal);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("must be a decimal number")]
    NotANumber,
    #[error("must not be negative")]
    Negative,
    #[error("must have at most {MAX_SCALE} decimal places")]
    TooManyDecimals,
    #[error("is too large")]
    Overflow,
}

impl Money {
    pub const ZERO: Money = Money(Decimal::ZERO);

    pub fn new(value: Decimal) -> Result<Self, MoneyError> {
        if value.is_sign_negative() && !value.is_zero() {
            return Err(MoneyError::Negative);
        }
        let normalized = value.normalize();
        if normalized.scale() > MAX_SCALE {
            return Err(MoneyError::TooManyDecimals);
        }
        Ok(Money(normalized.abs()))
    }

    /// Parses JSON number text exactly (`19.99`, `1e2`, `0.5`).
    pub fn parse_json_number(text: &str) -> Result<Self, MoneyError> {
        let text = text.trim();
        if text.starts_with('"') || text.is_empty() {
            return Err(MoneyError::NotANumber);
        }
        let value = if text.contains(['e', 'E']) {
            Decimal::from_scientific(text).map_err(|_| MoneyError::NotANumber)?
        } else {
            Decimal::from_str(text).map_err(|_| MoneyError::NotANumber)?
        };
        Money::new(value)
    }

    pub fn decimal(self) -> Decimal {
        self.0
    }

    pub fn checked_mul(self, quantity: u32) -> Result<Money, MoneyError> {
        self.0
            .checked_mul(Decimal::from(quantity))
            .map(Money)
            .ok_or(MoneyError::Overflow)
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.0
            .checked_add(other.0)
            .map(Money)
            .ok_or(MoneyError::Overflow)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.normalize(), f)
    }
}

impl FromStr for Money {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Money::parse_json_number(s)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // A RawValue writes the exact decimal text as a JSON number.
        let raw = RawValue::from_string(self.to_string()).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <Box<RawValue>>::deserialize(deserializer)?;
        Money::parse_json_number(raw.get()).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_decimal_text() {
        assert_eq!(
            Money::parse_json_number("19.99").unwrap().to_string(),
            "19.99"
        );
        assert_eq!(Money::parse_json_number("1e2").unwrap().to_string(), "100");
        assert_eq!(Money::parse_json_number("0.10").unwrap().to_string(), "0.1");
        assert_eq!(Money::parse_json_number("-0").unwrap().to_string(), "0");
    }

    #[test]
    fn rejects_three_decimals_negative_and_strings() {
        assert_eq!(
            Money::parse_json_number("0.001"),
            Err(MoneyError::TooManyDecimals)
        );
        assert_eq!(Money::parse_json_number("-1"), Err(MoneyError::Negative));
        assert_eq!(
            Money::parse_json_number("\"1\""),
            Err(MoneyError::NotANumber)
        );
    }

    #[test]
    fn arithmetic_is_exact_where_floats_are_not() {
        let a = Money::parse_json_number("0.1").unwrap();
        let b = Money::parse_json_number("0.2").unwrap();
        assert_eq!(a.checked_add(b).unwrap().to_string(), "0.3");
        let p = Money::parse_json_number("19.99").unwrap();
        assert_eq!(p.checked_mul(3).unwrap().to_string(), "59.97");
    }

    #[test]
    fn round_trips_through_json_as_a_number() {
        let m: Money = serde_json::from_str("12345678.91").unwrap();
        assert_eq!(serde_json::to_string(&m).unwrap(), "12345678.91");
    }
}
