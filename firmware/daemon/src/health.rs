//! Health: the box's own sensors in the state, next to the PIRs — per camera online, recording
//! (binary), status (state and reason), frames per second and received bit rate (scalar), GOPs
//! dropped before the store and fragments the ring wrapped over (counters); storage used, bytes
//! written, card endurance used and CPU temperature (scalar), and the store's status.
//!
//! Receives each camera's [`CameraStatus`] watch and [`CameraActivity`] counters, the open
//! [`Store`] (its in-memory wear counters and its own status, [`Store::status`], no disk I/O:
//! the daemon runs [`Store::check`] on a blocking thread), and the thermal zones under
//! `/sys/class/thermal` (read once per storage sample; a board without them has no temperature
//! sensor). Emits values to the [`StateBus`] with
//! [`StateBus::set`]; scalars go through the bus's report-by-exception policy, whose defaults
//! ([`default_policy`]) a `[[report]]` section of the config can override per sensor.
//!
//! Camera status values are mapped from what ingest and the writer say today
//! ([`camera_status`]); a new [`IngestErrorKind`] gets its reason there.
//!
//! Threading: one tokio task ([`Health::run`]) that samples on a timer until shutdown; every
//! call it makes is short and non-blocking (the store's stats take its index lock only).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use edgenvr_proto::{
    camera_status_code, CameraReason, CameraRole, CameraState, Deadband, ReportPolicy, Role,
    SensorId,
};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::ReportConfig;
use crate::ingest::{CameraStatus, IngestErrorKind};
use crate::record::CameraActivity;
use crate::shutdown::Shutdown;
use crate::state::{SensorSpec, SensorValue, StateBus, StateError};
use crate::store::Store;

/// How often camera status and frame rates are sampled: a second gives whole-second fps
/// readings and shows a camera going offline within a second of ingest noticing.
pub const CAMERA_SAMPLE: Duration = Duration::from_secs(1);
/// How often storage and temperature are sampled: they move slowly, and the store's stats walk
/// every slot's counters.
pub const SLOW_SAMPLE: Duration = Duration::from_secs(10);
/// Where Linux exposes temperatures (`thermal_zoneN/temp`, millidegrees Celsius).
pub const THERMAL_ROOT: &str = "/sys/class/thermal";

pub use crate::config::sensor_names::{
    scalar_names, CPU_TEMP, DROPPED_SUFFIX, ENDURANCE_USED, OVERWRITTEN_SUFFIX, STORAGE_STATUS,
    STORAGE_USED, STORAGE_WRITTEN,
};
use crate::config::sensor_names::{BITRATE_SUFFIX, FPS_SUFFIX};

/// One camera as health sees it.
#[derive(Debug)]
pub struct CameraHealth {
    /// The camera's name (sensors are `<name>_online`, `<name>_recording`, `<name>_fps`,
    /// `<name>_bitrate`).
    pub name: String,
    /// Its ingest status.
    pub status: watch::Receiver<CameraStatus>,
    /// Its frame counter and event flag.
    pub activity: Arc<CameraActivity>,
    /// Events mode: recording means an event is being written, not merely online.
    pub events_mode: bool,
}

/// The default reporting of each kind of health scalar (name as registered).
pub fn default_policy(name: &str) -> ReportPolicy {
    let minutes = |m: u64| m * 60_000;
    if name == STORAGE_USED {
        // A percent point of the store; at most once a minute, at least hourly.
        policy(1.0, minutes(1), minutes(60))
    } else if name == STORAGE_WRITTEN {
        // 100 MB: one report per ~3 minutes of a 4 Mbit/s camera.
        policy(100.0, minutes(1), minutes(60))
    } else if name == ENDURANCE_USED {
        // A hundredth of a percent: 4 GB of a 40 TB card.
        policy(0.01, minutes(10), minutes(60))
    } else if name == CPU_TEMP {
        // Two degrees; throttling starts at 80 °C on a Pi, so finer is noise.
        policy(2.0, 10_000, minutes(10))
    } else if name.ends_with(OVERWRITTEN_SUFFIX) || name.ends_with(DROPPED_SUFFIX) {
        // Counters: every change is news (video is gone), but at most one report per 10 s.
        policy(0.5, 10_000, minutes(60))
    } else if name.ends_with(BITRATE_SUFFIX) {
        // 100 kbit/s: a camera's VBR swings by more than that every GOP; 5 s rate limit.
        policy(100.0, 5_000, minutes(5))
    } else {
        // Frame rates: one frame per second of change, rate-limited to one report per 5 s.
        policy(1.0, 5_000, minutes(5))
    }
}

fn policy(deadband: f32, min_interval_ms: u64, max_interval_ms: u64) -> ReportPolicy {
    ReportPolicy {
        deadband: Deadband::Absolute(deadband),
        min_interval_ms,
        max_interval_ms: Some(max_interval_ms),
    }
}

/// The policy of sensor `name` with the config's overrides applied.
pub fn policy_for(name: &str, overrides: &[ReportConfig]) -> ReportPolicy {
    let mut policy = default_policy(name);
    for over in overrides.iter().filter(|o| o.sensor == name) {
        if let Some(deadband) = over.deadband {
            policy.deadband = Deadband::Absolute(deadband);
        }
        if let Some(min) = over.min_interval {
            policy.min_interval_ms = u64::try_from(min.0.as_millis()).unwrap_or(u64::MAX);
        }
        if let Some(max) = over.max_interval {
            policy.max_interval_ms = Some(u64::try_from(max.0.as_millis()).unwrap_or(u64::MAX));
        }
    }
    policy
}

/// A camera's state and why, from its ingest status and whether its video reaches the store.
pub fn camera_status(status: &CameraStatus, store_failing: bool) -> (CameraState, CameraReason) {
    match status {
        // Video not reaching the store is the worst a streaming camera can do: it comes first.
        CameraStatus::Streaming | CameraStatus::Degraded { .. } if store_failing => {
            (CameraState::Degraded, CameraReason::Storage)
        }
        CameraStatus::Streaming => (CameraState::Online, CameraReason::None),
        CameraStatus::Degraded { kind, .. } => (CameraState::Degraded, reason_of(*kind)),
        CameraStatus::Connecting => (CameraState::Connecting, CameraReason::None),
        CameraStatus::Retrying { kind, .. } => (CameraState::Offline, reason_of(*kind)),
        CameraStatus::Stopped => (CameraState::Stopped, CameraReason::None),
    }
}

/// The wire reason of an ingest failure or fault.
fn reason_of(kind: IngestErrorKind) -> CameraReason {
    match kind {
        IngestErrorKind::Unauthorized => CameraReason::AuthFailed,
        IngestErrorKind::Unsupported => CameraReason::Unsupported,
        IngestErrorKind::Unreachable | IngestErrorKind::NoAnswer | IngestErrorKind::Ended => {
            CameraReason::Unreachable
        }
        IngestErrorKind::Refused => CameraReason::Refused,
        IngestErrorKind::BadDescription
        | IngestErrorKind::BadMedia
        | IngestErrorKind::ParametersWithoutKeyFrame => CameraReason::BadStream,
        IngestErrorKind::Stalled => CameraReason::NoData,
        IngestErrorKind::TimestampJump => CameraReason::Timestamps,
        IngestErrorKind::Transient => CameraReason::Unreachable,
    }
}

struct CameraSensors {
    camera: CameraHealth,
    online: SensorId,
    recording: SensorId,
    status: SensorId,
    fps: SensorId,
    bitrate: SensorId,
    overwritten: SensorId,
    dropped: SensorId,
    last_frames: u64,
    last_bytes: u64,
    last_at: Instant,
}

/// The registered health sensors and what they read.
pub struct Health {
    bus: StateBus,
    store: Store,
    cameras: Vec<CameraSensors>,
    used: SensorId,
    written: SensorId,
    store_status: SensorId,
    endurance: Option<(SensorId, u64)>,
    temperature: Option<(SensorId, PathBuf)>,
}

impl Health {
    /// Registers every health sensor on `bus`: per camera, storage, endurance when
    /// `endurance_bytes` is known, and CPU temperature when `thermal_root` has a readable zone.
    pub fn register(
        bus: &StateBus,
        store: Store,
        cameras: Vec<CameraHealth>,
        endurance_bytes: Option<u64>,
        thermal_root: &Path,
        overrides: &[ReportConfig],
    ) -> Result<Health, StateError> {
        let scalar = |name: &str, unit: &str, role: Role| {
            bus.register(SensorSpec::scalar(
                name,
                unit,
                role,
                policy_for(name, overrides),
            ))
        };
        let mut sensors = Vec::new();
        for camera in cameras {
            let name = &camera.name;
            let online = bus.register(SensorSpec::binary(
                format!("{name}_online"),
                Role::Camera(CameraRole::Online),
            ))?;
            let recording = bus.register(SensorSpec::binary(
                format!("{name}_recording"),
                Role::Camera(CameraRole::Recording),
            ))?;
            let status = bus.register(SensorSpec::unsigned(
                format!("{name}_status"),
                "",
                Role::Camera(CameraRole::Status),
            ))?;
            let fps = scalar(
                &format!("{name}{FPS_SUFFIX}"),
                "fps",
                Role::Camera(CameraRole::FrameRate),
            )?;
            let bitrate = scalar(
                &format!("{name}{BITRATE_SUFFIX}"),
                "kbit/s",
                Role::Camera(CameraRole::Bitrate),
            )?;
            // Counts, reported by exception like the scalars they are (at most one report per
            // 10 s): a wrapping ring moves them every GOP.
            let overwritten = scalar(&format!("{name}{OVERWRITTEN_SUFFIX}"), "", Role::Counter)?;
            let dropped = scalar(&format!("{name}{DROPPED_SUFFIX}"), "", Role::Counter)?;
            let last_frames = camera.activity.video_frames.load(Ordering::Relaxed);
            let last_bytes = camera.activity.video_bytes.load(Ordering::Relaxed);
            sensors.push(CameraSensors {
                camera,
                online,
                recording,
                status,
                fps,
                bitrate,
                overwritten,
                dropped,
                last_frames,
                last_bytes,
                last_at: Instant::now(),
            });
        }
        let used = scalar(STORAGE_USED, "%", Role::Health)?;
        let written = scalar(STORAGE_WRITTEN, "MB", Role::Health)?;
        let store_status =
            bus.register(SensorSpec::unsigned(STORAGE_STATUS, "", Role::StoreStatus))?;
        let endurance = match endurance_bytes {
            Some(bytes) if bytes > 0 => Some((scalar(ENDURANCE_USED, "%", Role::Health)?, bytes)),
            _ => None,
        };
        let temperature = match find_cpu_thermal_zone(thermal_root) {
            Some(path) => Some((scalar(CPU_TEMP, "°C", Role::Health)?, path)),
            None => None,
        };
        Ok(Health {
            bus: bus.clone(),
            store,
            cameras: sensors,
            used,
            written,
            store_status,
            endurance,
            temperature,
        })
    }

    /// Samples until `shutdown`.
    pub async fn run(mut self, mut shutdown: Shutdown) {
        let mut camera_timer = tokio::time::interval(CAMERA_SAMPLE);
        let mut slow_timer = tokio::time::interval(SLOW_SAMPLE);
        for timer in [&mut camera_timer, &mut slow_timer] {
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        loop {
            tokio::select! {
                () = shutdown.requested() => return,
                _ = camera_timer.tick() => self.sample_cameras(),
                _ = slow_timer.tick() => self.sample_storage(),
            }
        }
    }

    fn set(&self, id: SensorId, value: SensorValue) {
        // Ids and kinds were registered together above: an error here is a bug, logged once
        // per sample rather than stopping the box.
        if let Err(error) = self.bus.set_now(id, value) {
            tracing::warn!(%error, "health value refused");
        }
    }

    fn sample_cameras(&mut self) {
        let now = Instant::now();
        let mut values = Vec::new();
        for sensors in &mut self.cameras {
            let ingest_status = sensors.camera.status.borrow().clone();
            let online = ingest_status.is_online();
            let activity = &sensors.camera.activity;
            let (state, reason) = camera_status(&ingest_status, activity.store_failing());
            let wanted = if sensors.camera.events_mode {
                activity.event_recording.load(Ordering::Relaxed)
            } else {
                online
            };
            // Recording means video reaches the store: a failing disk shows as online, not
            // recording (the log says why).
            let recording = wanted && !activity.store_failing();
            let frames = sensors.camera.activity.video_frames.load(Ordering::Relaxed);
            let bytes = sensors.camera.activity.video_bytes.load(Ordering::Relaxed);
            let seconds = now.duration_since(sensors.last_at).as_secs_f32();
            let per_second = |delta: u64| {
                if seconds > 0.0 {
                    delta as f32 / seconds
                } else {
                    0.0
                }
            };
            let fps = per_second(frames.saturating_sub(sensors.last_frames));
            let kbit_s = per_second(bytes.saturating_sub(sensors.last_bytes)) * 8.0 / 1000.0;
            sensors.last_frames = frames;
            sensors.last_bytes = bytes;
            sensors.last_at = now;
            values.push((sensors.online, SensorValue::Binary(online)));
            values.push((sensors.recording, SensorValue::Binary(recording)));
            values.push((
                sensors.status,
                SensorValue::Unsigned(camera_status_code(state, reason)),
            ));
            values.push((sensors.fps, SensorValue::Scalar(fps.round())));
            values.push((sensors.bitrate, SensorValue::Scalar(kbit_s.round())));
        }
        values.push((
            self.store_status,
            SensorValue::Unsigned(u64::from(self.store.status().code())),
        ));
        for (id, value) in values {
            self.set(id, value);
        }
    }

    fn sample_storage(&mut self) {
        let stats = self.store.stats();
        let used_percent =
            f64::from(stats.slots_in_use) * 100.0 / f64::from(stats.layout.slot_count.max(1));
        self.set(self.used, SensorValue::Scalar(used_percent as f32));
        let written = stats.totals.bytes_written;
        self.set(
            self.written,
            SensorValue::Scalar((written as f64 / 1e6) as f32),
        );
        if let Some((id, endurance_bytes)) = self.endurance {
            let percent = written as f64 * 100.0 / endurance_bytes as f64;
            self.set(id, SensorValue::Scalar(percent as f32));
        }
        let totals = self.store.camera_totals();
        let mut counters = Vec::new();
        for sensors in &self.cameras {
            let overwritten = totals
                .iter()
                .find(|t| t.camera == sensors.camera.name)
                .map_or(0, |t| t.fragments_overwritten);
            let dropped = sensors
                .camera
                .activity
                .writer
                .get()
                .map_or(0, |c| c.dropped_gops.load(Ordering::Relaxed));
            counters.push((sensors.overwritten, overwritten));
            counters.push((sensors.dropped, dropped));
        }
        for (id, count) in counters {
            self.set(id, SensorValue::Scalar(count as f32));
        }
        if let Some((id, path)) = &self.temperature {
            if let Some(celsius) = read_celsius(path) {
                self.set(*id, SensorValue::Scalar(celsius));
            }
        }
    }
}

/// The `temp` file of the CPU's thermal zone: the zone whose `type` names the CPU or SoC, else
/// the lowest-numbered readable zone (on a Pi, `thermal_zone0` is `cpu-thermal`).
pub fn find_cpu_thermal_zone(root: &Path) -> Option<PathBuf> {
    let mut zones: Vec<PathBuf> = std::fs::read_dir(root)
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("thermal_zone"))
        })
        .filter(|zone| read_celsius(&zone.join("temp")).is_some())
        .collect();
    zones.sort();
    let is_cpu = |zone: &PathBuf| {
        std::fs::read_to_string(zone.join("type")).is_ok_and(|t| {
            let t = t.to_ascii_lowercase();
            t.contains("cpu") || t.contains("soc") || t.contains("x86_pkg")
        })
    };
    let zone = zones.iter().find(|z| is_cpu(z)).or(zones.first())?.clone();
    Some(zone.join("temp"))
}

/// A thermal `temp` file's reading in °C (the file holds millidegrees).
fn read_celsius(path: &Path) -> Option<f32> {
    let text = std::fs::read_to_string(path).ok()?;
    let milli: i64 = text.trim().parse().ok()?;
    Some(milli as f32 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cpu_zone_and_reads_millidegrees() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(find_cpu_thermal_zone(dir.path()), None);
        for (zone, kind, temp) in [
            ("thermal_zone0", "acpitz", "27800"),
            ("thermal_zone1", "cpu-thermal", "48312"),
            ("thermal_zone2", "broken", "n/a"),
        ] {
            let path = dir.path().join(zone);
            std::fs::create_dir(&path).unwrap();
            std::fs::write(path.join("type"), kind).unwrap();
            std::fs::write(path.join("temp"), temp).unwrap();
        }
        let found = find_cpu_thermal_zone(dir.path()).unwrap();
        assert!(found.ends_with("thermal_zone1/temp"), "{found:?}");
        assert_eq!(read_celsius(&found), Some(48.312));
    }

    #[test]
    fn camera_status_maps_ingest_and_the_writer() {
        let retrying = |kind| CameraStatus::Retrying {
            kind,
            reason: "x".into(),
            consecutive_failures: 1,
        };
        let cases = [
            (
                CameraStatus::Streaming,
                false,
                CameraState::Online,
                CameraReason::None,
            ),
            (
                CameraStatus::Streaming,
                true,
                CameraState::Degraded,
                CameraReason::Storage,
            ),
            (
                CameraStatus::Connecting,
                false,
                CameraState::Connecting,
                CameraReason::None,
            ),
            (
                retrying(IngestErrorKind::Unauthorized),
                false,
                CameraState::Offline,
                CameraReason::AuthFailed,
            ),
            (
                retrying(IngestErrorKind::Transient),
                false,
                CameraState::Offline,
                CameraReason::Unreachable,
            ),
            (
                retrying(IngestErrorKind::Stalled),
                false,
                CameraState::Offline,
                CameraReason::NoData,
            ),
            (
                retrying(IngestErrorKind::Refused),
                false,
                CameraState::Offline,
                CameraReason::Refused,
            ),
            (
                retrying(IngestErrorKind::BadMedia),
                false,
                CameraState::Offline,
                CameraReason::BadStream,
            ),
            (
                CameraStatus::Degraded {
                    kind: IngestErrorKind::TimestampJump,
                    reason: "x".into(),
                },
                false,
                CameraState::Degraded,
                CameraReason::Timestamps,
            ),
            (
                CameraStatus::Degraded {
                    kind: IngestErrorKind::TimestampJump,
                    reason: "x".into(),
                },
                true,
                CameraState::Degraded,
                CameraReason::Storage,
            ),
            (
                retrying(IngestErrorKind::Unsupported),
                false,
                CameraState::Offline,
                CameraReason::Unsupported,
            ),
            (
                CameraStatus::Stopped,
                true,
                CameraState::Stopped,
                CameraReason::None,
            ),
        ];
        for (status, failing, state, reason) in cases {
            assert_eq!(
                camera_status(&status, failing),
                (state, reason),
                "{status:?}"
            );
        }
    }

    #[test]
    fn overrides_change_only_what_they_name() {
        let overrides = vec![ReportConfig {
            sensor: "front_fps".into(),
            deadband: Some(0.5),
            min_interval: None,
            max_interval: Some(crate::config::HumanDuration::from_secs(30)),
        }];
        let changed = policy_for("front_fps", &overrides);
        assert_eq!(changed.deadband, Deadband::Absolute(0.5));
        assert_eq!(
            changed.min_interval_ms,
            default_policy("front_fps").min_interval_ms
        );
        assert_eq!(changed.max_interval_ms, Some(30_000));
        assert_eq!(policy_for(CPU_TEMP, &overrides), default_policy(CPU_TEMP));
    }
}
