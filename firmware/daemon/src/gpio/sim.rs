//! Simulated pins: levels held in memory, set from outside the process through the control
//! socket (`edgenvr sim set`), for the demo and the tests.
//!
//! [`SimPins`] owns one level per `backend = "sim"` sensor or output, created from the config at
//! start and fixed afterwards (no pins appear later). It hands out [`SimInputPin`]s (read and
//! awaited by sensor tasks) and [`SimOutputPin`]s (driven by the rules task), and serves
//! `set`/`get` for the control socket. Levels are raw pin levels: a sim input starts at its
//! *inactive* level (low, or high when `active_low`), as a wired sensor at rest shows, and
//! `active_low` applies on top exactly as for a real pin. Each level is a `tokio::sync::watch`
//! channel, so readers are woken on change without polling; cheap to clone, shareable between
//! tasks.

use std::collections::HashMap;
use std::sync::Arc;

use embedded_hal::digital::{ErrorKind, ErrorType, InputPin, OutputPin};
use tokio::sync::watch;

use crate::config::gpio::{Backend, OutputConfig, SensorConfig};

/// Whether a simulated pin is read by the box (a sensor) or driven by it (an output).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimDirection {
    /// A sensor: `edgenvr sim set` drives it.
    Input,
    /// An output: the box drives it; `edgenvr sim get` reads it.
    Output,
}

/// A refused request to the simulated pins.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// No `backend = "sim"` sensor or output has this name.
    #[error("no simulated sensor or output named {0:?}")]
    UnknownName(String),
    /// `sim set` on an output: the box drives outputs.
    #[error("{0:?} is an output; its level is set by the box's rules, not by `sim set`")]
    NotAnInput(String),
    /// The wrong kind of pin was asked for (a sensor task for an output, or the reverse).
    #[error("{name:?} is a simulated {actual:?}, not an {wanted:?}")]
    WrongDirection {
        /// The pin's name.
        name: String,
        /// What it is.
        actual: SimDirection,
        /// What was asked for.
        wanted: SimDirection,
    },
}

#[derive(Debug)]
struct SimEntry {
    direction: SimDirection,
    level_high: watch::Sender<bool>,
}

/// The set of simulated pins of one running box.
#[derive(Debug, Clone, Default)]
pub struct SimPins {
    pins: Arc<HashMap<String, SimEntry>>,
}

impl SimPins {
    /// One pin for each `backend = "sim"` sensor and output. Each starts at its resting level:
    /// inputs inactive, outputs off (high when `active_low`, as a real output is opened).
    pub fn from_config(sensors: &[SensorConfig], outputs: &[OutputConfig]) -> Self {
        let inputs = sensors
            .iter()
            .filter(|s| s.backend == Backend::Sim)
            .map(|s| (s.name.clone(), SimDirection::Input, s.active_low));
        let outputs = outputs
            .iter()
            .filter(|o| o.backend == Backend::Sim)
            .map(|o| (o.name.clone(), SimDirection::Output, o.active_low));
        let pins = inputs
            .chain(outputs)
            .map(|(name, direction, level_high)| {
                let (level_high, _) = watch::channel(level_high);
                (
                    name,
                    SimEntry {
                        direction,
                        level_high,
                    },
                )
            })
            .collect();
        SimPins {
            pins: Arc::new(pins),
        }
    }

    fn entry(&self, name: &str) -> Result<&SimEntry, SimError> {
        self.pins
            .get(name)
            .ok_or_else(|| SimError::UnknownName(name.to_owned()))
    }

    fn entry_as(&self, name: &str, wanted: SimDirection) -> Result<&SimEntry, SimError> {
        let entry = self.entry(name)?;
        if entry.direction != wanted {
            return Err(SimError::WrongDirection {
                name: name.to_owned(),
                actual: entry.direction,
                wanted,
            });
        }
        Ok(entry)
    }

    /// Sets a simulated sensor's raw level (what `edgenvr sim set` does).
    pub fn set(&self, name: &str, high: bool) -> Result<(), SimError> {
        let entry = self.entry(name)?;
        if entry.direction != SimDirection::Input {
            return Err(SimError::NotAnInput(name.to_owned()));
        }
        entry.level_high.send_if_modified(|level| {
            let changed = *level != high;
            *level = high;
            changed
        });
        Ok(())
    }

    /// The raw level of a simulated sensor or output (what `edgenvr sim get` shows).
    pub fn get(&self, name: &str) -> Result<bool, SimError> {
        Ok(*self.entry(name)?.level_high.borrow())
    }

    /// Watches a pin's raw level: the receiver wakes on every change (tests, demo displays).
    pub fn watch(&self, name: &str) -> Result<watch::Receiver<bool>, SimError> {
        Ok(self.entry(name)?.level_high.subscribe())
    }

    /// The names and directions of all simulated pins.
    pub fn names(&self) -> impl Iterator<Item = (&str, SimDirection)> {
        self.pins.iter().map(|(n, e)| (n.as_str(), e.direction))
    }

    /// An embedded-hal input on a simulated sensor.
    pub fn input(&self, name: &str) -> Result<SimInputPin, SimError> {
        let entry = self.entry_as(name, SimDirection::Input)?;
        Ok(SimInputPin {
            level_high: entry.level_high.subscribe(),
        })
    }

    /// An embedded-hal output on a simulated output.
    pub fn output(&self, name: &str) -> Result<SimOutputPin, SimError> {
        self.entry_as(name, SimDirection::Output)?;
        Ok(SimOutputPin {
            pins: self.clone(),
            name: name.to_owned(),
        })
    }
}

/// The error of a simulated pin: the set of pins was dropped (the box is shutting down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the simulated pins were shut down")]
pub struct SimPinClosed;

impl embedded_hal::digital::Error for SimPinClosed {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}

/// A simulated input pin: reads and awaits the level set through the control socket.
#[derive(Debug)]
pub struct SimInputPin {
    level_high: watch::Receiver<bool>,
}

impl SimInputPin {
    async fn changed(&mut self) -> Result<bool, SimPinClosed> {
        self.level_high.changed().await.map_err(|_| SimPinClosed)?;
        Ok(*self.level_high.borrow_and_update())
    }
}

impl ErrorType for SimInputPin {
    type Error = SimPinClosed;
}

impl InputPin for SimInputPin {
    fn is_high(&mut self) -> Result<bool, Self::Error> {
        // Marks the level as seen, so a following wait only wakes for a newer one.
        Ok(*self.level_high.borrow_and_update())
    }

    fn is_low(&mut self) -> Result<bool, Self::Error> {
        self.is_high().map(|high| !high)
    }
}

impl embedded_hal_async::digital::Wait for SimInputPin {
    async fn wait_for_high(&mut self) -> Result<(), Self::Error> {
        while !self.is_high()? {
            self.changed().await?;
        }
        Ok(())
    }

    async fn wait_for_low(&mut self) -> Result<(), Self::Error> {
        while self.is_high()? {
            self.changed().await?;
        }
        Ok(())
    }

    async fn wait_for_rising_edge(&mut self) -> Result<(), Self::Error> {
        while !self.changed().await? {}
        Ok(())
    }

    async fn wait_for_falling_edge(&mut self) -> Result<(), Self::Error> {
        while self.changed().await? {}
        Ok(())
    }

    async fn wait_for_any_edge(&mut self) -> Result<(), Self::Error> {
        self.changed().await.map(|_| ())
    }
}

/// A simulated output pin: its level is visible through `edgenvr sim get` and [`SimPins::watch`].
#[derive(Debug)]
pub struct SimOutputPin {
    pins: SimPins,
    name: String,
}

impl SimOutputPin {
    fn drive(&mut self, high: bool) -> Result<(), SimPinClosed> {
        let entry = self.pins.pins.get(&self.name).ok_or(SimPinClosed)?;
        entry.level_high.send_if_modified(|level| {
            let changed = *level != high;
            *level = high;
            changed
        });
        Ok(())
    }
}

impl ErrorType for SimOutputPin {
    type Error = SimPinClosed;
}

impl OutputPin for SimOutputPin {
    fn set_low(&mut self) -> Result<(), Self::Error> {
        self.drive(false)
    }

    fn set_high(&mut self) -> Result<(), Self::Error> {
        self.drive(true)
    }
}

#[cfg(test)]
mod tests {
    use embedded_hal_async::digital::Wait;

    use super::*;
    use crate::config::gpio::{Pull, SensorKind};

    fn sensor(name: &str, active_low: bool) -> SensorConfig {
        SensorConfig {
            name: name.into(),
            kind: SensorKind::Pir,
            backend: Backend::Sim,
            pin: None,
            chip: None,
            line: None,
            active_low,
            pull: Pull::None,
            debounce: std::time::Duration::ZERO,
            hold: std::time::Duration::ZERO,
            warmup: None,
        }
    }

    fn output(name: &str) -> OutputConfig {
        OutputConfig {
            name: name.into(),
            backend: Backend::Sim,
            pin: None,
            chip: None,
            line: None,
            active_low: false,
        }
    }

    #[test]
    fn inputs_start_inactive_and_names_are_checked() {
        let pins = SimPins::from_config(&[sensor("a", false), sensor("b", true)], &[output("o")]);
        assert_eq!(pins.get("a"), Ok(false));
        assert_eq!(pins.get("b"), Ok(true));
        assert_eq!(pins.get("o"), Ok(false));
        assert_eq!(pins.set("a", true), Ok(()));
        assert_eq!(pins.get("a"), Ok(true));
        assert_eq!(
            pins.set("zz", true),
            Err(SimError::UnknownName("zz".into()))
        );
        assert_eq!(pins.set("o", true), Err(SimError::NotAnInput("o".into())));
        assert!(matches!(
            pins.input("o"),
            Err(SimError::WrongDirection { .. })
        ));
        assert!(matches!(
            pins.output("a"),
            Err(SimError::WrongDirection { .. })
        ));
    }

    #[tokio::test]
    async fn an_input_wakes_on_edges_set_from_outside() {
        let pins = SimPins::from_config(&[sensor("a", false)], &[]);
        let mut pin = pins.input("a").unwrap();
        assert!(!pin.is_high().unwrap());
        let setter = pins.clone();
        let waiter = tokio::spawn(async move {
            pin.wait_for_rising_edge().await.unwrap();
            pin.is_high().unwrap()
        });
        setter.set("a", true).unwrap();
        assert!(waiter.await.unwrap());
    }

    #[test]
    fn an_output_pin_shows_in_get_and_watch() {
        let pins = SimPins::from_config(&[], &[output("o")]);
        let mut watch = pins.watch("o").unwrap();
        let mut pin = pins.output("o").unwrap();
        pin.set_high().unwrap();
        assert_eq!(pins.get("o"), Ok(true));
        assert!(watch.has_changed().unwrap());
        assert!(*watch.borrow_and_update());
    }
}
