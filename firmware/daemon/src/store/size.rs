//! Parsing sizes written by people ("512MiB", "8GiB", "4G", "1000000") into bytes. No I/O.

/// Why a size string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid size {input:?}: {problem} (examples: 512MiB, 8GiB, 4G, 1048576)")]
pub struct SizeError {
    /// What was given.
    pub input: String,
    /// What is wrong with it.
    pub problem: &'static str,
}

/// Parses a byte count with an optional unit: B, K/KB/KiB, M/MB/MiB, G/GB/GiB, T/TB/TiB.
/// Binary and decimal spellings both mean powers of 1024, as disk tools show sizes; fractions
/// ("1.5GiB") are accepted and rounded down to a byte.
pub fn parse_size_bytes(input: &str) -> Result<u64, SizeError> {
    let error = |problem| SizeError {
        input: input.to_owned(),
        problem,
    };
    let trimmed = input.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    if number.is_empty() {
        return Err(error("no number"));
    }
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(error("unknown unit")),
    };
    if let Ok(whole) = number.parse::<u64>() {
        return whole
            .checked_mul(multiplier)
            .ok_or_else(|| error("too large"));
    }
    let value: f64 = number.parse().map_err(|_| error("not a number"))?;
    let bytes = value * multiplier as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(error("too large"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_size_bytes("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size_bytes("8GiB"), Ok(8 << 30));
        assert_eq!(parse_size_bytes("4G"), Ok(4 << 30));
        assert_eq!(parse_size_bytes("1.5 GiB"), Ok(3 << 29));
        assert_eq!(parse_size_bytes("1048576"), Ok(1 << 20));
        assert!(parse_size_bytes("8 parsecs").is_err());
        assert!(parse_size_bytes("GiB").is_err());
        assert!(parse_size_bytes("99999999999999999999TiB").is_err());
    }
}
