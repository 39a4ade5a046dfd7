//! GPIO: sensors, outputs and rules on real or simulated pins, and the control socket.
//!
//! Receives the `[[sensor]]`, `[[output]]`, `[[rule]]` and `[control]` config ([`config`]),
//! and manual output commands through [`OutputControl`]. Emits one [`SensorEvent`] per motion
//! change of each sensor on a tokio broadcast channel that the state bus and the recorder's
//! triggers subscribe to, and one [`OutputEvent`] per switch of an output. Layout:
//!
//! ```text
//! pins (rppal | gpiocdev | sim)  ──►  sensor_task (PIR driver, one task per sensor) ──► SensorEvent
//!                                                                                       │
//! pins (outputs)  ◄── outputs (rules + manual commands, one task) ◄─────────────────────┘
//!                        │ ▲ OutputControl (MQTT, HTTP API)
//!                        └──► OutputEvent
//! control (Unix socket) ──► sim (levels of simulated pins)   ◄── `edgenvr sim` (sim_cli)
//! ```
//!
//! [`start`] opens every pin and spawns the tasks. A pin that cannot be opened is reported (in
//! [`Gpio::open_errors`] and the log) and left out; everything else keeps running, recording
//! included. All time comes from one [`GpioClock`].

pub mod control;
pub mod outputs;
pub mod pins;
pub mod rules;
pub mod sensor_task;
pub mod sim;
pub mod sim_cli;

use std::collections::HashMap;
use std::path::PathBuf;

use edgenvr_sensors::Output;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

pub use crate::config::gpio::{ControlConfig, OutputConfig, RuleConfig, SensorConfig};
pub use control::{ControlError, ControlServer};
pub use outputs::{
    CommandError, OutputAction, OutputCommand, OutputControl, OutputEvent, OutputReport,
};
pub use pins::{InputBackend, OpenError, OutputBackend};
pub use sensor_task::{spawn_sensor, SensorEvent};
pub use sim::SimPins;

/// Sensor events buffered per subscriber before a slow one starts missing them: PIR changes come
/// at most a few per second per sensor, so this covers minutes of a stalled subscriber.
pub const EVENT_CAPACITY: usize = 256;

/// The channel sensor events are sent on. Subscribe (`sender.subscribe()`) before [`start`] to
/// see every event.
pub fn event_channel() -> (
    broadcast::Sender<SensorEvent>,
    broadcast::Receiver<SensorEvent>,
) {
    broadcast::channel(EVENT_CAPACITY)
}

/// The channel output switches are sent on. Subscribe before [`start`] to see each output's
/// state at start.
pub fn output_channel() -> (
    broadcast::Sender<OutputEvent>,
    broadcast::Receiver<OutputEvent>,
) {
    broadcast::channel(EVENT_CAPACITY)
}

/// Monotonic milliseconds since a fixed start, on the tokio clock (so paused-time tests work):
/// the time base handed to the no_std drivers.
#[derive(Debug, Clone, Copy)]
pub struct GpioClock {
    epoch: tokio::time::Instant,
}

impl GpioClock {
    /// A clock starting at zero now.
    pub fn start() -> Self {
        GpioClock {
            epoch: tokio::time::Instant::now(),
        }
    }

    /// Milliseconds since the start.
    pub fn now_ms(&self) -> u64 {
        self.ms_at(tokio::time::Instant::now())
    }

    /// Milliseconds since the start at `instant` (0 before it).
    pub fn ms_at(&self, instant: tokio::time::Instant) -> u64 {
        u64::try_from(instant.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    /// The instant `ms` milliseconds after the start.
    pub fn instant_at(&self, ms: u64) -> tokio::time::Instant {
        self.epoch + std::time::Duration::from_millis(ms)
    }
}

/// The GPIO sections of the config, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct GpioSections<'a> {
    /// `[[sensor]]`.
    pub sensors: &'a [SensorConfig],
    /// `[[output]]`.
    pub outputs: &'a [OutputConfig],
    /// `[[rule]]`.
    pub rules: &'a [RuleConfig],
    /// `[control]`.
    pub control: &'a ControlConfig,
}

/// The running GPIO part of the box.
#[derive(Debug)]
pub struct Gpio {
    /// The simulated pins (also reachable through the control socket).
    pub sim: SimPins,
    /// Where the control socket listens, if it does.
    pub control_socket: Option<PathBuf>,
    /// Pins that could not be opened (their sensors/outputs are not running).
    pub open_errors: Vec<OpenError>,
    /// Manual commands for the outputs that opened (`None` without outputs).
    pub outputs: Option<OutputControl>,
    tasks: Vec<JoinHandle<()>>,
}

impl Gpio {
    /// Stops every task (sensor, rules, control socket; the socket file is removed).
    pub async fn shutdown(mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
    }
}

impl Drop for Gpio {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Opens the pins, binds the control socket and spawns one task per sensor, the outputs task
/// (rules and manual commands) and the control server; sensor events go to `events`, output
/// switches to `output_events`. Fails only if the control socket cannot be bound while
/// simulated pins exist (without it they could never change); pins that fail to open are
/// logged and listed in [`Gpio::open_errors`]. Call [`config::validate`] first.
pub async fn start(
    sections: GpioSections<'_>,
    events: broadcast::Sender<SensorEvent>,
    output_events: broadcast::Sender<OutputEvent>,
) -> Result<Gpio, ControlError> {
    let clock = GpioClock::start();
    let sim = SimPins::from_config(sections.sensors, sections.outputs);
    let mut tasks = Vec::new();
    let mut open_errors = Vec::new();

    let socket = control::socket_path(sections.control);
    let control_socket = match ControlServer::bind(&socket).await {
        Ok(server) => {
            tasks.push(server.spawn(sim.clone()));
            Some(socket)
        }
        Err(e) if sim.names().next().is_some() => return Err(e),
        Err(e) => {
            tracing::warn!(error = %e, "no control socket (no simulated pins need it)");
            None
        }
    };

    let mut outputs = HashMap::new();
    for config in sections.outputs {
        let opened = OutputBackend::open(config, &sim).and_then(|pin| {
            Output::new(pin, config.active_low).map_err(|e| OpenError {
                entry: format!("output {:?}", config.name),
                backend: config.backend.as_str(),
                location: config.location().to_string(),
                reason: format!("cannot switch it off: {e}"),
            })
        });
        match opened {
            Ok(output) => {
                outputs.insert(config.name.clone(), output);
            }
            Err(e) => {
                tracing::error!(output = %config.name, "{e}; the output stays unused");
                open_errors.push(e);
            }
        }
    }
    let control = if sections.outputs.is_empty() {
        None
    } else {
        let order: Vec<String> = sections.outputs.iter().map(|o| o.name.clone()).collect();
        let (task, control) = outputs::spawn_outputs(
            sections.rules,
            outputs,
            &order,
            clock,
            events.subscribe(),
            output_events,
        );
        tasks.push(task);
        Some(control)
    };

    for (index, config) in sections.sensors.iter().enumerate() {
        match InputBackend::open(config, &sim) {
            Ok(pin) => tasks.push(spawn_sensor(index, config, pin, clock, events.clone())),
            Err(e) => {
                tracing::error!(sensor = %config.name, "{e}; the sensor is not watched");
                open_errors.push(e);
            }
        }
    }

    Ok(Gpio {
        sim,
        control_socket,
        open_errors,
        outputs: control,
        tasks,
    })
}
