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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
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
        let v = i64::deserialize(d)?;
        Units::new(v).ok_or_else(|| serde::de::Error::custom("must be a non-negative integer"))
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
    }
}
