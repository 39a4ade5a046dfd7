//! `nvrctl recordings`: a box's recordings (time ranges with gaps, and events) from
//! `GET /api/recordings`, as a table in local time or as the box's JSON.

use std::io::{self, Write};

use crate::http::{BoxClient, HttpError};
use crate::times::format_local;

/// What to list.
#[derive(Clone, Debug, Default)]
pub struct RecordingsQuery {
    /// Only this camera.
    pub camera: Option<String>,
    /// Only ranges ending after this (Unix ms).
    pub from_ms: Option<i64>,
    /// Only ranges starting before this (Unix ms).
    pub to_ms: Option<i64>,
}

/// Fetches the listing.
pub fn fetch(client: &BoxClient, query: &RecordingsQuery) -> Result<serde_json::Value, HttpError> {
    let mut pairs = Vec::new();
    if let Some(camera) = &query.camera {
        pairs.push(("camera", camera.clone()));
    }
    if let Some(from) = query.from_ms {
        pairs.push(("from", from.to_string()));
    }
    if let Some(to) = query.to_ms {
        pairs.push(("to", to.to_string()));
    }
    client.get_json(&client.url("/api/recordings", &pairs))
}

/// Writes the listing as a table: one line per range and per event, times in `zone`.
pub fn write_table(
    listing: &serde_json::Value,
    zone: &jiff::tz::TimeZone,
    out: &mut dyn Write,
) -> io::Result<()> {
    let cameras = listing
        .get("cameras")
        .and_then(|c| c.as_array())
        .map(Vec::as_slice)
        .unwrap_or_default();
    if cameras.is_empty() {
        writeln!(out, "no recordings")?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<12} {:<6} {:<19}  {:<19}  {:>9}  {:>9}  NOTE",
        "CAMERA", "KIND", "START", "END", "LENGTH", "SIZE"
    )?;
    for camera in cameras {
        let name = camera.get("camera").and_then(|c| c.as_str()).unwrap_or("?");
        let field = |v: &serde_json::Value, key: &str| v.get(key).and_then(|x| x.as_i64());
        for range in camera
            .get("ranges")
            .and_then(|r| r.as_array())
            .into_iter()
            .flatten()
        {
            let (Some(start), Some(end)) = (field(range, "start_ms"), field(range, "end_ms"))
            else {
                continue;
            };
            let note = match (
                field(range, "gap_before_ms"),
                range.get("clock_jump_before").and_then(|j| j.as_bool()),
            ) {
                (Some(gap), Some(true)) => format!("clock stepped {}", signed_duration(gap)),
                (Some(gap), _) => format!("after a gap of {}", signed_duration(gap)),
                _ => String::new(),
            };
            let line = format!(
                "{:<12} {:<6} {:<19}  {:<19}  {:>9}  {:>9}  {note}",
                name,
                "video",
                format_local(start, zone),
                format_local(end, zone),
                duration(field(range, "duration_ms").unwrap_or(end - start)),
                size(range.get("bytes").and_then(|b| b.as_u64()).unwrap_or(0)),
            );
            writeln!(out, "{}", line.trim_end())?;
        }
        for event in camera
            .get("events")
            .and_then(|e| e.as_array())
            .into_iter()
            .flatten()
        {
            let (Some(start), Some(end)) = (field(event, "start_ms"), field(event, "end_ms"))
            else {
                continue;
            };
            let sensors: Vec<&str> = event
                .get("sensors")
                .and_then(|s| s.as_array())
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str())
                .collect();
            let id = event
                .get("id")
                .and_then(|i| i.as_u64())
                .map_or_else(String::new, |id| format!("#{id}"));
            let line = format!(
                "{:<12} {:<6} {:<19}  {:<19}  {:>9}  {:>9}  {}",
                name,
                "event",
                format_local(start, zone),
                format_local(end, zone),
                duration(field(event, "duration_ms").unwrap_or(end - start)),
                id,
                sensors.join(", "),
            );
            writeln!(out, "{}", line.trim_end())?;
        }
    }
    Ok(())
}

fn duration(ms: i64) -> String {
    let seconds = ms.max(0) / 1000;
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if h > 0 {
        format!("{h}h{m:02}m{s:02}s")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

fn signed_duration(ms: i64) -> String {
    if ms < 0 {
        format!("back {}", duration(-ms))
    } else {
        duration(ms)
    }
}

fn size(bytes: u64) -> String {
    // Binary units, one decimal: what `ls -lh` users read.
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS.get(unit).copied().unwrap_or("B"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lines_per_range_and_event() {
        let listing = serde_json::json!({"cameras": [{
            "camera": "front",
            "ranges": [
                {"start_ms": 1_767_225_600_000i64, "end_ms": 1_767_225_640_000i64,
                 "duration_ms": 40_000, "bytes": 3_145_728, "gap_before_ms": null,
                 "clock_jump_before": false},
                {"start_ms": 1_767_225_700_000i64, "end_ms": 1_767_229_300_000i64,
                 "duration_ms": 3_600_000, "bytes": 10, "gap_before_ms": 60_000,
                 "clock_jump_before": false}
            ],
            "events": [{"start_ms": 1_767_225_610_000i64, "end_ms": 1_767_225_625_000i64}]
        }]});
        let mut out = Vec::new();
        write_table(&listing, &jiff::tz::TimeZone::UTC, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(
            lines[1].contains("2026-01-01 00:00:00  2026-01-01 00:00:40"),
            "{text}"
        );
        assert!(
            lines[1].contains("40s") && lines[1].contains("3.0 MiB"),
            "{text}"
        );
        assert!(lines[2].contains("1h00m00s") && lines[2].contains("after a gap of 1m00s"));
        assert!(
            lines[3].contains("event") && lines[3].contains("15s"),
            "{text}"
        );
    }

    #[test]
    fn an_empty_listing_says_so() {
        let mut out = Vec::new();
        write_table(
            &serde_json::json!({"cameras": []}),
            &jiff::tz::TimeZone::UTC,
            &mut out,
        )
        .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "no recordings\n");
    }
}
