//! One task per sensor: reads its pin through the PIR driver and emits [`SensorEvent`]s.
//!
//! Receives an opened [`InputBackend`] and the sensor's config; emits a [`SensorEvent`] on a
//! tokio broadcast channel each time the debounced, held, warm-up-filtered motion state changes
//! (never for raw edges). The task sleeps until the pin moves or the driver's next deadline
//! (debounce settling, hold end, warm-up end); it never busy-polls. A failing read is logged and
//! retried after [`READ_RETRY`]; the task ends only when its simulated pin is shut down or it is
//! aborted.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use edgenvr_sensors::{Pir, PirChange, PirConfig};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::pins::InputBackend;
use super::GpioClock;
use crate::config::gpio::SensorConfig;

/// Pause after a failed pin read before trying again: long enough not to flood the log, short
/// against a PIR's seconds-long output pulse.
pub const READ_RETRY: Duration = Duration::from_secs(1);

/// A sensor's motion state changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SensorEvent {
    /// Position of the sensor in the config's `[[sensor]]` list.
    pub index: usize,
    /// The sensor's configured name.
    pub name: Arc<str>,
    /// Motion now on (`true`) or ended (`false`).
    pub triggered: bool,
    /// When the change was detected (monotonic, the runtime's clock).
    pub at: tokio::time::Instant,
    /// The same moment on the wall clock, for stored events and the state upstream.
    pub at_wall: SystemTime,
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The driver settings of one sensor's config.
pub fn pir_config(config: &SensorConfig) -> PirConfig {
    PirConfig {
        active_low: config.active_low,
        debounce_ms: duration_ms(config.debounce),
        hold_ms: duration_ms(config.hold),
        warmup_ms: duration_ms(config.effective_warmup()),
    }
}

/// Starts the task of sensor number `index`. Warm-up counts from now.
pub fn spawn_sensor(
    index: usize,
    config: &SensorConfig,
    pin: InputBackend,
    clock: GpioClock,
    events: broadcast::Sender<SensorEvent>,
) -> JoinHandle<()> {
    let name: Arc<str> = Arc::from(config.name.as_str());
    let pir = Pir::new(pin, pir_config(config), clock.now_ms());
    tokio::spawn(run(index, name, pir, clock, events))
}

async fn run(
    index: usize,
    name: Arc<str>,
    mut pir: Pir<InputBackend>,
    clock: GpioClock,
    events: broadcast::Sender<SensorEvent>,
) {
    let simulated = matches!(pir.pin_mut(), InputBackend::Sim(_));
    loop {
        let now_ms = clock.now_ms();
        match pir.poll(now_ms) {
            Ok(Some(change)) => {
                let triggered = change == PirChange::Triggered;
                tracing::info!(sensor = %name, triggered, "sensor changed");
                // No subscriber yet is not an error: the change is simply not wanted.
                let _ = events.send(SensorEvent {
                    index,
                    name: name.clone(),
                    triggered,
                    at: tokio::time::Instant::now(),
                    at_wall: SystemTime::now(),
                });
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(sensor = %name, error = %e, "reading the sensor failed; retrying");
                tokio::time::sleep(READ_RETRY).await;
                continue;
            }
        }
        let deadline = pir.next_deadline_ms(now_ms).map(|ms| clock.instant_at(ms));
        tokio::select! {
            waited = pir.wait_for_edge() => {
                if let Err(e) = waited {
                    if simulated {
                        tracing::debug!(sensor = %name, "simulated pin shut down; sensor task ends");
                        return;
                    }
                    tracing::warn!(sensor = %name, error = %e, "waiting for the sensor failed; retrying");
                    tokio::time::sleep(READ_RETRY).await;
                }
            }
            () = sleep_until_or_forever(deadline) => {}
        }
    }
}

async fn sleep_until_or_forever(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
