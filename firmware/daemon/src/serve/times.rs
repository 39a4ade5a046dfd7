//! Times in API queries: RFC 3339 (`2026-01-01T10:02:00Z`, any offset) or Unix milliseconds.
//! Pure parsing, no I/O; the result is Unix milliseconds like every wall time in the store.

/// Why a query time was refused (the 400 response names the parameter and this).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is neither RFC 3339 (e.g. 2026-01-01T10:02:00Z) nor Unix milliseconds")]
pub struct TimeError {
    /// The text that was given.
    pub value: String,
}

/// Parses `text` as Unix milliseconds (an optionally signed integer) or an RFC 3339 timestamp.
pub fn parse_query_time_ms(text: &str) -> Result<i64, TimeError> {
    let text = text.trim();
    let error = || TimeError {
        value: text.to_owned(),
    };
    let digits = text.strip_prefix('-').unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<i64>().map_err(|_| error());
    }
    let timestamp: jiff::Timestamp = text.parse().map_err(|_| error())?;
    Ok(timestamp.as_millisecond())
}

/// Formats Unix milliseconds as RFC 3339 in UTC with milliseconds (for JSON and headers).
pub fn format_ms(wall_ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(wall_ms) {
        Ok(timestamp) => format!("{timestamp:.3}"),
        Err(_) => wall_ms.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_ms_and_rfc3339_agree() {
        assert_eq!(parse_query_time_ms("1767225600000"), Ok(1_767_225_600_000));
        assert_eq!(
            parse_query_time_ms("2026-01-01T00:00:00Z"),
            Ok(1_767_225_600_000)
        );
        assert_eq!(
            parse_query_time_ms("2026-01-01T01:00:00.250+01:00"),
            Ok(1_767_225_600_250)
        );
        assert_eq!(parse_query_time_ms("-5"), Ok(-5));
    }

    #[test]
    fn garbage_is_refused_with_the_text() {
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "12:00",
            "99999999999999999999",
            "-",
        ] {
            let error = parse_query_time_ms(bad).unwrap_err();
            assert_eq!(error.value, bad.trim());
        }
    }

    #[test]
    fn formats_in_utc_with_milliseconds() {
        assert_eq!(format_ms(1_767_225_600_250), "2026-01-01T00:00:00.250Z");
    }
}
