//! Real pins: `rppal` (Raspberry Pi, BCM numbers) and `gpiocdev` (/dev/gpiochipN + line), and the
//! per-backend [`InputBackend`]/[`OutputBackend`] that the sensor and rules tasks drive.
//!
//! Receives a sensor's or output's config; opens the pin (blocking system calls, done once at
//! start) or returns [`OpenError`] naming the entry, backend, pin/chip/line and the OS's reason.
//! Each backend implements embedded-hal's `InputPin`/`OutputPin`, and inputs implement the async
//! `Wait`: simulated pins are woken by their channel; real pins are sampled every
//! [`POLL_INTERVAL`] while waiting (reading a level is one register read with rppal and one ioctl
//! with gpiocdev).

use std::time::Duration;

use embedded_hal::digital::{ErrorKind, ErrorType, InputPin, OutputPin};

use super::sim::{SimError, SimInputPin, SimOutputPin, SimPinClosed, SimPins};
use crate::config::gpio::{Backend, OutputConfig, Pull, SensorConfig};

/// How often a real input is sampled while waiting for an edge. A PIR output stays high for
/// seconds; 10 ms adds at most one tenth of the default debounce and costs ~100 reads a second.
pub const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// The consumer label the kernel shows for lines we hold (`gpioinfo`).
const CONSUMER: &str = "edgenvr";

/// A pin could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("{entry}: cannot open {location} (backend \"{backend}\"): {reason}")]
pub struct OpenError {
    /// The config entry, e.g. `sensor "pir-hall"`.
    pub entry: String,
    /// The backend's config name.
    pub backend: &'static str,
    /// Where the pin is, e.g. `BCM GPIO 17` or `/dev/gpiochip0 line 17`.
    pub location: String,
    /// Why, from the backend or the OS.
    pub reason: String,
}

/// Reading or driving an open pin failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {reason}")]
pub struct PinError {
    /// Where the pin is.
    pub location: String,
    /// Why.
    pub reason: String,
}

impl embedded_hal::digital::Error for PinError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}

impl From<SimPinClosed> for PinError {
    fn from(e: SimPinClosed) -> Self {
        PinError {
            location: "simulated pin".into(),
            reason: e.to_string(),
        }
    }
}

/// A gpiocdev line request for one line.
#[derive(Debug)]
pub struct CdevLine {
    request: gpiocdev::Request,
    location: String,
}

impl CdevLine {
    fn open(
        chip: &std::path::Path,
        line: u32,
        pull: Option<Pull>,
        output_high: Option<bool>,
    ) -> Result<Self, String> {
        // Existence first: the kernel's message for a missing chip is a bare ENOENT.
        if !chip.exists() {
            return Err(format!(
                "{} does not exist (no such GPIO chip)",
                chip.display()
            ));
        }
        let mut builder = gpiocdev::Request::builder();
        builder
            .on_chip(chip)
            .with_consumer(CONSUMER)
            .with_line(line);
        match (output_high, pull) {
            (Some(high), _) => {
                builder.as_output(if high {
                    gpiocdev::line::Value::Active
                } else {
                    gpiocdev::line::Value::Inactive
                });
            }
            (None, bias) => {
                builder.as_input().with_bias(match bias {
                    Some(Pull::Up) => Some(gpiocdev::line::Bias::PullUp),
                    Some(Pull::Down) => Some(gpiocdev::line::Bias::PullDown),
                    Some(Pull::None) => Some(gpiocdev::line::Bias::Disabled),
                    None => None,
                });
            }
        }
        let request = builder.request().map_err(|e| e.to_string())?;
        Ok(CdevLine {
            request,
            location: format!("{} line {line}", chip.display()),
        })
    }

    fn read(&self) -> Result<bool, PinError> {
        self.request
            .lone_value()
            .map(|v| v == gpiocdev::line::Value::Active)
            .map_err(|e| PinError {
                location: self.location.clone(),
                reason: e.to_string(),
            })
    }

    fn write(&self, high: bool) -> Result<(), PinError> {
        let value = if high {
            gpiocdev::line::Value::Active
        } else {
            gpiocdev::line::Value::Inactive
        };
        self.request.set_lone_value(value).map_err(|e| PinError {
            location: self.location.clone(),
            reason: e.to_string(),
        })
    }
}

#[cfg(target_os = "linux")]
fn rppal_pin(pin: u8) -> Result<rppal::gpio::Pin, String> {
    let gpio = rppal::gpio::Gpio::new().map_err(|e| format!("{e} (is this a Raspberry Pi?)"))?;
    gpio.get(pin).map_err(|e| e.to_string())
}

/// An input pin of any backend.
#[derive(Debug)]
pub enum InputBackend {
    /// Raspberry Pi GPIO.
    #[cfg(target_os = "linux")]
    Rppal {
        /// The pin.
        pin: rppal::gpio::InputPin,
        /// For messages.
        location: String,
    },
    /// A /dev/gpiochipN line.
    Cdev(CdevLine),
    /// A simulated pin.
    Sim(SimInputPin),
}

impl InputBackend {
    /// Opens the input of one `[[sensor]]`.
    pub fn open(config: &SensorConfig, sim: &SimPins) -> Result<Self, OpenError> {
        let entry = format!("sensor {:?}", config.name);
        let fail = |reason: String| OpenError {
            entry: entry.clone(),
            backend: config.backend.as_str(),
            location: config.location().to_string(),
            reason,
        };
        match config.backend {
            Backend::Sim => sim
                .input(&config.name)
                .map(InputBackend::Sim)
                .map_err(|e: SimError| fail(e.to_string())),
            Backend::Gpiocdev => {
                let (Some(chip), Some(line)) = (&config.chip, config.line) else {
                    return Err(fail("`chip` and `line` are required".into()));
                };
                let path = crate::config::gpio::chip_path(chip);
                CdevLine::open(&path, line, Some(config.pull), None)
                    .map(InputBackend::Cdev)
                    .map_err(fail)
            }
            Backend::Rppal => {
                let Some(pin) = config.pin else {
                    return Err(fail("`pin` is required".into()));
                };
                #[cfg(target_os = "linux")]
                {
                    let raw = rppal_pin(pin).map_err(fail)?;
                    let pin_input = match config.pull {
                        Pull::Up => raw.into_input_pullup(),
                        Pull::Down => raw.into_input_pulldown(),
                        Pull::None => raw.into_input(),
                    };
                    Ok(InputBackend::Rppal {
                        pin: pin_input,
                        location: format!("BCM GPIO {pin}"),
                    })
                }
                #[cfg(not(target_os = "linux"))]
                {
                    let _ = pin;
                    Err(fail(
                        "the rppal backend needs Linux on a Raspberry Pi".into(),
                    ))
                }
            }
        }
    }

    fn read(&mut self) -> Result<bool, PinError> {
        match self {
            #[cfg(target_os = "linux")]
            InputBackend::Rppal { pin, .. } => Ok(pin.is_high()),
            InputBackend::Cdev(line) => line.read(),
            InputBackend::Sim(pin) => Ok(pin.is_high()?),
        }
    }

    /// Sampling wait for real pins: returns when the level differs from `from_high`.
    async fn poll_until_not(&mut self, from_high: bool) -> Result<(), PinError> {
        let mut ticker = tokio::time::interval(POLL_INTERVAL);
        loop {
            ticker.tick().await;
            if self.read()? != from_high {
                return Ok(());
            }
        }
    }
}

impl ErrorType for InputBackend {
    type Error = PinError;
}

impl InputPin for InputBackend {
    fn is_high(&mut self) -> Result<bool, PinError> {
        self.read()
    }

    fn is_low(&mut self) -> Result<bool, PinError> {
        self.read().map(|h| !h)
    }
}

impl embedded_hal_async::digital::Wait for InputBackend {
    async fn wait_for_high(&mut self) -> Result<(), PinError> {
        while !self.read()? {
            self.wait_for_any_edge().await?;
        }
        Ok(())
    }

    async fn wait_for_low(&mut self) -> Result<(), PinError> {
        while self.read()? {
            self.wait_for_any_edge().await?;
        }
        Ok(())
    }

    async fn wait_for_rising_edge(&mut self) -> Result<(), PinError> {
        self.wait_for_low().await?;
        self.wait_for_high().await
    }

    async fn wait_for_falling_edge(&mut self) -> Result<(), PinError> {
        self.wait_for_high().await?;
        self.wait_for_low().await
    }

    async fn wait_for_any_edge(&mut self) -> Result<(), PinError> {
        match self {
            InputBackend::Sim(pin) => Ok(pin.wait_for_any_edge().await?),
            _ => {
                let now_high = self.read()?;
                self.poll_until_not(now_high).await
            }
        }
    }
}

/// An output pin of any backend.
#[derive(Debug)]
pub enum OutputBackend {
    /// Raspberry Pi GPIO.
    #[cfg(target_os = "linux")]
    Rppal(rppal::gpio::OutputPin),
    /// A /dev/gpiochipN line.
    Cdev(CdevLine),
    /// A simulated pin.
    Sim(SimOutputPin),
}

impl OutputBackend {
    /// Opens the pin of one `[[output]]`, driven to its "off" level from the start.
    pub fn open(config: &OutputConfig, sim: &SimPins) -> Result<Self, OpenError> {
        let entry = format!("output {:?}", config.name);
        let fail = |reason: String| OpenError {
            entry: entry.clone(),
            backend: config.backend.as_str(),
            location: config.location().to_string(),
            reason,
        };
        match config.backend {
            Backend::Sim => sim
                .output(&config.name)
                .map(OutputBackend::Sim)
                .map_err(|e| fail(e.to_string())),
            Backend::Gpiocdev => {
                let (Some(chip), Some(line)) = (&config.chip, config.line) else {
                    return Err(fail("`chip` and `line` are required".into()));
                };
                let path = crate::config::gpio::chip_path(chip);
                // Start at the "off" level so an active-low relay does not click on at start.
                CdevLine::open(&path, line, None, Some(config.active_low))
                    .map(OutputBackend::Cdev)
                    .map_err(fail)
            }
            Backend::Rppal => {
                let Some(pin) = config.pin else {
                    return Err(fail("`pin` is required".into()));
                };
                #[cfg(target_os = "linux")]
                {
                    let raw = rppal_pin(pin).map_err(fail)?;
                    // Relay boards are often active-low: start at the "off" level, not low.
                    Ok(OutputBackend::Rppal(if config.active_low {
                        raw.into_output_high()
                    } else {
                        raw.into_output_low()
                    }))
                }
                #[cfg(not(target_os = "linux"))]
                {
                    let _ = pin;
                    Err(fail(
                        "the rppal backend needs Linux on a Raspberry Pi".into(),
                    ))
                }
            }
        }
    }

    fn drive(&mut self, high: bool) -> Result<(), PinError> {
        match self {
            #[cfg(target_os = "linux")]
            OutputBackend::Rppal(pin) => {
                if high {
                    pin.set_high();
                } else {
                    pin.set_low();
                }
                Ok(())
            }
            OutputBackend::Cdev(line) => line.write(high),
            OutputBackend::Sim(pin) => {
                let driven = if high { pin.set_high() } else { pin.set_low() };
                Ok(driven?)
            }
        }
    }
}

impl ErrorType for OutputBackend {
    type Error = PinError;
}

impl OutputPin for OutputBackend {
    fn set_low(&mut self) -> Result<(), PinError> {
        self.drive(false)
    }

    fn set_high(&mut self) -> Result<(), PinError> {
        self.drive(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::gpio::SensorKind;

    fn sensor(
        backend: Backend,
        pin: Option<u8>,
        chip: Option<&str>,
        line: Option<u32>,
    ) -> SensorConfig {
        SensorConfig {
            name: "pir-hall".into(),
            kind: SensorKind::Pir,
            backend,
            pin,
            chip: chip.map(Into::into),
            line,
            active_low: false,
            pull: Pull::Down,
            debounce: Duration::ZERO,
            hold: Duration::ZERO,
            warmup: None,
        }
    }

    // This machine (and CI) has no Raspberry Pi GPIO and no /dev/gpiochip*: opening must fail
    // cleanly, naming the entry, backend and pin.

    #[test]
    fn rppal_without_a_pi_fails_naming_the_pin() {
        let err = InputBackend::open(
            &sensor(Backend::Rppal, Some(17), None, None),
            &SimPins::default(),
        )
        .unwrap_err()
        .to_string();
        // Here: "...: Unknown Raspberry Pi model (is this a Raspberry Pi?)".
        assert!(
            err.starts_with("sensor \"pir-hall\": cannot open BCM GPIO 17 (backend \"rppal\"): "),
            "{err}"
        );
        let output = OutputConfig {
            name: "relay".into(),
            backend: Backend::Rppal,
            pin: Some(27),
            chip: None,
            line: None,
            active_low: true,
        };
        let err = OutputBackend::open(&output, &SimPins::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("output \"relay\": cannot open BCM GPIO 27 (backend \"rppal\"): "),
            "{err}"
        );
    }

    #[test]
    fn gpiocdev_without_the_chip_fails_naming_chip_and_line() {
        let config = sensor(Backend::Gpiocdev, None, Some("gpiochip7"), Some(17));
        let err = InputBackend::open(&config, &SimPins::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "sensor \"pir-hall\": cannot open /dev/gpiochip7 line 17 (backend \"gpiocdev\"): \
             /dev/gpiochip7 does not exist (no such GPIO chip)"
        );
    }

    #[test]
    fn gpiocdev_on_a_file_that_is_not_a_chip_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("gpiochip0");
        std::fs::write(&fake, b"not a chip").unwrap();
        let config = sensor(Backend::Gpiocdev, None, fake.to_str(), Some(3));
        let err = InputBackend::open(&config, &SimPins::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("gpiochip0 line 3 (backend \"gpiocdev\"): "),
            "{err}"
        );
    }

    #[test]
    fn a_sim_sensor_missing_from_the_sim_pins_fails_naming_it() {
        let err = InputBackend::open(&sensor(Backend::Sim, None, None, None), &SimPins::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "sensor \"pir-hall\": cannot open simulated pin (backend \"sim\"): \
             no simulated sensor or output named \"pir-hall\""
        );
    }
}
