//! `nvrctl state` and `nvrctl watch`: show a box's sensors once, or live.
//!
//! Owns the reconnect loop. Receives a `HOST:PORT` and two writers (data, status); emits a
//! table or JSON to the data writer and human status lines ("connected", "connection lost,
//! reconnecting in 2s", "sequence gap: resynchronising") to the status writer. Blocking I/O on
//! the calling thread. A closed data writer (a pipe to `head`) ends `watch` successfully.

use std::io::{self, Write};
use std::time::Duration;

use crate::client::{ClientError, StateConnection};
use crate::view::{rfc3339, role_name, value_text, StateView, ViewError};

/// First wait before reconnecting; doubled after each failure up to [`MAX_BACKOFF`].
const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait between reconnect attempts: a box back after an outage is seen within 30 s.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How `watch` shows state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchOutput {
    /// One JSON object per value (snapshot values, then changes).
    JsonLines,
    /// The whole table, redrawn on every change (for a terminal).
    Table,
}

/// Why `state` or `watch` stopped.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// Talking to the box failed (only `state` gives up on this).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// An argument cannot be used (e.g. a broker URL).
    #[error("{0}")]
    Invalid(String),
    /// Writing the output failed (other than a closed pipe).
    #[error("cannot write output: {0}")]
    Output(io::Error),
}

/// Prints one snapshot of `target` as a table, or as one JSON object.
pub fn state(target: &str, json: bool, out: &mut dyn Write) -> Result<(), WatchError> {
    let mut connection = StateConnection::open(target)?;
    let view = connection.read_snapshot()?;
    let text = if json {
        format!("{:#}\n", view.to_json())
    } else {
        render_table(view)
    };
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(WatchError::Output)
}

/// Follows `target` until the data writer closes, reconnecting with backoff when the
/// connection is lost and at once after a sequence gap (to resynchronise from a new snapshot).
pub fn watch(
    target: &str,
    output: WatchOutput,
    out: &mut dyn Write,
    status: &mut dyn Write,
) -> Result<(), WatchError> {
    let mut backoff = INITIAL_BACKOFF;
    loop {
        let failure = match StateConnection::open(target) {
            Ok(mut connection) => {
                let _ = writeln!(status, "nvrctl: connected to {target}");
                match follow(&mut connection, output, out) {
                    Ok(()) => return Ok(()),
                    Err(WatchError::Output(error)) if error.kind() == io::ErrorKind::BrokenPipe => {
                        return Ok(())
                    }
                    Err(error @ (WatchError::Output(_) | WatchError::Invalid(_))) => {
                        return Err(error)
                    }
                    Err(WatchError::Client(error)) => {
                        if connection.view().snapshot_complete {
                            // The session worked: this is a new outage, not the same one.
                            backoff = INITIAL_BACKOFF;
                        }
                        if let ClientError::View(ViewError::Gap { .. }) = error {
                            let _ = writeln!(status, "nvrctl: {error}: resynchronising");
                            continue;
                        }
                        error
                    }
                }
            }
            Err(error) => error,
        };
        let _ = writeln!(
            status,
            "nvrctl: {failure}; reconnecting in {}",
            humantime::format_duration(backoff)
        );
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Shows updates until the connection fails or the output closes.
fn follow(
    connection: &mut StateConnection,
    output: WatchOutput,
    out: &mut dyn Write,
) -> Result<(), WatchError> {
    loop {
        let updates = connection.read_updates()?;
        let view = connection.view();
        let text = match output {
            WatchOutput::JsonLines => updates
                .iter()
                .map(|update| format!("{}\n", view.update_json(update)))
                .collect(),
            // Redrawn once the snapshot is whole, then on every change.
            WatchOutput::Table if view.snapshot_complete && !updates.is_empty() => {
                format!("\x1b[H\x1b[2J{}", render_table(view))
            }
            WatchOutput::Table => String::new(),
        };
        if !text.is_empty() {
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(WatchError::Output)?;
        }
    }
}

/// The sensors of `view` as an aligned text table.
pub fn render_table(view: &StateView) -> String {
    let mut rows: Vec<[String; 4]> = vec![[
        "SENSOR".to_string(),
        "ROLE".to_string(),
        "VALUE".to_string(),
        "SINCE".to_string(),
    ]];
    for sensor in view.sensors.values() {
        let (value, since) = match &sensor.value {
            Some((value, time_ms)) => (value_text(value, &sensor.kind), rfc3339(*time_ms)),
            None => ("-".to_string(), "-".to_string()),
        };
        rows.push([
            sensor.name.clone(),
            role_name(sensor.role).to_string(),
            value,
            since,
        ]);
    }
    let mut widths = [0usize; 4];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = format!(
        "box {}: {} sensors\n",
        view.box_name.as_deref().unwrap_or("?"),
        view.sensors.len()
    );
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use edgenvr_proto::Role;

    use super::*;
    use crate::view::{Sensor, SensorKind, SensorValue};

    #[test]
    fn the_table_is_aligned_and_shows_units() {
        let mut view = StateView::default();
        view.box_name = Some("garage".into());
        view.sensors.insert(
            0,
            Sensor {
                id: 0,
                name: "front_door_pir".into(),
                kind: SensorKind::Binary,
                role: Role::Sensor,
                value: Some((SensorValue::Binary(true), 0)),
            },
        );
        view.sensors.insert(
            1,
            Sensor {
                id: 1,
                name: "temp".into(),
                kind: SensorKind::Scalar { unit: "°C".into() },
                role: Role::Health,
                value: None,
            },
        );
        let table = render_table(&view);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "box garage: 2 sensors");
        assert_eq!(lines[1], "SENSOR          ROLE    VALUE   SINCE");
        assert_eq!(
            lines[2],
            "front_door_pir  sensor  active  1970-01-01T00:00:00.000Z"
        );
        assert_eq!(lines[3], "temp            health  -       -");
    }
}
