//! Times as people type them for `--from`/`--to`: RFC 3339 (`2026-01-01T10:02:00Z`), local
//! `YYYY-MM-DD HH:MM[:SS]`, `HH:MM[:SS]` (today, local), relative `-5m` / `-1h30m` (before now),
//! `now`, or Unix milliseconds. Pure: the caller passes "now" in the local zone, so tests pin it.

use jiff::civil::{Date, DateTime, Time};
use jiff::{Timestamp, Zoned};

/// A time that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot read time {text:?}: use RFC 3339 (2026-01-01T10:02:00Z), \"YYYY-MM-DD HH:MM[:SS]\", \
     \"HH:MM[:SS]\" (today), a relative \"-5m\", \"now\" or Unix milliseconds"
)]
pub struct TimeError {
    /// What was given.
    pub text: String,
}

/// Parses `text` relative to `now` (whose time zone is the local one); returns Unix ms.
pub fn parse_time_ms(text: &str, now: &Zoned) -> Result<i64, TimeError> {
    let text = text.trim();
    let error = || TimeError {
        text: text.to_owned(),
    };
    if text.eq_ignore_ascii_case("now") {
        return Ok(now.timestamp().as_millisecond());
    }
    if let Some(ago) = text.strip_prefix('-') {
        let ago = humantime::parse_duration(ago).map_err(|_| error())?;
        let ago_ms = i64::try_from(ago.as_millis()).map_err(|_| error())?;
        return Ok(now.timestamp().as_millisecond() - ago_ms);
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|_| error());
    }
    if let Ok(timestamp) = text.parse::<Timestamp>() {
        return Ok(timestamp.as_millisecond());
    }
    let local = |civil: DateTime| {
        civil
            .to_zoned(now.time_zone().clone())
            .map(|z| z.timestamp().as_millisecond())
            .map_err(|_| error())
    };
    // "YYYY-MM-DD HH:MM[:SS]" (a 'T' works too).
    if let Some((date, time)) = text.split_once([' ', 'T']) {
        let date: Date = date.trim().parse().map_err(|_| error())?;
        let time = parse_clock(time.trim()).ok_or_else(error)?;
        return local(date.to_datetime(time));
    }
    if let Some(time) = parse_clock(text) {
        return local(now.date().to_datetime(time));
    }
    Err(error())
}

/// `HH:MM` or `HH:MM:SS`.
fn parse_clock(text: &str) -> Option<Time> {
    let parts: Vec<&str> = text.split(':').collect();
    if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.len() != 2) {
        return None;
    }
    let number = |part: Option<&&str>| -> Option<i8> {
        part.filter(|p| p.bytes().all(|b| b.is_ascii_digit()))?
            .parse()
            .ok()
    };
    let hour = number(parts.first())?;
    let minute = number(parts.get(1))?;
    let second = if parts.len() == 3 {
        number(parts.get(2))?
    } else {
        0
    };
    Time::new(hour, minute, second, 0).ok()
}

/// Unix ms as local `YYYY-MM-DD HH:MM:SS` (for tables).
pub fn format_local(wall_ms: i64, zone: &jiff::tz::TimeZone) -> String {
    match Timestamp::from_millisecond(wall_ms) {
        Ok(timestamp) => timestamp
            .to_zoned(zone.clone())
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string(),
        Err(_) => wall_ms.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-03-10 14:30:00 in Berlin (UTC+1 then), a zone other than UTC so local parsing shows.
    fn now() -> Zoned {
        "2026-03-10T14:30:00+01:00[Europe/Berlin]".parse().unwrap()
    }

    fn ms(rfc3339: &str) -> i64 {
        rfc3339.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn every_accepted_form() {
        let now = now();
        let cases = [
            ("2026-03-10T09:00:00Z", ms("2026-03-10T09:00:00Z")),
            ("2026-03-10T10:00:00+01:00", ms("2026-03-10T09:00:00Z")),
            ("2026-03-10 10:02", ms("2026-03-10T09:02:00Z")),
            ("2026-03-10 10:02:30", ms("2026-03-10T09:02:30Z")),
            ("2026-03-09T23:59:59", ms("2026-03-09T22:59:59Z")),
            ("10:02", ms("2026-03-10T09:02:00Z")),
            ("10:02:05", ms("2026-03-10T09:02:05Z")),
            ("-5m", ms("2026-03-10T13:25:00Z")),
            ("-1h 30m", ms("2026-03-10T12:00:00Z")),
            ("-90s", ms("2026-03-10T13:28:30Z")),
            ("now", ms("2026-03-10T13:30:00Z")),
            ("1767225600000", 1_767_225_600_000),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_time_ms(text, &now), Ok(expected), "{text}");
        }
    }

    #[test]
    fn summer_time_is_the_zone_of_that_day() {
        // July in Berlin is UTC+2, though "now" is in March (UTC+1).
        assert_eq!(
            parse_time_ms("2026-07-01 12:00", &now()),
            Ok(ms("2026-07-01T10:00:00Z"))
        );
    }

    #[test]
    fn nonsense_is_refused_with_the_text() {
        for bad in [
            "",
            "-",
            "-5 parsecs",
            "25:00",
            "10:60",
            "1:2",
            "10:02:03:04",
            "2026-13-01 10:00",
            "2026-03-10",
            "yesterday",
            "10h",
        ] {
            let error = parse_time_ms(bad, &now()).unwrap_err();
            assert_eq!(error.text, bad.trim(), "{bad}");
        }
    }

    #[test]
    fn tables_show_local_time() {
        let zone = now().time_zone().clone();
        assert_eq!(
            format_local(ms("2026-03-10T09:02:00Z"), &zone),
            "2026-03-10 10:02:00"
        );
    }
}
