//! `nvrctl state` and `nvrctl watch`: show the sensors of one box or several, once or live.
//!
//! Owns the reconnect loop of each target, one thread per target. Receives `HOST:PORT` targets
//! and two writers (data, status); emits, grouped by box, a table or JSON to the data writer —
//! each box with its link status (connecting, connected, lost and retrying) — and human status
//! lines ("connected", "connection lost, reconnecting in 2s", "sequence gap: resynchronising")
//! to the status writer. Blocking I/O; the per-target threads hand their output to the calling
//! thread, which alone writes. A closed data writer (a pipe to `head`) ends `watch`
//! successfully; the target threads end at their next message.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::json;

use crate::client::{ClientError, StateConnection};
use crate::view::{rfc3339, role_name, value_text, StateView, ViewError};

/// First wait before reconnecting; doubled after each failure up to [`MAX_BACKOFF`].
const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait between reconnect attempts: a box back after an outage is seen within 30 s.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How `watch` shows state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchOutput {
    /// One JSON object per value (snapshot values, then changes) and per link change.
    JsonLines,
    /// The whole table of every box, redrawn on every change (for a terminal).
    Table,
}

/// Why `state` or `watch` stopped.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// Talking to the box failed (only `state` gives up on this).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Some of several boxes could not be read (`state`; the others were shown).
    #[error("{failed} of {total} boxes could not be read")]
    Some {
        /// How many failed.
        failed: usize,
        /// How many were asked.
        total: usize,
    },
    /// An argument cannot be used (e.g. a broker URL).
    #[error("{0}")]
    Invalid(String),
    /// Writing the output failed (other than a closed pipe).
    #[error("cannot write output: {0}")]
    Output(io::Error),
}

/// The state of one box's link, as `watch` shows it next to the box.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    /// Connecting (first attempt or again).
    Connecting,
    /// The session is up and the snapshot has arrived.
    Connected,
    /// The session failed; the next attempt comes after the wait.
    Lost {
        /// Why.
        error: String,
        /// Wait before the next attempt.
        retry_in: Duration,
    },
}

impl Link {
    /// The link in words: `connected`, `lost (why); retrying in 2s`.
    pub fn text(&self) -> String {
        match self {
            Link::Connecting => "connecting".into(),
            Link::Connected => "connected".into(),
            Link::Lost { error, retry_in } => format!(
                "lost ({error}); retrying in {}",
                humantime::format_duration(*retry_in)
            ),
        }
    }

    fn json(&self, target: &str, box_name: Option<&str>) -> serde_json::Value {
        let mut line = json!({"event": "link", "target": target, "box": box_name});
        match self {
            Link::Connecting => line["status"] = json!("connecting"),
            Link::Connected => line["status"] = json!("connected"),
            Link::Lost { error, retry_in } => {
                line["status"] = json!("lost");
                line["error"] = json!(error);
                line["retry_in_ms"] = json!(retry_in.as_millis() as u64);
            }
        }
        line
    }
}

/// Prints one snapshot of each target: a table per box (or one JSON object; with several
/// targets `{"boxes": [...]}`, each with its `target` and `link`). Several targets are read at
/// once; a box that cannot be read is shown as such and the others still are.
pub fn state(targets: &[String], json: bool, out: &mut dyn Write) -> Result<(), WatchError> {
    if let [target] = targets {
        let mut connection = StateConnection::open(target)?;
        let view = connection.read_snapshot()?;
        let text = if json {
            format!("{:#}\n", view.to_json())
        } else {
            render_table(view)
        };
        return write_out(out, &text);
    }
    let readers: Vec<_> = targets
        .iter()
        .map(|target| {
            let target = target.clone();
            std::thread::spawn(move || {
                let mut connection = StateConnection::open(&target)?;
                connection.read_snapshot().cloned()
            })
        })
        .collect();
    let results: Vec<(String, Result<StateView, String>)> = targets
        .iter()
        .zip(readers)
        .map(|(target, reader)| {
            let result = reader
                .join()
                .map_err(|_| "reader thread failed".to_string())
                .and_then(|r| r.map_err(|e: ClientError| e.to_string()));
            (target.clone(), result)
        })
        .collect();
    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    let text = if json {
        let boxes: Vec<serde_json::Value> = results
            .iter()
            .map(|(target, result)| match result {
                Ok(view) => {
                    let mut object = view.to_json();
                    object["target"] = json!(target);
                    object["link"] = json!("ok");
                    object
                }
                Err(error) => json!({"target": target, "link": "error", "error": error}),
            })
            .collect();
        format!("{:#}\n", json!({ "boxes": boxes }))
    } else {
        let mut text = String::new();
        for (target, result) in &results {
            match result {
                Ok(view) => text.push_str(&render_box(target, view, "ok")),
                Err(error) => text.push_str(&format!("{target}: cannot read: {error}\n")),
            }
            text.push('\n');
        }
        text
    };
    write_out(out, &text)?;
    if failed > 0 {
        return Err(WatchError::Some {
            failed,
            total: targets.len(),
        });
    }
    Ok(())
}

fn write_out(out: &mut dyn Write, text: &str) -> Result<(), WatchError> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(WatchError::Output)
}

/// What a target's thread tells the writer.
enum Message {
    /// JSON lines.
    Lines { text: String },
    /// The link changed; the status line to print.
    Link {
        target: usize,
        box_name: Option<String>,
        link: Link,
        status: String,
    },
    /// A copy of the view, for a table.
    View { target: usize, view: StateView },
}

/// Follows every target until the data writer closes, reconnecting each with backoff when its
/// connection is lost and at once after a sequence gap (to resynchronise from a new snapshot).
pub fn watch(
    targets: &[String],
    output: WatchOutput,
    out: &mut dyn Write,
    status: &mut dyn Write,
) -> Result<(), WatchError> {
    let (sender, messages) = mpsc::channel();
    for (index, target) in targets.iter().enumerate() {
        let (sender, target) = (sender.clone(), target.clone());
        std::thread::spawn(move || follow_target(index, &target, output, &sender));
    }
    drop(sender);
    let mut links: Vec<Link> = vec![Link::Connecting; targets.len()];
    let mut views: Vec<Option<StateView>> = vec![None; targets.len()];
    // The last box name each target's hello gave, for its link lines.
    let mut names: Vec<Option<String>> = vec![None; targets.len()];
    for message in messages {
        let text = match message {
            Message::Lines { text, .. } => text,
            Message::Link {
                target,
                box_name,
                link,
                status: line,
            } => {
                let _ = writeln!(status, "{line}");
                if let Some(slot) = links.get_mut(target) {
                    *slot = link.clone();
                }
                if let (Some(slot), Some(name)) = (names.get_mut(target), box_name) {
                    *slot = Some(name);
                }
                let box_name = names.get(target).cloned().flatten();
                match output {
                    WatchOutput::JsonLines => {
                        let name = targets.get(target).map_or("", String::as_str);
                        format!("{}\n", link.json(name, box_name.as_deref()))
                    }
                    WatchOutput::Table => render_all(targets, &links, &views),
                }
            }
            Message::View { target, view } => {
                if let Some(slot) = views.get_mut(target) {
                    *slot = Some(view);
                }
                render_all(targets, &links, &views)
            }
        };
        if !emit(out, &text)? {
            return Ok(());
        }
    }
    Ok(())
}

/// Writes `text` (nothing when empty); `Ok(false)` when the reader has gone (a closed pipe,
/// which ends a watch successfully).
pub(crate) fn emit(out: &mut dyn Write, text: &str) -> Result<bool, WatchError> {
    if text.is_empty() {
        return Ok(true);
    }
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(error) => Err(WatchError::Output(error)),
    }
}

fn render_all(targets: &[String], links: &[Link], views: &[Option<StateView>]) -> String {
    let mut text = String::from("\x1b[H\x1b[2J");
    for ((target, link), view) in targets.iter().zip(links).zip(views) {
        match view {
            Some(view) => text.push_str(&render_box(target, view, &link.text())),
            None => text.push_str(&format!("{target}: {}\n", link.text())),
        }
        text.push('\n');
    }
    text
}

/// One target's reconnect loop; ends when the writer is gone.
fn follow_target(index: usize, target: &str, output: WatchOutput, sender: &mpsc::Sender<Message>) {
    let link = |link: Link, status: String| Message::Link {
        target: index,
        box_name: None,
        link,
        status,
    };
    let mut backoff = INITIAL_BACKOFF;
    loop {
        let failure = match StateConnection::open(target) {
            Ok(mut connection) => {
                let sent = sender.send(link(
                    Link::Connecting,
                    format!("nvrctl: connected to {target}"),
                ));
                if sent.is_err() {
                    return;
                }
                match follow(index, &mut connection, output, sender) {
                    // The writer is gone.
                    None => return,
                    Some(error) => {
                        if connection.view().snapshot_complete {
                            // The session worked: this is a new outage, not the same one.
                            backoff = INITIAL_BACKOFF;
                        }
                        if let ClientError::View(ViewError::Gap { .. }) = error {
                            let line = format!("nvrctl: {target}: {error}: resynchronising");
                            if sender.send(link(Link::Connecting, line)).is_err() {
                                return;
                            }
                            continue;
                        }
                        error
                    }
                }
            }
            Err(error) => error,
        };
        let status = format!(
            "nvrctl: {target}: {failure}; reconnecting in {}",
            humantime::format_duration(backoff)
        );
        let lost = Link::Lost {
            error: failure.to_string(),
            retry_in: backoff,
        };
        if sender.send(link(lost, status)).is_err() {
            return;
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Hands over updates until the connection fails (returns the error) or the writer is gone
/// (returns `None`).
fn follow(
    index: usize,
    connection: &mut StateConnection,
    output: WatchOutput,
    sender: &mpsc::Sender<Message>,
) -> Option<ClientError> {
    let mut connected = false;
    loop {
        let updates = match connection.read_updates() {
            Ok(updates) => updates,
            Err(error) => return Some(error),
        };
        let view = connection.view();
        if view.snapshot_complete && !connected {
            connected = true;
            let line = format!(
                "nvrctl: box {} is live{}",
                view.box_name.as_deref().unwrap_or("?"),
                if connection.catalog_from_cache() {
                    " (catalog from the cache)"
                } else {
                    ""
                }
            );
            let message = Message::Link {
                target: index,
                box_name: view.box_name.clone(),
                link: Link::Connected,
                status: line,
            };
            if sender.send(message).is_err() {
                return None;
            }
        }
        let message = match output {
            WatchOutput::JsonLines if !updates.is_empty() => Message::Lines {
                text: updates
                    .iter()
                    .map(|update| format!("{}\n", view.update_json(update)))
                    .collect(),
            },
            // Redrawn once the snapshot is whole, then on every change.
            WatchOutput::Table if view.snapshot_complete && !updates.is_empty() => Message::View {
                target: index,
                view: view.clone(),
            },
            _ => continue,
        };
        if sender.send(message).is_err() {
            return None;
        }
    }
}

/// One box: a header with its target and link, then its table.
pub fn render_box(target: &str, view: &StateView, link: &str) -> String {
    let table = render_table(view);
    let mut lines = table.splitn(2, '\n');
    let _ = lines.next();
    format!(
        "box {} ({target}, {link}): {} sensors\n{}",
        view.box_name.as_deref().unwrap_or("?"),
        view.sensors.len(),
        lines.next().unwrap_or_default()
    )
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
            Some((value, time_ms)) => (
                value_text(value, &sensor.kind, sensor.role),
                rfc3339(*time_ms),
            ),
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

/// Groups boxes by name for `--mqtt` and renders each with its status.
pub fn render_named_boxes<'a>(
    boxes: impl Iterator<Item = (&'a str, &'a StateView, String)>,
) -> String {
    let mut by_name: BTreeMap<&str, (&StateView, String)> = BTreeMap::new();
    for (name, view, link) in boxes {
        by_name.insert(name, (view, link));
    }
    let mut text = String::from("\x1b[H\x1b[2J");
    for (name, (view, link)) in by_name {
        let _ = name;
        text.push_str(&render_box("mqtt", view, &link));
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use edgenvr_proto::{camera_status_code, CameraReason, CameraRole, CameraState, Role};

    use super::*;
    use crate::view::{Sensor, SensorKind, SensorValue};

    fn garage() -> StateView {
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
        view
    }

    #[test]
    fn the_table_is_aligned_and_shows_units() {
        let table = render_table(&garage());
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "box garage: 2 sensors");
        assert_eq!(lines[1], "SENSOR          ROLE    VALUE   SINCE");
        assert_eq!(
            lines[2],
            "front_door_pir  sensor  active  1970-01-01T00:00:00.000Z"
        );
        assert_eq!(lines[3], "temp            health  -       -");
    }

    #[test]
    fn a_box_header_names_its_target_and_link_and_statuses_read_as_words() {
        let mut view = garage();
        view.sensors.insert(
            2,
            Sensor {
                id: 2,
                name: "front_status".into(),
                kind: SensorKind::Unsigned {
                    unit: String::new(),
                },
                role: Role::Camera(CameraRole::Status),
                value: Some((
                    SensorValue::Unsigned(camera_status_code(
                        CameraState::Offline,
                        CameraReason::AuthFailed,
                    )),
                    0,
                )),
            },
        );
        let text = render_box("10.0.0.2:7420", &view, "connected");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "box garage (10.0.0.2:7420, connected): 3 sensors");
        assert!(lines[1].starts_with("SENSOR"));
        assert!(
            lines[4].contains("camera:status  offline: auth_failed"),
            "{}",
            lines[4]
        );
        let lost = Link::Lost {
            error: "connection refused".into(),
            retry_in: Duration::from_secs(2),
        };
        assert_eq!(lost.text(), "lost (connection refused); retrying in 2s");
        assert_eq!(lost.json("t:1", Some("garage"))["status"], "lost");
    }
}
