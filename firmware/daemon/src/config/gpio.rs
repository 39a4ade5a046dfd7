//! The GPIO part of the config file: `[[sensor]]`, `[[output]]`, `[[rule]]` and `[control]`.
//!
//! Receives TOML (through serde, as fields of the top-level config); emits typed settings and,
//! from [`validate`], every reference or consistency problem as a list of named
//! [`ConfigProblem`]s, so `check-config` can show them all at once. Unknown keys are errors.
//! No I/O: whether a pin can really be opened is only known at run time.
//!
//! ```toml
//! [[sensor]]
//! name = "pir-hall"
//! kind = "pir"
//! backend = "rppal"        # or "gpiocdev" (chip, line) or "sim"
//! pin = 17
//! debounce = "50ms"
//! hold = "5s"
//! [[output]]
//! name = "light-porch"
//! backend = "rppal"
//! pin = 27
//! [[rule]]
//! when = "pir-hall"
//! then = "light-porch"
//! for = "60s"
//! [control]
//! socket = "/run/edgenvr/control.sock"
//! ```

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Debounce when none is configured. A PIR module's output is clean, but long unshielded wires
/// pick up spikes of a few milliseconds; 50 ms filters those and is far below a person's motion.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(50);
/// Warm-up of a real PIR when none is configured: the HC-SR501 datasheet gives "about one
/// minute" of settling after power-on, during which it fires at random.
pub const DEFAULT_PIR_WARMUP: Duration = Duration::from_secs(60);
/// Highest BCM GPIO number: the BCM283x family has 54 GPIOs (0..=53); the header uses 2..=27.
pub const MAX_BCM_PIN: u8 = 53;

/// What kind of part a sensor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SensorKind {
    /// A passive-infrared motion detector (HC-SR501, AM312, ...).
    Pir,
}

/// Which GPIO implementation drives a pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Raspberry Pi GPIO through `rppal`, BCM pin numbers (`pin`).
    Rppal,
    /// The Linux GPIO character device (`chip` + `line`), any board, Pi 5 included.
    Gpiocdev,
    /// A simulated pin whose level is set through the control socket (`edgenvr sim set`).
    Sim,
}

impl Backend {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Rppal => "rppal",
            Backend::Gpiocdev => "gpiocdev",
            Backend::Sim => "sim",
        }
    }
}

/// The internal pull resistor of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pull {
    /// Pull up to 3.3 V (for active-low, open-collector outputs).
    Up,
    /// Pull down to ground (keeps an unplugged active-high input quiet).
    Down,
    /// No pull resistor: the sensor drives the line both ways (HC-SR501 does).
    #[default]
    None,
}

/// One `[[sensor]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorConfig {
    /// Unique name, used by rules, camera triggers, the state catalog and `edgenvr sim`.
    pub name: String,
    /// What the part is.
    pub kind: SensorKind,
    /// How the pin is reached.
    pub backend: Backend,
    /// BCM GPIO number (`rppal`; optional for `sim`).
    pub pin: Option<u8>,
    /// GPIO chip (`gpiocdev`): a name such as "gpiochip0" or a path such as "/dev/gpiochip4".
    pub chip: Option<String>,
    /// Line offset on the chip (`gpiocdev`).
    pub line: Option<u32>,
    /// The sensor signals motion by pulling the pin low.
    #[serde(default)]
    pub active_low: bool,
    /// Internal pull resistor (`rppal`, `gpiocdev`; ignored by `sim`).
    #[serde(default)]
    pub pull: Pull,
    /// How long a level must hold before it counts.
    #[serde(default = "default_debounce", deserialize_with = "duration")]
    pub debounce: Duration,
    /// How long motion stays on after the input goes quiet (retriggers extend it).
    #[serde(default, deserialize_with = "duration")]
    pub hold: Duration,
    /// How long after start activity is ignored; by default 60 s for real pins and 0 for `sim`
    /// (see [`SensorConfig::effective_warmup`]).
    #[serde(default, deserialize_with = "optional_duration")]
    pub warmup: Option<Duration>,
}

impl SensorConfig {
    /// The warm-up to apply: the configured one, or [`DEFAULT_PIR_WARMUP`] for a real pin and zero
    /// for a simulated one (there is no pyroelectric element to settle).
    pub fn effective_warmup(&self) -> Duration {
        match (self.warmup, self.backend) {
            (Some(warmup), _) => warmup,
            (None, Backend::Sim) => Duration::ZERO,
            (None, _) => DEFAULT_PIR_WARMUP,
        }
    }

    /// Where the pin is, for messages and duplicate checks.
    pub fn location(&self) -> PinLocation {
        PinLocation::of(self.backend, self.pin, self.chip.as_deref(), self.line)
    }
}

/// One `[[output]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Unique name, used by rules and `edgenvr sim get`.
    pub name: String,
    /// How the pin is reached.
    pub backend: Backend,
    /// BCM GPIO number (`rppal`; optional for `sim`).
    pub pin: Option<u8>,
    /// GPIO chip (`gpiocdev`).
    pub chip: Option<String>,
    /// Line offset on the chip (`gpiocdev`).
    pub line: Option<u32>,
    /// The output is on when the pin is low (many relay boards).
    #[serde(default)]
    pub active_low: bool,
}

impl OutputConfig {
    /// Where the pin is, for messages and duplicate checks.
    pub fn location(&self) -> PinLocation {
        PinLocation::of(self.backend, self.pin, self.chip.as_deref(), self.line)
    }
}

/// One `[[rule]]`: output `then` is on while sensor `when` is triggered, plus `for`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// The sensor's name.
    pub when: String,
    /// The output's name.
    pub then: String,
    /// How long the output stays on after the sensor clears.
    #[serde(rename = "for", default, deserialize_with = "duration")]
    pub for_duration: Duration,
}

/// `[control]`: the local control socket (`edgenvr sim`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    /// Path of the Unix socket; default: see [`crate::gpio::control::default_socket_path`].
    pub socket: Option<PathBuf>,
}

/// A pin's address as written in the config, normalised (`chip` always as a /dev path).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PinLocation {
    /// `rppal` BCM pin.
    Bcm(u8),
    /// `gpiocdev` chip path and line.
    ChipLine(PathBuf, u32),
    /// A simulated pin (never shared).
    Sim,
    /// Incomplete in the config (reported by [`validate`]).
    Missing,
}

impl PinLocation {
    fn of(backend: Backend, pin: Option<u8>, chip: Option<&str>, line: Option<u32>) -> Self {
        match (backend, pin, chip, line) {
            (Backend::Sim, ..) => PinLocation::Sim,
            (Backend::Rppal, Some(pin), ..) => PinLocation::Bcm(pin),
            (Backend::Gpiocdev, _, Some(chip), Some(line)) => {
                PinLocation::ChipLine(chip_path(chip), line)
            }
            _ => PinLocation::Missing,
        }
    }
}

impl std::fmt::Display for PinLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PinLocation::Bcm(pin) => write!(f, "BCM GPIO {pin}"),
            PinLocation::ChipLine(chip, line) => write!(f, "{} line {line}", chip.display()),
            PinLocation::Sim => write!(f, "simulated pin"),
            PinLocation::Missing => write!(f, "unspecified pin"),
        }
    }
}

/// `chip = "gpiochip0"` means `/dev/gpiochip0`; a value with a slash is a path.
pub fn chip_path(chip: &str) -> PathBuf {
    if chip.contains('/') {
        PathBuf::from(chip)
    } else {
        PathBuf::from("/dev").join(chip)
    }
}

/// One problem found by [`validate`]: which entry, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The entry, e.g. `sensor "pir-hall"` or `rule 2`.
    pub entry: String,
    /// What is wrong with it.
    pub message: String,
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.entry, self.message)
    }
}

/// Checks the GPIO sections together: pin vs chip+line per backend, duplicate names (sensors and
/// outputs share one name space, the one `edgenvr sim` uses), two entries on one pin, and rules
/// naming unknown sensors or outputs. Returns every problem found; empty means valid.
pub fn validate(
    sensors: &[SensorConfig],
    outputs: &[OutputConfig],
    rules: &[RuleConfig],
) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    let mut problem =
        |entry: String, message: String| problems.push(ConfigProblem { entry, message });

    let mut names: HashMap<&str, String> = HashMap::new();
    let mut pins: HashMap<PinLocation, String> = HashMap::new();
    let entries = sensors
        .iter()
        .map(|s| {
            (
                format!("sensor {:?}", s.name),
                &s.name,
                s.backend,
                s.pin,
                &s.chip,
                s.line,
                s.location(),
            )
        })
        .chain(outputs.iter().map(|o| {
            (
                format!("output {:?}", o.name),
                &o.name,
                o.backend,
                o.pin,
                &o.chip,
                o.line,
                o.location(),
            )
        }));
    for (entry, name, backend, pin, chip, line, location) in entries {
        if name.trim().is_empty() || name.chars().any(char::is_whitespace) {
            problem(
                entry.clone(),
                "a name must be non-empty and without spaces".into(),
            );
        }
        if let Some(first) = names.insert(name, entry.clone()) {
            problem(entry.clone(), format!("name already used by {first}"));
        }
        match backend {
            Backend::Rppal => {
                match pin {
                    None => problem(
                        entry.clone(),
                        "backend \"rppal\" needs `pin` (a BCM GPIO number)".into(),
                    ),
                    Some(p) if p > MAX_BCM_PIN => problem(
                        entry.clone(),
                        format!("pin {p} is not a BCM GPIO number (0..={MAX_BCM_PIN})"),
                    ),
                    Some(_) => {}
                }
                if chip.is_some() || line.is_some() {
                    problem(
                        entry.clone(),
                        "backend \"rppal\" takes `pin`, not `chip`/`line`".into(),
                    );
                }
            }
            Backend::Gpiocdev => {
                if chip.is_none() || line.is_none() {
                    problem(
                        entry.clone(),
                        "backend \"gpiocdev\" needs `chip` and `line`".into(),
                    );
                }
                if pin.is_some() {
                    problem(
                        entry.clone(),
                        "backend \"gpiocdev\" takes `chip` + `line`, not `pin`".into(),
                    );
                }
            }
            Backend::Sim => {}
        }
        if matches!(location, PinLocation::Bcm(_) | PinLocation::ChipLine(..)) {
            if let Some(first) = pins.get(&location) {
                problem(
                    entry.clone(),
                    format!("{location} is already used by {first}"),
                );
            } else {
                pins.insert(location, entry);
            }
        }
    }

    let sensor_names: HashSet<&str> = sensors.iter().map(|s| s.name.as_str()).collect();
    let output_names: HashSet<&str> = outputs.iter().map(|o| o.name.as_str()).collect();
    for (index, rule) in rules.iter().enumerate() {
        let entry = format!("rule {} ({} -> {})", index + 1, rule.when, rule.then);
        if !sensor_names.contains(rule.when.as_str()) {
            let hint = if output_names.contains(rule.when.as_str()) {
                " (it is an output)"
            } else {
                ""
            };
            problem(
                entry.clone(),
                format!("`when` names no [[sensor]] {:?}{hint}", rule.when),
            );
        }
        if !output_names.contains(rule.then.as_str()) {
            let hint = if sensor_names.contains(rule.then.as_str()) {
                " (it is a sensor)"
            } else {
                ""
            };
            problem(
                entry,
                format!("`then` names no [[output]] {:?}{hint}", rule.then),
            );
        }
    }
    problems
}

fn default_debounce() -> Duration {
    DEFAULT_DEBOUNCE
}

/// A humantime duration string ("50ms", "5s", "2m").
fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "invalid duration {text:?}: {e} (e.g. \"50ms\", \"5s\", \"2m\")"
        ))
    })
}

fn optional_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    duration(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Gpio {
        #[serde(default)]
        sensor: Vec<SensorConfig>,
        #[serde(default)]
        output: Vec<OutputConfig>,
        #[serde(default)]
        rule: Vec<RuleConfig>,
        #[serde(default)]
        control: ControlConfig,
    }

    fn parse(text: &str) -> Result<Gpio, toml::de::Error> {
        toml::from_str(text)
    }

    fn problems(text: &str) -> Vec<String> {
        let gpio = parse(text).unwrap();
        validate(&gpio.sensor, &gpio.output, &gpio.rule)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    const EXAMPLE: &str = r#"
        [[sensor]]
        name = "pir-hall"
        kind = "pir"
        backend = "rppal"
        pin = 17
        debounce = "50ms"
        hold = "5s"
        [[sensor]]
        name = "pir-yard"
        kind = "pir"
        backend = "gpiocdev"
        chip = "gpiochip4"
        line = 22
        active_low = true
        pull = "up"
        warmup = "30s"
        [[sensor]]
        name = "pir-sim"
        kind = "pir"
        backend = "sim"
        [[output]]
        name = "light-porch"
        backend = "rppal"
        pin = 27
        [[rule]]
        when = "pir-hall"
        then = "light-porch"
        for = "60s"
        [control]
        socket = "/tmp/x.sock"
    "#;

    #[test]
    fn the_documented_example_parses_and_validates() {
        let gpio = parse(EXAMPLE).unwrap();
        assert_eq!(gpio.sensor.len(), 3);
        let hall = &gpio.sensor[0];
        assert_eq!(hall.debounce, Duration::from_millis(50));
        assert_eq!(hall.hold, Duration::from_secs(5));
        assert_eq!(hall.effective_warmup(), DEFAULT_PIR_WARMUP);
        assert_eq!(hall.location(), PinLocation::Bcm(17));
        let yard = &gpio.sensor[1];
        assert_eq!(yard.pull, Pull::Up);
        assert!(yard.active_low);
        assert_eq!(yard.effective_warmup(), Duration::from_secs(30));
        assert_eq!(
            yard.location(),
            PinLocation::ChipLine(PathBuf::from("/dev/gpiochip4"), 22)
        );
        let sim = &gpio.sensor[2];
        assert_eq!(sim.debounce, DEFAULT_DEBOUNCE);
        assert_eq!(sim.effective_warmup(), Duration::ZERO);
        assert_eq!(gpio.rule[0].for_duration, Duration::from_secs(60));
        assert_eq!(gpio.control.socket, Some(PathBuf::from("/tmp/x.sock")));
        assert_eq!(validate(&gpio.sensor, &gpio.output, &gpio.rule), []);
    }

    #[test]
    fn unknown_keys_bad_values_and_bad_durations_are_errors() {
        let base = "[[sensor]]\nname = \"a\"\nkind = \"pir\"\nbackend = \"sim\"\n";
        for (extra, expect) in [
            ("colour = \"red\"\n", "unknown field `colour`"),
            ("debounce = \"fast\"\n", "invalid duration \"fast\""),
            ("pull = \"sideways\"\n", "unknown variant `sideways`"),
        ] {
            let err = parse(&format!("{base}{extra}")).unwrap_err().to_string();
            assert!(err.contains(expect), "{err}");
        }
        let err = parse("[[sensor]]\nname = \"a\"\nkind = \"radar\"\nbackend = \"sim\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant `radar`"), "{err}");
        let err = parse("[control]\npath = \"/x\"\n").unwrap_err().to_string();
        assert!(err.contains("unknown field `path`"), "{err}");
    }

    #[test]
    fn validate_reports_every_problem_by_name() {
        let found = problems(
            r#"
            [[sensor]]
            name = "a"
            kind = "pir"
            backend = "rppal"
            [[sensor]]
            name = "b"
            kind = "pir"
            backend = "gpiocdev"
            pin = 4
            chip = "gpiochip0"
            [[sensor]]
            name = "c"
            kind = "pir"
            backend = "rppal"
            pin = 17
            [[output]]
            name = "c"
            backend = "rppal"
            pin = 17
            [[output]]
            name = "d"
            backend = "rppal"
            pin = 99
            [[rule]]
            when = "nobody"
            then = "c"
            [[rule]]
            when = "d"
            then = "a"
        "#,
        );
        let expected = [
            "sensor \"a\": backend \"rppal\" needs `pin` (a BCM GPIO number)",
            "sensor \"b\": backend \"gpiocdev\" needs `chip` and `line`",
            "sensor \"b\": backend \"gpiocdev\" takes `chip` + `line`, not `pin`",
            "output \"c\": name already used by sensor \"c\"",
            "output \"c\": BCM GPIO 17 is already used by sensor \"c\"",
            "output \"d\": pin 99 is not a BCM GPIO number (0..=53)",
            "rule 1 (nobody -> c): `when` names no [[sensor]] \"nobody\"",
            "rule 2 (d -> a): `when` names no [[sensor]] \"d\" (it is an output)",
            "rule 2 (d -> a): `then` names no [[output]] \"a\" (it is a sensor)",
        ];
        assert_eq!(found, expected);
    }
}
