//! DynamoDB's Number type: up to 38 significant digits within 1E-130 and 9.99…E+125 in
//! magnitude, compared by exact value. SNS's Number attribute reads the same way with its
//! own bounds.
//! <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.NamingRulesDataTypes.html#HowItWorks.DataTypes.Number>

use std::cmp::Ordering;

use serde_dynamo::AttributeValue;

use super::validation;
use crate::awsapi::AwsError;

/// "Numbers can have up to 38 digits of precision."
const MAX_DIGITS: usize = 38;
/// The largest magnitude, 9.9999999999999999999999999999999999999E+125, is below 10^126.
const MAX_EXPONENT: i64 = 126;
/// The smallest magnitude, 1E-130, is 0.1 × 10^-129.
const MIN_EXPONENT: i64 = -129;

/// A number as `0.d1d2d3… × 10^exponent`, its digits without leading or trailing zeros
/// (none for zero), so two equal values have equal fields whatever their text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Number {
    negative: bool,
    digits: Vec<u8>,
    exponent: i64,
}

/// Why a text is not a DynamoDB number, in DynamoDB's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    NotANumber,
    TooManyDigits,
    Overflow,
    Underflow,
}

impl Invalid {
    pub fn message(self) -> &'static str {
        match self {
            Invalid::NotANumber => "A value provided cannot be converted into a number",
            Invalid::TooManyDigits => {
                "Attempting to store more than 38 significant digits in a Number"
            }
            Invalid::Overflow => {
                "Number overflow. Attempting to store a number with magnitude larger than supported range"
            }
            Invalid::Underflow => {
                "Number underflow. Attempting to store a number with magnitude smaller than supported range"
            }
        }
    }
}

impl Number {
    /// Reads `[+-]digits[.digits][e[+-]digits]` (or `.digits`) of at most 38 significant
    /// digits, in any magnitude.
    pub fn read(text: &str) -> Result<Number, Invalid> {
        let bytes = text.as_bytes();
        let mut at = 0;
        let negative = match bytes.first() {
            Some(b'-') => {
                at = 1;
                true
            }
            Some(b'+') => {
                at = 1;
                false
            }
            _ => false,
        };
        let mut digits = Vec::new();
        let mut integer_digits: i64 = 0;
        let mut seen_point = false;
        let mut any_digit = false;
        while let Some(&b) = bytes.get(at) {
            match b {
                b'0'..=b'9' => {
                    any_digit = true;
                    if digits.is_empty() && b == b'0' {
                        // A leading zero: before the point it adds nothing, after it shifts.
                        if seen_point {
                            integer_digits -= 1;
                        }
                    } else {
                        digits.push(b - b'0');
                        if !seen_point {
                            integer_digits += 1;
                        }
                    }
                }
                b'.' if !seen_point => seen_point = true,
                _ => break,
            }
            at += 1;
        }
        if !any_digit {
            return Err(Invalid::NotANumber);
        }
        let mut exponent: i64 = 0;
        if matches!(bytes.get(at), Some(b'e' | b'E')) {
            at += 1;
            let sign = match bytes.get(at) {
                Some(b'-') => {
                    at += 1;
                    -1
                }
                Some(b'+') => {
                    at += 1;
                    1
                }
                _ => 1,
            };
            let start = at;
            while let Some(b @ b'0'..=b'9') = bytes.get(at) {
                // Saturates: an exponent of thousands of digits is out of range either way.
                exponent = (exponent * 10 + i64::from(b - b'0')).min(1_000_000_000);
                at += 1;
            }
            if at == start {
                return Err(Invalid::NotANumber);
            }
            exponent *= sign;
        }
        if at != bytes.len() {
            return Err(Invalid::NotANumber);
        }
        while digits.last() == Some(&0) {
            digits.pop();
        }
        if digits.is_empty() {
            return Ok(Number {
                negative: false,
                digits,
                exponent: 0,
            });
        }
        let exponent = integer_digits + exponent;
        if digits.len() > MAX_DIGITS {
            return Err(Invalid::TooManyDigits);
        }
        Ok(Number {
            negative,
            digits,
            exponent,
        })
    }

    /// Reads a number as DynamoDB accepts it: `read`, within 1E-130 and 9.99…E+125.
    pub fn parse(text: &str) -> Result<Number, Invalid> {
        let n = Number::read(text)?;
        if n.is_zero() {
            return Ok(n);
        }
        if n.exponent > MAX_EXPONENT {
            return Err(Invalid::Overflow);
        }
        if n.exponent < MIN_EXPONENT {
            return Err(Invalid::Underflow);
        }
        Ok(n)
    }

    /// Whether the magnitude lies within `10^min` and `10^max`, both included (zero does).
    pub fn within_powers_of_ten(&self, min: i64, max: i64) -> bool {
        // The value is 0.d… × 10^exponent: at least 10^(exponent-1), below 10^exponent.
        self.is_zero()
            || (self.exponent > min
                && (self.exponent <= max || (self.exponent == max + 1 && self.digits == [1])))
    }

    fn is_zero(&self) -> bool {
        self.digits.is_empty()
    }

    /// The order of magnitudes (both signs ignored).
    fn cmp_magnitude(&self, other: &Number) -> Ordering {
        match (self.is_zero(), other.is_zero()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => self
                .exponent
                .cmp(&other.exponent)
                .then_with(|| self.digits.cmp(&other.digits)),
        }
    }
}

impl Ord for Number {
    fn cmp(&self, other: &Number) -> Ordering {
        let sign = |n: &Number| {
            if n.is_zero() {
                0
            } else if n.negative {
                -1
            } else {
                1
            }
        };
        match sign(self).cmp(&sign(other)) {
            Ordering::Equal if self.negative => other.cmp_magnitude(self),
            Ordering::Equal => self.cmp_magnitude(other),
            unequal => unequal,
        }
    }
}

impl PartialOrd for Number {
    fn partial_cmp(&self, other: &Number) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Refuses a value holding a number DynamoDB would refuse, anywhere inside it, with
/// DynamoDB's ValidationException.
pub fn check(value: &AttributeValue) -> Result<(), AwsError> {
    let refuse = |e: Invalid| validation(e.message());
    match value {
        AttributeValue::N(n) => Number::parse(n).map(drop).map_err(refuse),
        AttributeValue::Ns(set) => set
            .iter()
            .try_for_each(|n| Number::parse(n).map(drop).map_err(refuse)),
        AttributeValue::L(list) => list.iter().try_for_each(check),
        AttributeValue::M(map) => map.values().try_for_each(check),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(text: &str) -> Number {
        Number::parse(text).unwrap_or_else(|e| panic!("{text}: {e:?}"))
    }

    #[test]
    fn equal_values_in_any_spelling_are_equal() {
        for (a, b) in [
            ("60.07", "60.070"),
            ("1", "1.0"),
            ("100", "1E2"),
            ("0.001", "1e-3"),
            ("0", "-0.000"),
            ("007", "7"),
            ("+5", "5"),
            (".5", "0.5"),
        ] {
            assert_eq!(n(a), n(b), "{a} = {b}");
        }
    }

    #[test]
    fn numbers_order_by_value_past_28_digits_and_far_exponents() {
        let ascending = [
            "-9.9999999999999999999999999999999999999E+125",
            "-12345678901234567890123456789012345678",
            "-1",
            "-1E-130",
            "0",
            "1E-130",
            "0.5",
            "1",
            "12345678901234567890123456789",
            "12345678901234567890123456790",
            "1E100",
            "9.9999999999999999999999999999999999999E+125",
        ];
        for pair in ascending.windows(2) {
            assert!(n(pair[0]) < n(pair[1]), "{} < {}", pair[0], pair[1]);
            assert!(n(pair[1]) > n(pair[0]), "{} > {}", pair[1], pair[0]);
        }
    }

    #[test]
    fn bounds_by_powers_of_ten_include_both_ends() {
        let read = |t: &str| Number::read(t).unwrap();
        for inside in ["0", "1E126", "-1E126", "1E-128", "9.99E125", "5"] {
            assert!(read(inside).within_powers_of_ten(-128, 126), "{inside}");
        }
        for outside in ["1.1E126", "1E127", "9E-129", "-1E-129"] {
            assert!(!read(outside).within_powers_of_ten(-128, 126), "{outside}");
        }
    }

    /// The limits of HowItWorks.NamingRulesDataTypes.html, with DynamoDB's messages.
    #[test]
    fn what_dynamodb_refuses_is_refused_in_its_words() {
        for (text, why) in [
            ("abc", Invalid::NotANumber),
            ("", Invalid::NotANumber),
            (" 1", Invalid::NotANumber),
            ("1 ", Invalid::NotANumber),
            ("1e", Invalid::NotANumber),
            ("1.2.3", Invalid::NotANumber),
            ("NaN", Invalid::NotANumber),
            ("Infinity", Invalid::NotANumber),
            ("0x10", Invalid::NotANumber),
            (
                "123456789012345678901234567890123456789",
                Invalid::TooManyDigits,
            ),
            ("1E126", Invalid::Overflow),
            ("1E-131", Invalid::Underflow),
            ("1E99999999999999999999", Invalid::Overflow),
        ] {
            assert_eq!(Number::parse(text), Err(why), "{text:?}");
        }
        n("12345678901234567890123456789012345678");
        n("1234567890123456789012345678901234567800000");
        let e = check(&AttributeValue::L(vec![AttributeValue::N("x".into())])).unwrap_err();
        assert_eq!(
            e.message,
            "A value provided cannot be converted into a number"
        );
    }
}
