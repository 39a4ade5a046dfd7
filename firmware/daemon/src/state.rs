//! The state bus: the current value of every sensor and camera status, and the stream of changes.
//!
//! Owns the box's sensor catalog (name → [`SensorId`], kind, role) and each sensor's last
//! *reported* value. Receives values from producers (GPIO sensors, camera health, disk health)
//! through [`StateBus::set`]; scalar values pass through the wire format's report-by-exception
//! policy ([`edgenvr_proto::ScalarReporter`]), binary values report every edge. Emits
//! [`BusEvent`]s to subscribers (the TCP state port, MQTT), each of which starts from a
//! consistent [`Subscription`] (catalog + snapshot + the events after it).
//!
//! Threading: [`StateBus`] is a cheap, cloneable handle; `register` and `set` are synchronous and
//! never block on subscribers (they take a short lock and push into a bounded broadcast ring), so
//! they can be called from tokio tasks and from plain threads alike. A subscriber that falls
//! more than [`EVENT_QUEUE_EVENTS`] events behind gets `Lagged` and must take a fresh
//! [`StateBus::subscribe`]. Held-back scalar values and scalar heartbeats are sent by
//! [`StateBus::run_timers`], one task that the box runs next to the publishers.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use edgenvr_proto::{ReportPolicy, Role, ScalarReporter, SensorId, Value, ValueKind};
use tokio::sync::{broadcast, Notify};

/// Events the bus keeps for subscribers that are behind. 1024 events is five seconds of a
/// 60,000-sensor site's ~200 changes/s: a publisher stalled longer than that resynchronises from
/// a snapshot instead, so memory stays bounded whatever a client does.
pub const EVENT_QUEUE_EVENTS: usize = 1024;

/// What a sensor's values are.
#[derive(Clone, Debug, PartialEq)]
pub enum SensorKind {
    /// On/off: PIR, contact, camera online.
    Binary,
    /// A number in `unit` ("°C", "%", "B/s"; may be empty).
    Scalar {
        /// Unit symbol.
        unit: String,
    },
    /// Opaque bytes.
    Complex,
    /// A whole number in `unit`: a count, or a status code whose meaning the role gives.
    Unsigned {
        /// Unit symbol (empty for status codes).
        unit: String,
    },
}

impl SensorKind {
    /// The wire format's view of the kind.
    pub fn value_kind(&self) -> ValueKind {
        match self {
            SensorKind::Binary => ValueKind::Binary,
            SensorKind::Scalar { .. } => ValueKind::Scalar,
            SensorKind::Complex => ValueKind::Complex,
            SensorKind::Unsigned { .. } => ValueKind::Unsigned,
        }
    }
}

/// What a producer declares when it registers a sensor.
#[derive(Clone, Debug, PartialEq)]
pub struct SensorSpec {
    /// Unique name on the box (the config's `[[sensor]] name`, or "<camera>_online").
    pub name: String,
    /// What the values are.
    pub kind: SensorKind,
    /// What part of the box it describes.
    pub role: Role,
    /// Report-by-exception rules; only scalar sensors use them.
    pub report: ReportPolicy,
}

impl SensorSpec {
    /// A binary sensor: every edge is reported.
    pub fn binary(name: impl Into<String>, role: Role) -> Self {
        SensorSpec {
            name: name.into(),
            kind: SensorKind::Binary,
            role,
            report: ReportPolicy::EVERY_CHANGE,
        }
    }

    /// A scalar sensor in `unit`, reported by exception under `report`.
    pub fn scalar(
        name: impl Into<String>,
        unit: impl Into<String>,
        role: Role,
        report: ReportPolicy,
    ) -> Self {
        SensorSpec {
            name: name.into(),
            kind: SensorKind::Scalar { unit: unit.into() },
            role,
            report,
        }
    }

    /// A complex sensor: every different value is reported.
    pub fn complex(name: impl Into<String>, role: Role) -> Self {
        SensorSpec {
            name: name.into(),
            kind: SensorKind::Complex,
            role,
            report: ReportPolicy::EVERY_CHANGE,
        }
    }

    /// A whole-number sensor in `unit` (a status code with an empty unit, or a count): every
    /// different value is reported.
    pub fn unsigned(name: impl Into<String>, unit: impl Into<String>, role: Role) -> Self {
        SensorSpec {
            name: name.into(),
            kind: SensorKind::Unsigned { unit: unit.into() },
            role,
            report: ReportPolicy::EVERY_CHANGE,
        }
    }

    /// A monotonic count ([`Role::Counter`]) in `unit` ("GOPs", "fragments"), e.g.
    /// `<camera>_dropped`.
    pub fn counter(name: impl Into<String>, unit: impl Into<String>) -> Self {
        Self::unsigned(name, unit, Role::Counter)
    }
}

/// A registered sensor, as the catalog announces it.
#[derive(Clone, Debug, PartialEq)]
pub struct SensorInfo {
    /// Its id on the wire.
    pub id: SensorId,
    /// Unique name on the box.
    pub name: String,
    /// What the values are.
    pub kind: SensorKind,
    /// What part of the box it describes.
    pub role: Role,
}

/// A sensor's value, owned.
#[derive(Clone, Debug, PartialEq)]
pub enum SensorValue {
    /// Level of a binary sensor (`true` = active).
    Binary(bool),
    /// Reading of a scalar sensor.
    Scalar(f32),
    /// Bytes of a complex sensor.
    Complex(Arc<[u8]>),
    /// Number of an unsigned sensor.
    Unsigned(u64),
}

impl SensorValue {
    /// The wire format's view of the value.
    pub fn as_wire(&self) -> Value<'_> {
        match self {
            SensorValue::Binary(level) => Value::Binary(*level),
            SensorValue::Scalar(reading) => Value::Scalar(*reading),
            SensorValue::Complex(bytes) => Value::Complex(bytes),
            SensorValue::Unsigned(number) => Value::Unsigned(*number),
        }
    }

    fn value_kind(&self) -> ValueKind {
        self.as_wire().kind()
    }
}

/// A value that subscribers are told about.
#[derive(Clone, Debug, PartialEq)]
pub struct SensorChange {
    /// Which sensor.
    pub id: SensorId,
    /// The value reported.
    pub value: SensorValue,
    /// When it was taken, Unix milliseconds.
    pub time_ms: u64,
}

/// What subscribers receive, in order.
#[derive(Clone, Debug)]
pub enum BusEvent {
    /// A sensor joined the catalog (before any change of it).
    Registered(Arc<SensorInfo>),
    /// A sensor's reported value changed.
    Changed(SensorChange),
}

/// A consistent starting point: catalog and values at one instant, and every event after it.
#[derive(Debug)]
pub struct Subscription {
    /// Every registered sensor, by id.
    pub catalog: Vec<Arc<SensorInfo>>,
    /// The current value of every sensor that has one, by id.
    pub values: Vec<SensorChange>,
    /// Events after this snapshot.
    pub events: broadcast::Receiver<BusEvent>,
}

/// Why the bus refused a call.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StateError {
    /// Another sensor of a different kind or role already has this name.
    #[error("sensor name {name:?} is already registered as a different sensor")]
    NameTaken {
        /// The name.
        name: String,
    },
    /// No sensor has this id.
    #[error("no sensor with id {0:?}")]
    UnknownSensor(SensorId),
    /// The value does not match the sensor's kind.
    #[error("sensor {name:?} is {expected:?}, got a {got:?} value")]
    WrongKind {
        /// The sensor.
        name: String,
        /// Its kind.
        expected: ValueKind,
        /// The value's kind.
        got: ValueKind,
    },
}

struct Sensor {
    info: Arc<SensorInfo>,
    reported: Option<SensorChange>,
    reporter: Option<ScalarReporter>,
    /// The deadline of this sensor's live entry in `Registry::deadlines`, if any.
    scheduled_ms: Option<u64>,
}

#[derive(Default)]
struct Registry {
    sensors: Vec<Sensor>,
    ids_by_name: HashMap<String, SensorId>,
    /// (deadline, sensor id) of scalar reporters that want a poll; entries whose deadline is no
    /// longer the sensor's `scheduled_ms` are stale and skipped.
    deadlines: BinaryHeap<Reverse<(u64, u32)>>,
}

struct Shared {
    registry: Mutex<Registry>,
    events: broadcast::Sender<BusEvent>,
    deadlines_changed: Notify,
}

/// Handle to the state bus; clone it freely.
#[derive(Clone)]
pub struct StateBus {
    shared: Arc<Shared>,
}

impl Default for StateBus {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for StateBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateBus").finish_non_exhaustive()
    }
}

/// Unix milliseconds now (the time base of the bus and of the wire format).
pub fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

impl StateBus {
    /// An empty bus.
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(EVENT_QUEUE_EVENTS);
        StateBus {
            shared: Arc::new(Shared {
                registry: Mutex::new(Registry::default()),
                events,
                deadlines_changed: Notify::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock cannot leave the registry half-updated in a way that
        // matters more than stopping the box's state would, so a poisoned lock is used as is.
        self.shared
            .registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a sensor to the catalog and returns its id. Registering the same name again with the
    /// same kind and role returns the same id (a producer that restarts keeps its sensor).
    pub fn register(&self, spec: SensorSpec) -> Result<SensorId, StateError> {
        let mut registry = self.lock();
        if let Some(id) = registry.ids_by_name.get(&spec.name).copied() {
            let same = registry
                .sensors
                .get(id.0 as usize)
                .is_some_and(|s| s.info.kind == spec.kind && s.info.role == spec.role);
            return if same {
                Ok(id)
            } else {
                Err(StateError::NameTaken { name: spec.name })
            };
        }
        let id = SensorId(registry.sensors.len() as u32);
        let info = Arc::new(SensorInfo {
            id,
            name: spec.name.clone(),
            kind: spec.kind.clone(),
            role: spec.role,
        });
        let reporter = matches!(spec.kind, SensorKind::Scalar { .. })
            .then(|| ScalarReporter::new(spec.report));
        registry.sensors.push(Sensor {
            info: info.clone(),
            reported: None,
            reporter,
            scheduled_ms: None,
        });
        registry.ids_by_name.insert(spec.name, id);
        // No subscriber is not an error: the value is kept for the next one.
        let _ = self.shared.events.send(BusEvent::Registered(info));
        Ok(id)
    }

    /// The id of the sensor called `name`.
    pub fn id_of(&self, name: &str) -> Option<SensorId> {
        self.lock().ids_by_name.get(name).copied()
    }

    /// Sets a sensor's value, taken at `time_ms` (Unix milliseconds, see [`unix_now_ms`]).
    /// Binary and complex values are reported when they differ from the last report; scalar
    /// values as their report policy says.
    pub fn set(&self, id: SensorId, value: SensorValue, time_ms: u64) -> Result<(), StateError> {
        let mut registry = self.lock();
        let sensor = registry
            .sensors
            .get_mut(id.0 as usize)
            .ok_or(StateError::UnknownSensor(id))?;
        let expected = sensor.info.kind.value_kind();
        if value.value_kind() != expected {
            return Err(StateError::WrongKind {
                name: sensor.info.name.clone(),
                expected,
                got: value.value_kind(),
            });
        }
        let report = match (&mut sensor.reporter, &value) {
            (Some(reporter), SensorValue::Scalar(reading)) => {
                reporter.observe(*reading, time_ms).map(SensorValue::Scalar)
            }
            _ => {
                let unchanged = sensor.reported.as_ref().is_some_and(|r| r.value == value);
                (!unchanged).then_some(value)
            }
        };
        if let Some(value) = report {
            self.publish(sensor, value, time_ms);
        }
        if schedule(&mut registry, id) {
            self.shared.deadlines_changed.notify_one();
        }
        Ok(())
    }

    /// Sets a sensor's value taken now.
    pub fn set_now(&self, id: SensorId, value: SensorValue) -> Result<(), StateError> {
        self.set(id, value, unix_now_ms())
    }

    /// Every registered sensor, by id (the catalog), without subscribing.
    pub fn catalog(&self) -> Vec<Arc<SensorInfo>> {
        self.lock().sensors.iter().map(|s| s.info.clone()).collect()
    }

    /// The current (last reported) value of a sensor.
    pub fn value(&self, id: SensorId) -> Option<SensorValue> {
        let registry = self.lock();
        let sensor = registry.sensors.get(id.0 as usize)?;
        sensor.reported.as_ref().map(|change| change.value.clone())
    }

    /// Catalog, current values, and the events from this instant on.
    pub fn subscribe(&self) -> Subscription {
        // Under the lock, so no event falls between the snapshot and the receiver.
        let registry = self.lock();
        Subscription {
            catalog: registry.sensors.iter().map(|s| s.info.clone()).collect(),
            values: registry
                .sensors
                .iter()
                .filter_map(|s| s.reported.clone())
                .collect(),
            events: self.shared.events.subscribe(),
        }
    }

    fn publish(&self, sensor: &mut Sensor, value: SensorValue, time_ms: u64) {
        let change = SensorChange {
            id: sensor.info.id,
            value,
            time_ms,
        };
        sensor.reported = Some(change.clone());
        let _ = self.shared.events.send(BusEvent::Changed(change));
    }

    /// Sends held-back scalar values when their minimum interval expires, and scalar heartbeats,
    /// until `shutdown` completes. Run one per bus.
    pub async fn run_timers(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let next_ms = self.poll_due(unix_now_ms());
            // Nothing scheduled: wake up only when `set` schedules something. An hour is
            // arbitrary; any wake-up just re-checks.
            let wait = next_ms.map_or(Duration::from_secs(3600), |at_ms| {
                Duration::from_millis(at_ms.saturating_sub(unix_now_ms()))
            });
            tokio::select! {
                () = &mut shutdown => return,
                () = self.shared.deadlines_changed.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Polls every reporter whose deadline passed; returns the next deadline.
    fn poll_due(&self, now_ms: u64) -> Option<u64> {
        let mut registry = self.lock();
        while let Some(Reverse((at_ms, raw_id))) = registry.deadlines.peek().copied() {
            if at_ms > now_ms {
                return Some(at_ms);
            }
            registry.deadlines.pop();
            let Some(sensor) = registry.sensors.get_mut(raw_id as usize) else {
                continue;
            };
            if sensor.scheduled_ms != Some(at_ms) {
                continue;
            }
            sensor.scheduled_ms = None;
            let report = sensor.reporter.as_mut().and_then(|r| r.poll(now_ms));
            if let Some(reading) = report {
                self.publish(sensor, SensorValue::Scalar(reading), now_ms);
            }
            schedule(&mut registry, SensorId(raw_id));
        }
        None
    }
}

/// Puts the sensor's next poll deadline in the heap; says whether a new entry was added.
fn schedule(registry: &mut Registry, id: SensorId) -> bool {
    let Some(sensor) = registry.sensors.get_mut(id.0 as usize) else {
        return false;
    };
    let next = sensor
        .reporter
        .as_ref()
        .and_then(ScalarReporter::next_poll_ms);
    if next.is_none() || next == sensor.scheduled_ms {
        return false;
    }
    sensor.scheduled_ms = next;
    if let Some(at_ms) = next {
        registry.deadlines.push(Reverse((at_ms, id.0)));
    }
    prune_stale_deadlines(registry);
    true
}

/// Drops the stale entries once they outnumber the live ones. Each report of a scalar moves its
/// heartbeat, and the entry for the old deadline is otherwise only skipped when it comes due: the
/// box's health figures, reported as often as every 5 s with heartbeats of up to an hour, left
/// hundreds of stale entries each (in the soak this heap grew from 8 to 32 KiB in half an hour).
/// Rebuilding at twice the sensor count keeps the heap within that, at an amortised constant
/// cost per entry.
fn prune_stale_deadlines(registry: &mut Registry) {
    let Registry {
        sensors, deadlines, ..
    } = registry;
    if deadlines.len() <= deadline_limit(sensors.len()) {
        return;
    }
    deadlines.retain(|Reverse((at_ms, raw_id))| {
        sensors
            .get(*raw_id as usize)
            .is_some_and(|sensor| sensor.scheduled_ms == Some(*at_ms))
    });
}

/// How many timer heap entries `sensors` sensors may leave before the stale ones are dropped.
fn deadline_limit(sensors: usize) -> usize {
    2 * sensors + 16
}

#[cfg(test)]
mod tests {
    use edgenvr_proto::{CameraRole, Deadband};

    use super::*;

    fn changes(events: &mut broadcast::Receiver<BusEvent>) -> Vec<SensorChange> {
        let mut out = Vec::new();
        while let Ok(event) = events.try_recv() {
            if let BusEvent::Changed(change) = event {
                out.push(change);
            }
        }
        out
    }

    #[test]
    fn registration_is_idempotent_per_name_and_kind() {
        let bus = StateBus::new();
        let pir = bus
            .register(SensorSpec::binary("pir", Role::Sensor))
            .unwrap();
        let again = bus
            .register(SensorSpec::binary("pir", Role::Sensor))
            .unwrap();
        assert_eq!(pir, again);
        let online = SensorSpec::binary("cam_online", Role::Camera(CameraRole::Online));
        assert_eq!(bus.register(online).unwrap(), SensorId(1));
        assert_eq!(
            bus.register(SensorSpec::complex("pir", Role::Sensor)),
            Err(StateError::NameTaken { name: "pir".into() })
        );
    }

    #[test]
    fn every_binary_edge_is_an_event_and_repeats_are_not() {
        let bus = StateBus::new();
        let pir = bus
            .register(SensorSpec::binary("pir", Role::Sensor))
            .unwrap();
        let mut sub = bus.subscribe();
        for (time_ms, level) in [(1, true), (2, false), (3, false), (4, true)] {
            bus.set(pir, SensorValue::Binary(level), time_ms).unwrap();
        }
        let levels: Vec<_> = changes(&mut sub.events)
            .into_iter()
            .map(|c| (c.time_ms, c.value))
            .collect();
        assert_eq!(
            levels,
            [
                (1, SensorValue::Binary(true)),
                (2, SensorValue::Binary(false)),
                (4, SensorValue::Binary(true))
            ]
        );
        assert_eq!(bus.value(pir), Some(SensorValue::Binary(true)));
    }

    #[test]
    fn a_value_of_the_wrong_kind_is_refused() {
        let bus = StateBus::new();
        let pir = bus
            .register(SensorSpec::binary("pir", Role::Sensor))
            .unwrap();
        assert!(matches!(
            bus.set(pir, SensorValue::Scalar(1.0), 1),
            Err(StateError::WrongKind { .. })
        ));
        assert_eq!(
            bus.set(SensorId(9), SensorValue::Binary(true), 1),
            Err(StateError::UnknownSensor(SensorId(9)))
        );
    }

    #[test]
    fn a_subscription_starts_from_the_current_values() {
        let bus = StateBus::new();
        let pir = bus
            .register(SensorSpec::binary("pir", Role::Sensor))
            .unwrap();
        bus.set(pir, SensorValue::Binary(true), 10).unwrap();
        let mut sub = bus.subscribe();
        assert_eq!(sub.catalog.len(), 1);
        assert_eq!(sub.values.len(), 1);
        assert!(sub.events.try_recv().is_err());
    }

    #[test]
    fn moved_heartbeats_do_not_pile_up_in_the_timer_heap() {
        let bus = StateBus::new();
        let policy = ReportPolicy {
            deadband: Deadband::Absolute(0.0),
            min_interval_ms: 0,
            max_interval_ms: Some(3_600_000),
        };
        let temps: Vec<SensorId> = (0..3)
            .map(|n| {
                bus.register(SensorSpec::scalar(
                    format!("t{n}"),
                    "°C",
                    Role::Health,
                    policy,
                ))
                .unwrap()
            })
            .collect();
        // Every value is reported (it changed), so every set moves the sensor's heartbeat an
        // hour ahead of it; no deadline comes due.
        for step in 0..10_000u64 {
            for (n, temp) in temps.iter().enumerate() {
                let value = SensorValue::Scalar((step * 3 + n as u64) as f32);
                bus.set(*temp, value, 1_000_000 + step * 1000).unwrap();
            }
        }
        let registry = bus.lock();
        assert!(
            registry.deadlines.len() <= deadline_limit(temps.len()),
            "{} entries for {} sensors",
            registry.deadlines.len(),
            temps.len()
        );
        for temp in &temps {
            let scheduled = registry.sensors[temp.0 as usize].scheduled_ms;
            assert_eq!(scheduled, Some(1_000_000 + 9_999 * 1000 + 3_600_000));
            assert!(registry
                .deadlines
                .iter()
                .any(|Reverse((at_ms, id))| *id == temp.0 && Some(*at_ms) == scheduled));
        }
    }

    #[tokio::test]
    async fn held_back_scalars_are_sent_by_the_timer_task() {
        let bus = StateBus::new();
        let policy = ReportPolicy {
            deadband: Deadband::Absolute(0.5),
            min_interval_ms: 50,
            max_interval_ms: None,
        };
        let temp = bus
            .register(SensorSpec::scalar("temp", "°C", Role::Health, policy))
            .unwrap();
        let mut sub = bus.subscribe();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let timers = tokio::spawn({
            let bus = bus.clone();
            async move { bus.run_timers(async { stopped.await.unwrap_or(()) }).await }
        });
        let now = unix_now_ms();
        bus.set(temp, SensorValue::Scalar(20.0), now).unwrap();
        bus.set(temp, SensorValue::Scalar(25.0), now).unwrap();
        bus.set(temp, SensorValue::Scalar(26.0), now).unwrap();
        let mut got = Vec::new();
        while got.len() < 2 {
            if let BusEvent::Changed(change) = sub.events.recv().await.unwrap() {
                got.push(change.value);
            }
        }
        assert_eq!(
            got,
            [SensorValue::Scalar(20.0), SensorValue::Scalar(26.0)],
            "the latest held-back value goes out when the interval expires"
        );
        stop.send(()).unwrap();
        timers.await.unwrap();
    }
}
