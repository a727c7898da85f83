//! Units and exact integer amounts. An [`Amount`] is an int64 ≥ 0 in one [`Unit`]; only a
//! balance's `remaining` may be negative, and it is derived (allocated − spent − reserved −
//! debt), never stored.

use super::tenant::wire_enum;
use serde::{Deserialize, Serialize};

wire_enum!(
    /// The spec's `UnitEnum` (1 USD = 10^8 USD_MICROCENTS).
    Unit {
        UsdMicrocents = "USD_MICROCENTS",
        Tokens = "TOKENS",
        Credits = "CREDITS",
        RiskPoints = "RISK_POINTS",
    }
);

/// A non-negative int64 amount, validated once at the boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct Units(i64);

impl Units {
    pub const ZERO: Units = Units(0);

    pub fn new(v: i64) -> Option<Units> {
        (v >= 0).then_some(Units(v))
    }

    pub fn get(self) -> i64 {
        self.0
    }

    /// Parses a decimal produced by a ledger script.
    pub fn parse(s: &str) -> Option<Units> {
        s.parse::<i64>().ok().and_then(Units::new)
    }
}

impl<'de> Deserialize<'de> for Units {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = de_int(d)?;
        Units::new(v).ok_or_else(|| serde::de::Error::custom("must be a non-negative integer"))
    }
}

/// Largest magnitude at which a JSON number written with a fraction (`10.0`) still names
/// exactly one integer.
const EXACT_FLOAT_MAX: f64 = 9_007_199_254_740_992.0;

struct IntVisitor;

impl serde::de::Visitor<'_> for IntVisitor {
    type Value = i64;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an integer within the int64 range")
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::custom("must be within the int64 range"))
    }

    /// JSON Schema counts `10.0` as an integer; accept it where it is exact.
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<i64, E> {
        if v.fract() == 0.0 && v.abs() <= EXACT_FLOAT_MAX {
            Ok(v as i64)
        } else {
            Err(E::custom(format!("{v} is not an integer")))
        }
    }
}

/// Deserializes an integer, accepting integral numbers written with a fraction.
pub fn de_int<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    d.deserialize_any(IntVisitor)
}

/// [`de_int`] for optional fields (use with `#[serde(default)]`).
pub fn de_opt_int<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Option::<IntWrapper>::deserialize(d).map(|o| o.map(|w| w.0))
}

struct IntWrapper(i64);

impl<'de> Deserialize<'de> for IntWrapper {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de_int(d).map(IntWrapper)
    }
}

impl std::fmt::Display for Units {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_non_negative_across_the_int64_range() {
        assert_eq!(Units::new(i64::MAX).map(Units::get), Some(i64::MAX));
        assert!(Units::new(-1).is_none());
        assert_eq!(Units::parse("9223372036854775807"), Units::new(i64::MAX));
        assert!(Units::parse("9223372036854775808").is_none());
        assert!(serde_json::from_str::<Units>("-5").is_err());
        assert!(serde_json::from_str::<Units>("1.5").is_err());
        assert_eq!(serde_json::from_str::<Units>("10.0").map(Units::get).ok(), Some(10));
        assert!(serde_json::from_str::<Units>("\"10\"").is_err());
    }
}
