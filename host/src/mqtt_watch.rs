//! `nvrctl watch --mqtt URL`: every box on a broker, live, grouped by box with its status.
//!
//! Owns one broker connection (rumqttc's blocking client) and a [`StateView`] per box. Receives
//! the retained `edgenvr/<box>/status`, `catalog` and `snapshot` messages and the `state`
//! stream (see the box's `publish::mqtt` for the topics; at an office broker they arrive through
//! a bridge just the same); emits, like `watch`, JSON lines or a table per box headed by its
//! status (online, offline, waiting for its catalog), and status lines (connection lost and
//! reconnecting, a box going offline, a sequence gap waiting for the next snapshot, a box of a
//! newer protocol version). A retained snapshot that arrives before the catalog it needs is
//! kept and applied once the catalog is there. Blocking I/O on the calling thread.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use edgenvr_proto::{Feed, FrameDecoder, FrameError};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serde_json::json;

use crate::view::{StateView, Update, ViewError};
use crate::watch::{emit, render_named_boxes, WatchError, WatchOutput};

/// The broker port when the URL has none.
const DEFAULT_MQTT_PORT: u16 = 1883;
/// Largest message accepted: a 60,000-sensor catalog is ~1.5 MiB (the box's limit too).
const MAX_PACKET_BYTES: usize = 16 * 1024 * 1024;
/// First wait before reconnecting; doubled after each failure up to [`MAX_BACKOFF`].
const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait between reconnect attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Why the broker URL cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("bad MQTT URL {url:?}: {reason}")]
pub struct BadUrl {
    url: String,
    reason: String,
}

fn broker_address(url: &str) -> Result<(String, u16), BadUrl> {
    let bad = |reason: &str| BadUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let parsed = url::Url::parse(url).map_err(|error| bad(&error.to_string()))?;
    if !matches!(parsed.scheme(), "mqtt" | "tcp") {
        return Err(bad("the scheme must be mqtt:// or tcp://"));
    }
    let host = parsed.host_str().ok_or_else(|| bad("no host"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok((host.to_string(), parsed.port().unwrap_or(DEFAULT_MQTT_PORT)))
}

/// The topics `watch --mqtt` follows, of every box.
const TOPICS: [&str; 4] = [
    "edgenvr/+/status",
    "edgenvr/+/catalog",
    "edgenvr/+/snapshot",
    "edgenvr/+/state",
];

#[derive(Default)]
struct BoxState {
    view: StateView,
    /// Next sequence number on the box's `state` topic.
    state_seq: Option<u32>,
    /// What the box's `status` topic says (`online`, `offline`).
    status: Option<String>,
    /// A retained snapshot that came before the catalog it needs.
    waiting_snapshot: Option<Vec<u8>>,
}

impl BoxState {
    fn link_text(&self) -> String {
        let status = self.status.as_deref().unwrap_or("status unknown");
        if self.view.sensors.is_empty() || !self.view.catalog_complete() {
            format!("{status}, waiting for its catalog")
        } else {
            status.to_string()
        }
    }
}

/// Follows every box on the broker at `url` until the data writer closes.
pub fn watch_mqtt(
    url: &str,
    output: WatchOutput,
    out: &mut dyn Write,
    status: &mut dyn Write,
) -> Result<(), WatchError> {
    let (host, port) =
        broker_address(url).map_err(|error| WatchError::Invalid(error.to_string()))?;
    let client_id = format!("nvrctl-{}", std::process::id());
    let mut options = MqttOptions::new(client_id, host, port);
    options.set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
    // 30 s, as on the box.
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut connection) = Client::new(options, 16);
    let mut boxes: BTreeMap<String, BoxState> = BTreeMap::new();
    let mut backoff = INITIAL_BACKOFF;
    for event in connection.iter() {
        let text = match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = INITIAL_BACKOFF;
                let _ = writeln!(status, "nvrctl: connected to {url}");
                // Subscribed on every connection: a clean session forgets subscriptions.
                for topic in TOPICS {
                    let _ = client.try_subscribe(topic, QoS::AtLeastOnce);
                }
                continue;
            }
            Ok(Event::Incoming(Packet::Publish(message))) => {
                let Some((box_name, leaf)) = message
                    .topic
                    .strip_prefix("edgenvr/")
                    .and_then(|rest| rest.split_once('/'))
                else {
                    continue;
                };
                let state = boxes.entry(box_name.to_string()).or_default();
                handle(box_name, leaf, &message.payload, state, output, status)
            }
            Ok(_) => continue,
            Err(error) => {
                let _ = writeln!(
                    status,
                    "nvrctl: {url}: {error}; reconnecting in {}",
                    humantime::format_duration(backoff)
                );
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let text = match output {
            WatchOutput::Table if !text.is_empty() => render_named_boxes(
                boxes
                    .iter()
                    .map(|(name, state)| (name.as_str(), &state.view, state.link_text())),
            ),
            _ => text,
        };
        if !emit(out, &text)? {
            return Ok(());
        }
    }
    Ok(())
}

/// Applies one message of `box_name`; returns the JSON lines it produced (or, for a table, any
/// non-empty text meaning "redraw").
fn handle(
    box_name: &str,
    leaf: &str,
    payload: &[u8],
    state: &mut BoxState,
    output: WatchOutput,
    status: &mut dyn Write,
) -> String {
    let updates = match leaf {
        "status" => {
            let said = String::from_utf8_lossy(payload).into_owned();
            let _ = writeln!(status, "nvrctl: box {box_name} is {said}");
            state.status = Some(said.clone());
            return match output {
                WatchOutput::JsonLines => {
                    format!(
                        "{}\n",
                        json!({"event": "status", "box": box_name, "status": said})
                    )
                }
                WatchOutput::Table => "redraw".to_string(),
            };
        }
        // Retained messages are whole sessions of their own.
        "catalog" => {
            state.view.expect_seq(None);
            let (mut updates, _) = apply_payload(&mut state.view, payload, box_name, status);
            if let Some(snapshot) = state.waiting_snapshot.take() {
                state.view.expect_seq(None);
                let (more, _) = apply_payload(&mut state.view, &snapshot, box_name, status);
                updates.extend(more);
            }
            // A table shows the box's catalog even before values arrive.
            if updates.is_empty() && output == WatchOutput::Table {
                return "redraw".to_string();
            }
            updates
        }
        "snapshot" => {
            state.view.expect_seq(None);
            let (updates, needs_catalog) =
                apply_payload(&mut state.view, payload, box_name, status);
            if needs_catalog {
                state.waiting_snapshot = Some(payload.to_vec());
            }
            updates
        }
        "state" => {
            state.view.expect_seq(state.state_seq);
            let (updates, _) = apply_payload(&mut state.view, payload, box_name, status);
            state.state_seq = state.view.expected_seq();
            updates
        }
        _ => return String::new(),
    };
    match output {
        WatchOutput::JsonLines => updates
            .iter()
            .map(|update| format!("{}\n", state.view.update_json(update)))
            .collect(),
        WatchOutput::Table if updates.is_empty() => String::new(),
        WatchOutput::Table => "redraw".to_string(),
    }
}

/// Applies the frames of one message; returns the updates and whether the message needs a
/// catalog the view does not have yet (it names sensors the view does not know).
fn apply_payload(
    view: &mut StateView,
    payload: &[u8],
    box_name: &str,
    status: &mut dyn Write,
) -> (Vec<Update>, bool) {
    let mut decoder: Box<FrameDecoder> = Box::default();
    let mut input = payload;
    let mut updates = Vec::new();
    loop {
        match decoder.feed(input) {
            Feed::NeedMore => return (updates, false),
            Feed::Frame { frame, rest, .. } => {
                input = rest;
                match view.apply(&frame) {
                    Ok(applied) => updates.extend(applied),
                    Err(ViewError::Gap { expected, got }) => {
                        let _ = writeln!(
                            status,
                            "nvrctl: box {box_name}: sequence gap (expected {expected}, got {got}): its next snapshot will resynchronise"
                        );
                        view.expect_seq(None);
                        if let Ok(applied) = view.apply(&frame) {
                            updates.extend(applied);
                        }
                    }
                    Err(ViewError::Frame {
                        error: FrameError::UnknownSensor(_),
                        ..
                    }) if !view.catalog_complete() || view.sensors.is_empty() => {
                        return (updates, true);
                    }
                    Err(error @ ViewError::Version { .. }) => {
                        let _ = writeln!(status, "nvrctl: box {box_name}: {error}");
                        return (updates, false);
                    }
                    Err(error) => {
                        let _ = writeln!(status, "nvrctl: box {box_name}: {error}");
                    }
                }
            }
            Feed::Rejected { error, offset, .. } => {
                let _ = writeln!(
                    status,
                    "nvrctl: box {box_name}: damaged frame at byte {offset} of a message: {error}"
                );
                return (updates, false);
            }
        }
    }
}
