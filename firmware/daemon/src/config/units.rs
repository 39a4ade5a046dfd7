//! The value types of the config file that are not plain TOML: durations as humantime strings
//! ("10s", "2m 30s"), sizes as "512MiB", "8GiB", "1.5GB" or a plain number of bytes, and
//! percentages as "25%".
//!
//! Parsing only; no I/O.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A duration written as a humantime string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// From whole seconds (defaults).
    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"10s\" or \"2m\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<HumanDuration, E> {
                humantime::parse_duration(s)
                    .map(HumanDuration)
                    .map_err(|e| E::custom(format!("invalid duration {s:?}: {e}")))
            }
        }
        deserializer.deserialize_str(V)
    }
}

/// A whole percentage from 0 to 100, written "25%".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Percent(pub u32);

impl std::str::FromStr for Percent {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || {
            format!("invalid percentage {s:?}: write a whole number from 0 to 100 and '%', e.g. \"25%\"")
        };
        let number = s.trim().strip_suffix('%').ok_or_else(invalid)?;
        let value: u32 = number.trim().parse().map_err(|_| invalid())?;
        if value > 100 {
            return Err(format!("{s:?} is more than 100%"));
        }
        Ok(Percent(value))
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Percent;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a percentage such as \"25%\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Percent, E> {
                s.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(V)
    }
}

/// A size in bytes, written "512MiB", "8GiB", "1.5GB", "4096" (bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl std::str::FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_size(s).map(ByteSize)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size string such as \"512MiB\" or \"8GiB\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ByteSize, E> {
                parse_size(s).map(ByteSize).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<ByteSize, E> {
                u64::try_from(n)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("a size cannot be negative ({n})")))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// Parses "512MiB", "8GiB", "1.5GB", "100kB", "4096" (bytes). Binary (KiB, MiB, GiB, TiB) and
/// decimal (kB/KB, MB, GB, TB) units; "B" or no unit means bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let trimmed = s.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        "TiB" | "T" => 1 << 40,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        other => {
            return Err(format!(
                "invalid size {s:?}: unknown unit {other:?} (use B, KiB, MiB, GiB, TiB, kB, MB, GB, TB)"
            ))
        }
    };
    if number.is_empty() {
        return Err(format!("invalid size {s:?}: no number"));
    }
    if let Ok(whole) = number.parse::<u64>() {
        return whole
            .checked_mul(multiplier)
            .ok_or_else(|| format!("invalid size {s:?}: too large"));
    }
    let fractional: f64 = number
        .parse()
        .map_err(|_| format!("invalid size {s:?}: {number:?} is not a number"))?;
    let bytes = fractional * multiplier as f64;
    // 2^64 as f64: anything at or above does not fit.
    if !bytes.is_finite() || bytes >= 18_446_744_073_709_551_616.0 {
        return Err(format!("invalid size {s:?}: too large"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("8GiB"), Ok(8 << 30));
        assert_eq!(parse_size("1.5GB"), Ok(1_500_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size(" 10 MB "), Ok(10_000_000));
        assert!(parse_size("8Gb").unwrap_err().contains("unknown unit"));
        assert!(parse_size("GiB").unwrap_err().contains("no number"));
        assert!(parse_size("99999999999TiB")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_size("1.2.3MiB").is_err());
    }

    #[test]
    fn durations() {
        #[derive(Deserialize)]
        struct T {
            d: HumanDuration,
        }
        let t: T = toml::from_str("d = \"2m 30s\"").unwrap();
        assert_eq!(t.d.0, Duration::from_secs(150));
        let e = toml::from_str::<T>("d = \"10 parsecs\"").err().unwrap();
        assert!(e.message().contains("invalid duration"), "{e}");
    }
}
