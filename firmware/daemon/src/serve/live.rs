//! `GET /api/live`: the state bus as Server-Sent Events in JSON, for the page's live panel (and
//! anything else that speaks SSE, e.g. `curl -N`).
//!
//! Receives a [`Subscription`] of the [`StateBus`] per client — the same consistent start
//! (catalog + snapshot + the events after it) the TCP state port uses — and emits:
//! - `event: snapshot`, `data: {"sensors": [SENSOR...]}` first, and again after the client fell
//!   more than the bus's queue behind (latest values win over a backlog);
//! - `event: sensor`, `data: SENSOR` (without a value) when a sensor joins the catalog;
//! - `event: change`, `data: {"id", "value", "time_ms"}` for every reported change, as soon as
//!   it is on the bus (no batching: one browser, a few changes a second).
//!
//! SENSOR is `{"id", "name", "kind": "binary"|"scalar"|"complex", "unit", "role":
//! "sensor"|"output"|"health"|"camera", "camera_role", "value", "time_ms"}`; a binary value is
//! `true`/`false`, a scalar a number (`null` when not finite), a complex value base64 text.
//!
//! Bounds: at most [`MAX_LIVE_CLIENTS`] streams at once (503 beyond); a comment line every
//! [`KEEP_ALIVE`] keeps idle proxies and the client's connection check happy; the stream ends
//! when the server shuts down, so a shutdown never waits on an open page.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use edgenvr_proto::{CameraRole, CameraStatusWords, Role, StoreStatusWords};
use tokio::sync::{broadcast, watch, OwnedSemaphorePermit};

use super::routes::{ApiError, ApiState};
use crate::state::{BusEvent, SensorChange, SensorInfo, SensorKind, SensorValue, StateBus};

/// Live streams served at once. 16: a household's phones and laptops with the page open, like
/// the state port's client bound; each costs a task, a socket and a bus subscription.
pub const MAX_LIVE_CLIENTS: usize = 16;

/// A comment line goes out after this long without an event. 15 s: well inside the write-stall
/// and idle limits of proxies and of the box's own HTTP server, for ~3 bytes.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How long a browser waits before reconnecting a dropped stream (sent as `retry:`). 2 s: the
/// page is back soon after a box restart without hammering a box that is down.
const RECONNECT_DELAY: Duration = Duration::from_secs(2);

/// What the live route needs: the bus and the client bound.
#[derive(Clone, Debug)]
pub struct LiveFeed {
    bus: StateBus,
    clients: Arc<tokio::sync::Semaphore>,
}

impl LiveFeed {
    /// A feed of `bus` for at most [`MAX_LIVE_CLIENTS`] clients.
    pub fn new(bus: StateBus) -> LiveFeed {
        LiveFeed {
            bus,
            clients: Arc::new(tokio::sync::Semaphore::new(MAX_LIVE_CLIENTS)),
        }
    }
}

/// The handler: 404 when the server has no state bus (a bare API server in tests).
pub async fn live(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let Some(feed) = &state.live else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "this server has no live state",
        ));
    };
    let Ok(permit) = Arc::clone(&feed.clients).try_acquire_owned() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_LIVE_CLIENTS} live streams are already open; close one and retry"),
        ));
    };
    let session = Session {
        bus: feed.bus.clone(),
        events: None,
        catalog: Vec::new(),
        stop: state.stopping.subscribe(),
        _permit: permit,
    };
    let stream = futures::stream::unfold(session, |mut session| async move {
        let event = session.next().await?;
        Some((Ok::<_, std::convert::Infallible>(event), session))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

/// One client's stream: its bus subscription (none before the first snapshot and after a lag).
struct Session {
    bus: StateBus,
    events: Option<broadcast::Receiver<BusEvent>>,
    /// The sensors this client was told about, by id: what a change's value means.
    catalog: Vec<Arc<SensorInfo>>,
    stop: watch::Receiver<bool>,
    /// Held as long as the stream: the client bound.
    _permit: OwnedSemaphorePermit,
}

impl Session {
    /// The next event to send, or `None` when the stream is to end (shutdown).
    async fn next(&mut self) -> Option<Event> {
        loop {
            if *self.stop.borrow() {
                return None;
            }
            let Some(events) = &mut self.events else {
                let subscription = self.bus.subscribe();
                self.events = Some(subscription.events);
                let data = snapshot_json(&subscription.catalog, &subscription.values);
                self.catalog = subscription.catalog;
                return Some(
                    Event::default()
                        .event("snapshot")
                        .retry(RECONNECT_DELAY)
                        .data(data.to_string()),
                );
            };
            let received = tokio::select! {
                // A closed sender is the server gone: end the stream too.
                _ = self.stop.changed() => return None,
                received = events.recv() => received,
            };
            match received {
                Ok(BusEvent::Changed(change)) => {
                    let info = self.catalog.get(change.id.0 as usize).map(Arc::as_ref);
                    let data = change_json(info, &change).to_string();
                    return Some(Event::default().event("change").data(data));
                }
                Ok(BusEvent::Registered(info)) => {
                    let data = sensor_json(&info, None).to_string();
                    // Ids are dense and only ever added, in order.
                    if info.id.0 as usize == self.catalog.len() {
                        self.catalog.push(info);
                    }
                    return Some(Event::default().event("sensor").data(data));
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "live page client fell behind, sending a fresh snapshot"
                    );
                    self.events = None;
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

/// `{"sensors": [...]}`: every catalog entry with its current value (if any).
pub fn snapshot_json(catalog: &[Arc<SensorInfo>], values: &[SensorChange]) -> serde_json::Value {
    let sensors: Vec<serde_json::Value> = catalog
        .iter()
        .map(|info| sensor_json(info, values.iter().find(|v| v.id == info.id)))
        .collect();
    serde_json::json!({ "sensors": sensors })
}

/// One catalog entry, with its value when given.
pub fn sensor_json(info: &SensorInfo, change: Option<&SensorChange>) -> serde_json::Value {
    let (kind, unit) = match &info.kind {
        SensorKind::Binary => ("binary", None),
        SensorKind::Scalar { unit } => ("scalar", Some(unit.as_str())),
        SensorKind::Complex => ("complex", None),
        SensorKind::Unsigned { unit } => ("unsigned", Some(unit.as_str())),
    };
    let (role, camera_role) = match info.role {
        Role::Sensor => ("sensor", None),
        Role::Output => ("output", None),
        Role::Health => ("health", None),
        Role::Counter => ("counter", None),
        Role::StoreStatus => ("store_status", None),
        Role::Camera(camera_role) => (
            "camera",
            Some(match camera_role {
                CameraRole::Online => "online",
                CameraRole::Recording => "recording",
                CameraRole::Event => "event",
                CameraRole::Bitrate => "bitrate",
                CameraRole::FrameRate => "frame_rate",
                CameraRole::Status => "status",
            }),
        ),
    };
    serde_json::json!({
        "id": info.id.0,
        "name": info.name,
        "kind": kind,
        "unit": unit,
        "role": role,
        "camera_role": camera_role,
        "value": change.map(|c| value_json(&c.value)),
        "text": change.and_then(|c| status_text(info.role, &c.value)),
        "time_ms": change.map(|c| c.time_ms),
    })
}

/// `{"id", "value", "text", "time_ms"}` of a change of sensor `info`.
pub fn change_json(info: Option<&SensorInfo>, change: &SensorChange) -> serde_json::Value {
    serde_json::json!({
        "id": change.id.0,
        "value": value_json(&change.value),
        "text": info.and_then(|info| status_text(info.role, &change.value)),
        "time_ms": change.time_ms,
    })
}

/// A status code in the words the wire format gives it (`online`, `offline: auth_failed`,
/// `read_only`; numbers for codes a later version added), for the roles whose values are
/// codes; `None` for any other value.
fn status_text(role: Role, value: &SensorValue) -> Option<String> {
    let SensorValue::Unsigned(code) = value else {
        return None;
    };
    match role {
        Role::Camera(CameraRole::Status) => Some(CameraStatusWords(*code).to_string()),
        Role::StoreStatus => Some(StoreStatusWords(*code).to_string()),
        _ => None,
    }
}

fn value_json(value: &SensorValue) -> serde_json::Value {
    match value {
        SensorValue::Binary(level) => serde_json::Value::Bool(*level),
        SensorValue::Scalar(reading) => serde_json::Number::from_f64(f64::from(*reading))
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        SensorValue::Complex(bytes) => serde_json::Value::String(
            base64::engine::general_purpose::STANDARD.encode(bytes.as_ref()),
        ),
        SensorValue::Unsigned(number) => serde_json::Value::from(*number),
    }
}

#[cfg(test)]
mod tests {
    use edgenvr_proto::{ReportPolicy, SensorId};

    use super::*;
    use crate::state::SensorSpec;

    #[test]
    fn sensors_and_values_as_json() {
        let bus = StateBus::new();
        let pir = bus
            .register(SensorSpec::binary("pir-hall", Role::Sensor))
            .unwrap();
        let temp = bus
            .register(SensorSpec::scalar(
                "temp",
                "°C",
                Role::Health,
                ReportPolicy::EVERY_CHANGE,
            ))
            .unwrap();
        bus.register(SensorSpec::binary(
            "front_online",
            Role::Camera(CameraRole::Online),
        ))
        .unwrap();
        bus.set(pir, SensorValue::Binary(true), 1_000).unwrap();
        bus.set(temp, SensorValue::Scalar(41.5), 2_000).unwrap();
        let subscription = bus.subscribe();
        let json = snapshot_json(&subscription.catalog, &subscription.values);
        let sensors = json["sensors"].as_array().unwrap();
        assert_eq!(sensors.len(), 3);
        assert_eq!(sensors[0]["name"], "pir-hall");
        assert_eq!(sensors[0]["kind"], "binary");
        assert_eq!(sensors[0]["role"], "sensor");
        assert_eq!(sensors[0]["value"], true);
        assert_eq!(sensors[0]["time_ms"], 1_000);
        assert_eq!(sensors[1]["unit"], "°C");
        assert_eq!(sensors[1]["value"], 41.5);
        assert_eq!(sensors[2]["role"], "camera");
        assert_eq!(sensors[2]["camera_role"], "online");
        assert!(sensors[2]["value"].is_null(), "no value yet");

        let change = SensorChange {
            id: SensorId(1),
            value: SensorValue::Scalar(f32::NAN),
            time_ms: 3,
        };
        assert!(change_json(None, &change)["value"].is_null());
        let bytes = SensorValue::Complex(Arc::from(&b"\x00\xff"[..]));
        assert_eq!(value_json(&bytes), "AP8=");
    }

    #[test]
    fn status_codes_come_with_their_words() {
        let bus = StateBus::new();
        let status = bus
            .register(SensorSpec::unsigned(
                "front_status",
                "",
                Role::Camera(CameraRole::Status),
            ))
            .unwrap();
        let store = bus
            .register(SensorSpec::unsigned(
                "storage_status",
                "",
                Role::StoreStatus,
            ))
            .unwrap();
        let dropped = bus
            .register(SensorSpec::counter("front_dropped", "GOPs"))
            .unwrap();
        let code = edgenvr_proto::camera_status_code(
            edgenvr_proto::CameraState::Offline,
            edgenvr_proto::CameraReason::AuthFailed,
        );
        bus.set(status, SensorValue::Unsigned(code), 1).unwrap();
        bus.set(store, SensorValue::Unsigned(4), 1).unwrap();
        bus.set(dropped, SensorValue::Unsigned(3), 1).unwrap();
        let subscription = bus.subscribe();
        let json = snapshot_json(&subscription.catalog, &subscription.values);
        let sensors = json["sensors"].as_array().unwrap();
        assert_eq!(sensors[0]["camera_role"], "status");
        assert_eq!(sensors[0]["value"], code);
        assert_eq!(sensors[0]["text"], "offline: auth_failed");
        assert_eq!(sensors[1]["role"], "store_status");
        assert_eq!(sensors[1]["text"], "read_only");
        assert_eq!(sensors[2]["role"], "counter");
        assert_eq!(sensors[2]["kind"], "unsigned");
        assert_eq!(sensors[2]["unit"], "GOPs");
        assert!(sensors[2]["text"].is_null());
        let unknown = SensorChange {
            id: status,
            value: SensorValue::Unsigned(9 << 3 | 6),
            time_ms: 2,
        };
        let text = change_json(Some(&subscription.catalog[0]), &unknown);
        assert_eq!(
            text["text"], "state 6: reason 9",
            "codes of a later version as numbers"
        );
    }
}
