//! The box's TOML config: the types every section deserialises into, static validation, and the
//! report `edgenvr check-config` prints.
//!
//! Receives the text of a config file; emits a [`Config`] or every [`Problem`] found, each named
//! by file, line and key. Validation is static: syntax, types, unknown keys (every section is
//! `deny_unknown_fields`), value ranges and references between sections (camera triggers must
//! name sensors, names must be unique). It never touches the store or the pins. Reading the file
//! is the only I/O ([`load`]).
//!
//! Extending: a new section is a field of [`Config`] with `#[serde(default)]` (or required) and,
//! when it has rules of its own, a `check_*` function called from [`Config::problems`].

pub mod camera_source;
pub mod gpio;
pub mod sensor_names;
mod units;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use units::{parse_size, ByteSize, HumanDuration, Percent};

use camera_source::{CameraSource, Transport};
use gpio::{ControlConfig, OutputConfig, RuleConfig, SensorConfig};

/// Where `run` and `check-config` look without `--config`.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/edgenvr/config.toml";

/// The whole config file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[box]`: the box itself.
    #[serde(rename = "box", default)]
    pub box_: BoxConfig,
    /// `[storage]`: where recordings go.
    pub storage: StorageConfig,
    /// `[[camera]]`: the cameras to record.
    #[serde(default)]
    pub camera: Vec<CameraConfig>,
    /// `[[sensor]]`: PIR inputs on GPIO (or simulated).
    #[serde(default)]
    pub sensor: Vec<SensorConfig>,
    /// `[[output]]`: lights, relays.
    #[serde(default)]
    pub output: Vec<OutputConfig>,
    /// `[[rule]]`: outputs following sensors.
    #[serde(default)]
    pub rule: Vec<RuleConfig>,
    /// `[control]`: the local control socket (`edgenvr sim`).
    #[serde(default)]
    pub control: ControlConfig,
    /// `[state]`: the TCP state port.
    #[serde(default)]
    pub state: StateConfig,
    /// `[[report]]`: report-by-exception overrides for the box's scalar sensors.
    #[serde(default)]
    pub report: Vec<ReportConfig>,
    /// `[mqtt]`: the broker the state is published to; none when absent.
    pub mqtt: Option<MqttSection>,
    /// `[http]`: the clip and recordings API; off when absent.
    #[serde(default)]
    pub http: Option<HttpConfig>,
}

/// `[mqtt]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSection {
    /// `mqtt://host[:port]`.
    pub url: String,
    /// Broker login.
    pub username: Option<String>,
    /// A file holding the broker password (kept out of the config, which is often world-readable).
    pub password_file: Option<PathBuf>,
    /// Home Assistant MQTT discovery: entity configs, plain per-entity state topics and the
    /// outputs' command topics (implies `commands`).
    #[serde(default)]
    pub home_assistant: bool,
    /// The topic prefix Home Assistant watches for discovery configs.
    #[serde(default = "default_discovery_prefix")]
    pub discovery_prefix: String,
    /// Accept output commands on `edgenvr/<box>/output/<name>/set`; the broker's ACLs decide
    /// who may publish there.
    #[serde(default)]
    pub commands: bool,
}

fn default_discovery_prefix() -> String {
    // Home Assistant's default.
    "homeassistant".to_owned()
}

/// The MQTT port when a URL has none.
pub const DEFAULT_MQTT_PORT: u16 = 1883;

/// The broker's host and port from an `mqtt://host[:port]` (or `tcp://`) URL, or what is wrong
/// with it.
pub fn broker_address(url: &str) -> Result<(String, u16), String> {
    let parsed = url::Url::parse(url).map_err(|error| error.to_string())?;
    if !matches!(parsed.scheme(), "mqtt" | "tcp") {
        return Err("the scheme must be mqtt:// or tcp:// (TLS is not supported)".into());
    }
    let host = parsed.host_str().ok_or("no host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok((host.to_string(), parsed.port().unwrap_or(DEFAULT_MQTT_PORT)))
}

/// `[state]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// `host:port` of the TCP state port (e.g. "0.0.0.0:7420"); no state port when absent.
    pub listen: Option<String>,
}

/// `[[report]]`: how one scalar sensor of the box (`storage_used`, `front_fps`, ...) is
/// reported upstream; keys left out keep the sensor's default.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {
    /// The sensor's name as the catalog shows it.
    pub sensor: String,
    /// Changes smaller than this (in the sensor's unit) are not reported.
    pub deadband: Option<f32>,
    /// Least time between two reports.
    pub min_interval: Option<HumanDuration>,
    /// Most time between two reports (a heartbeat of the value).
    pub max_interval: Option<HumanDuration>,
}

/// `[http]`: where the HTTP API listens and the token every request must carry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address and port, e.g. `0.0.0.0:7421` (port 0 picks a free one; the log says which).
    pub listen: std::net::SocketAddr,
    /// The token itself (prefer `token_file`: a config file is often world-readable).
    #[serde(default)]
    pub token: Option<String>,
    /// A file holding the token (surrounding whitespace ignored). With neither key, a token is
    /// generated at first start into `http-token` in the store directory (mode 0600).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Serve the browser page (`/`, `/login`) next to the API; on unless `ui = false`.
    #[serde(default = "default_http_ui")]
    pub ui: bool,
}

/// The page is on by default: it shows only what the API already serves behind the same
/// token, and an `[http]` section is already an opt-in to serving recordings.
fn default_http_ui() -> bool {
    true
}

/// Shortest token accepted from the config: 16 characters are ~95 bits as random base64 and
/// still short enough to type; anything shorter is guessable over a LAN.
pub const MIN_HTTP_TOKEN_CHARS: usize = 16;

/// `[box]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoxConfig {
    /// The box's name, shown upstream.
    #[serde(default = "default_box_name")]
    pub name: String,
}

impl Default for BoxConfig {
    fn default() -> Self {
        Self {
            name: default_box_name(),
        }
    }
}

fn default_box_name() -> String {
    "edgenvr".to_owned()
}

/// `[storage]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// The store directory (initialised with `edgenvr store init`).
    pub dir: PathBuf,
    /// Longest segment of a continuous camera: a segment ends after this long even when its
    /// slot has room. `None` (the default): each segment fills its slot, so the store holds as
    /// much video as its bytes allow at any bit rate.
    pub segment: Option<HumanDuration>,
    /// How often written video is synced: the most a power cut can lose.
    #[serde(default = "default_sync_interval")]
    pub sync_interval: HumanDuration,
    /// The card's rated write endurance (e.g. "40TB" for a 32 GB high-endurance card's TBW);
    /// when set, the box reports the share of it used so far.
    pub endurance: Option<ByteSize>,
    /// The newest event segments, as a share of the slots, that the ring never wraps over
    /// while it has other video to wrap over (see design/storage.md, "Wrap order").
    #[serde(default = "default_event_share")]
    pub event_share: Percent,
}

fn default_event_share() -> Percent {
    // A quarter: events are what a user comes back for, and the other three quarters still
    // hold hours of continuous video on a typical card.
    Percent(25)
}

fn default_sync_interval() -> HumanDuration {
    // Two seconds: a power cut loses at most ~2 s plus the GOP in flight; syncing more often
    // multiplies flushes on the card for little gain.
    HumanDuration::from_secs(2)
}

/// What a camera records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordModeConfig {
    /// Every GOP, wrapping around in the ring.
    #[default]
    Continuous,
    /// Only around events from `triggers`, with `pre_roll` kept in RAM.
    Events,
}

/// `[[camera]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// The camera's name: the store's key and the log field.
    pub name: String,
    /// `rtsp://[user[:password]@]host[:port]/path`.
    pub url: String,
    /// `tcp` (default) or `udp`.
    #[serde(default)]
    pub transport: Transport,
    /// `continuous` (default) or `events`.
    #[serde(default)]
    pub mode: RecordModeConfig,
    /// Video kept before an event starts (events mode).
    #[serde(default = "default_pre_roll")]
    pub pre_roll: HumanDuration,
    /// Video kept after an event ends (events mode).
    #[serde(default = "default_post_roll")]
    pub post_roll: HumanDuration,
    /// Sensor names whose events start a recording (events mode).
    #[serde(default)]
    pub triggers: Vec<String>,
}

fn default_pre_roll() -> HumanDuration {
    // Five seconds: a PIR fires as someone enters the field of view; five seconds shows the
    // approach and costs ~2.5 MB of RAM at 4 Mbit/s.
    HumanDuration::from_secs(5)
}

fn default_post_roll() -> HumanDuration {
    // Ten seconds after the last trigger: covers someone standing still (a PIR stops firing).
    HumanDuration::from_secs(10)
}

/// One thing wrong with a config, located as precisely as the check allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The key path, e.g. `camera[1].url` (empty for syntax errors).
    pub key: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// A config that could not be used: every problem found, with the file they are in.
#[derive(Clone, Debug, thiserror::Error)]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// Everything wrong with it (at least one).
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", self.path.display())?;
            if let Some(line) = problem.line {
                write!(f, ":{line}")?;
            }
            write!(f, ": ")?;
            if !problem.key.is_empty() {
                write!(f, "{}: ", problem.key)?;
            }
            write!(f, "{}", problem.message)?;
        }
        Ok(())
    }
}

/// Reads and checks the config at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        path: path.to_owned(),
        problems: vec![Problem {
            key: String::new(),
            line: None,
            message: format!("cannot read the config file: {e}"),
        }],
    })?;
    parse(&text).map_err(|problems| ConfigError {
        path: path.to_owned(),
        problems,
    })
}

/// Parses and checks config text.
pub fn parse(text: &str) -> Result<Config, Vec<Problem>> {
    let config: Config = toml::from_str(text).map_err(|e| {
        vec![Problem {
            key: String::new(),
            line: e.span().map(|span| line_of(text, span.start)),
            message: syntax_message(&e, text),
        }]
    })?;
    let mut problems = config.problems();
    if problems.is_empty() {
        return Ok(config);
    }
    // Locate each problem by its key in the document (a parse that just succeeded cannot fail).
    if let Ok(doc) = toml_edit::ImDocument::parse(text) {
        for problem in &mut problems {
            problem.line =
                span_of_key(doc.as_item(), &problem.key).map(|start| line_of(text, start));
        }
    }
    Err(problems)
}

/// What a TOML error says. toml leaves the message empty for some characters its lexer refuses
/// (a NUL byte in a comment, found by fuzzing): then the character at the error is named.
fn syntax_message(error: &toml::de::Error, text: &str) -> String {
    let message = error.message().trim();
    if !message.is_empty() {
        return message.to_owned();
    }
    let character = error
        .span()
        .and_then(|span| text.get(span.start..))
        .and_then(|rest| rest.chars().next());
    match character {
        Some(c) => format!("{c:?} is not allowed here (not valid TOML)"),
        None => "not valid TOML".to_owned(),
    }
}

impl Config {
    /// Every rule beyond types that this config breaks; empty when it is usable.
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        self.check_storage(&mut problems);
        self.check_cameras(&mut problems);
        self.check_gpio(&mut problems);
        self.check_state(&mut problems);
        self.check_http(&mut problems);
        problems
    }

    fn check_http(&self, problems: &mut Vec<Problem>) {
        let Some(http) = &self.http else {
            return;
        };
        if http.token.is_some() && http.token_file.is_some() {
            problems.push(problem(
                "http.token",
                "give either token or token_file, not both".into(),
            ));
        }
        if let Some(token) = &http.token {
            let token = token.trim();
            if token.chars().count() < MIN_HTTP_TOKEN_CHARS {
                problems.push(problem(
                    "http.token",
                    format!("must be at least {MIN_HTTP_TOKEN_CHARS} characters"),
                ));
            } else if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                problems.push(problem(
                    "http.token",
                    "must not contain spaces or control characters".into(),
                ));
            }
        }
        if http
            .token_file
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            problems.push(problem("http.token_file", "must not be empty".into()));
        }
    }

    /// The names that camera `triggers` may refer to: the `[[sensor]]` names.
    pub fn trigger_names(&self) -> Vec<&str> {
        self.sensor.iter().map(|s| s.name.as_str()).collect()
    }

    fn check_gpio(&self, problems: &mut Vec<Problem>) {
        for found in gpio::validate(&self.sensor, &self.output, &self.rule) {
            // The GPIO check names entries (`sensor "pir"`); locate them by their section.
            let key = if found.entry.starts_with("sensor") {
                "sensor"
            } else if found.entry.starts_with("output") {
                "output"
            } else if found.entry.starts_with("rule") {
                "rule"
            } else {
                ""
            };
            problems.push(problem(key, found.to_string()));
        }
    }

    fn check_state(&self, problems: &mut Vec<Problem>) {
        if let Some(listen) = &self.state.listen {
            if listen.parse::<std::net::SocketAddr>().is_err() && !looks_like_host_port(listen) {
                problems.push(problem(
                    "state.listen",
                    format!("{listen:?} is not host:port (e.g. \"0.0.0.0:7420\")"),
                ));
            }
        }
        if let Some(endurance) = self.storage.endurance {
            if endurance.0 == 0 {
                problems.push(problem(
                    "storage.endurance",
                    "must be more than zero (the card's rated bytes written, e.g. \"40TB\")".into(),
                ));
            }
        }
        if let Some(mqtt) = &self.mqtt {
            if let Err(reason) = broker_address(&mqtt.url) {
                problems.push(problem(
                    "mqtt.url",
                    format!("bad MQTT URL {:?}: {reason}", mqtt.url),
                ));
            }
            if mqtt.discovery_prefix.is_empty()
                || mqtt
                    .discovery_prefix
                    .contains(|c: char| matches!(c, '+' | '#') || c.is_whitespace())
            {
                problems.push(problem(
                    "mqtt.discovery_prefix",
                    "must be a non-empty topic without spaces, + or #".into(),
                ));
            }
            if mqtt.password_file.is_some() && mqtt.username.is_none() {
                problems.push(problem(
                    "mqtt.password_file",
                    "needs `username` as well".into(),
                ));
            }
        }
        let scalars = sensor_names::scalar_names(self.camera.iter().map(|c| c.name.as_str()));
        for (i, report) in self.report.iter().enumerate() {
            if !scalars.contains(&report.sensor) {
                problems.push(problem(
                    &format!("report[{i}].sensor"),
                    format!(
                        "{:?} is not a scalar sensor of this box (one of: {})",
                        report.sensor,
                        scalars.join(", ")
                    ),
                ));
            }
            if report
                .deadband
                .is_some_and(|d| !(d.is_finite() && d >= 0.0))
            {
                problems.push(problem(
                    &format!("report[{i}].deadband"),
                    "must be a number of at least zero".into(),
                ));
            }
            if let (Some(min), Some(max)) = (report.min_interval, report.max_interval) {
                if max.0 < min.0 {
                    problems.push(problem(
                        &format!("report[{i}].max_interval"),
                        "must not be shorter than min_interval".into(),
                    ));
                }
            }
        }
    }

    fn check_storage(&self, problems: &mut Vec<Problem>) {
        // A segment must hold at least one GOP (cameras send one every 1–4 s); a cap longer
        // than ten minutes is no cap (a slot fills sooner at any useful bit rate).
        if let Some(segment) = self.storage.segment {
            if segment.0 < std::time::Duration::from_secs(1)
                || segment.0 > std::time::Duration::from_secs(600)
            {
                problems.push(problem(
                    "storage.segment",
                    format!("{segment} is out of range (1s to 10m)"),
                ));
            }
        }
        if self.storage.sync_interval.0.is_zero() {
            problems.push(problem(
                "storage.sync_interval",
                "must be more than zero (it bounds the video a power cut loses)".into(),
            ));
        }
        if self.storage.dir.as_os_str().is_empty() {
            problems.push(problem("storage.dir", "must not be empty".into()));
        }
    }

    fn check_cameras(&self, problems: &mut Vec<Problem>) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let triggers_known = self.trigger_names();
        for (i, camera) in self.camera.iter().enumerate() {
            let at = |key: &str| format!("camera[{i}].{key}");
            if let Err(why) = check_name(&camera.name) {
                problems.push(problem(&at("name"), why));
            } else if let Some(first) = seen.insert(&camera.name, i) {
                seen.insert(&camera.name, first);
                problems.push(problem(
                    &at("name"),
                    format!("{:?} is already the name of camera[{first}]", camera.name),
                ));
            }
            if let Err(e) = CameraSource::new(&camera.name, &camera.url, None, camera.transport) {
                problems.push(problem(&at("url"), e.to_string()));
            }
            for (t, trigger) in camera.triggers.iter().enumerate() {
                if !triggers_known.contains(&trigger.as_str()) {
                    problems.push(problem(
                        &format!("camera[{i}].triggers[{t}]"),
                        format!("{trigger:?} is not the name of a [[sensor]]"),
                    ));
                }
            }
            if camera.mode == RecordModeConfig::Events && camera.triggers.is_empty() {
                problems.push(problem(
                    &at("triggers"),
                    "mode = \"events\" needs at least one trigger".into(),
                ));
            }
        }
    }
}

/// `name:port` with a port number (a host name the resolver will look up at run time).
fn looks_like_host_port(listen: &str) -> bool {
    listen
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

/// Checks a camera (or sensor, output) name: names become store keys and log fields, so they stay
/// short and plain.
pub fn check_name(name: &str) -> Result<(), String> {
    // 32 characters: readable in a listing; the store and the wire format carry names often.
    const MAX_NAME_CHARS: usize = 32;
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!(
            "{name:?} is longer than {MAX_NAME_CHARS} characters"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        || name.starts_with('.')
    {
        return Err(format!(
            "{name:?} may use only letters, digits, '-', '_' and '.' (not first)"
        ));
    }
    Ok(())
}

fn problem(key: &str, message: String) -> Problem {
    Problem {
        key: key.to_owned(),
        line: None,
        message,
    }
}

/// 1-based line of byte offset `at`.
fn line_of(text: &str, at: usize) -> usize {
    text.get(..at)
        .map_or(0, |before| before.matches('\n').count())
        + 1
}

/// The byte offset where `key` (`a.b[2].c`) is defined, or its nearest existing parent.
fn span_of_key(root: &toml_edit::Item, key: &str) -> Option<usize> {
    let mut item = root;
    let mut best = None;
    for part in key.split('.') {
        let (name, indexes) = match part.split_once('[') {
            Some((name, rest)) => (name, Some(rest)),
            None => (part, None),
        };
        item = item.get(name)?;
        best = item.span().map(|s| s.start).or(best);
        for index in indexes.into_iter().flat_map(|rest| rest.split('[')) {
            let n: usize = index.trim_end_matches(']').parse().ok()?;
            item = item.get(n)?;
            best = item.span().map(|s| s.start).or(best);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    /// Fuzzing (`fuzz/corpus/config/regress-nul-in-comment`): a NUL byte in a comment made toml
    /// fail with an empty message, and `check-config` printed `FILE:1: ` and nothing else.
    #[test]
    fn nul_in_a_comment_is_named_not_reported_empty() {
        let problems = super::parse("# a comment\0\n[storage]\ndir = \"/x\"\n").unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, Some(1));
        assert_eq!(
            problems[0].message,
            "'\\0' is not allowed here (not valid TOML)"
        );
    }

    use super::*;

    const GOOD: &str = r#"
[box]
name = "garage"

[storage]
dir = "/mnt/usb/edgenvr"
segment = "10s"
sync_interval = "2s"

[[camera]]
name = "front"
url = "rtsp://user:pass@cam-front.lan/stream1"
transport = "tcp"
mode = "continuous"

[[camera]]
name = "back"
url = "rtsp://cam-back.lan/stream1"
transport = "udp"
"#;

    #[test]
    fn broker_urls() {
        assert_eq!(
            broker_address("mqtt://broker").unwrap(),
            ("broker".to_string(), 1883)
        );
        assert_eq!(
            broker_address("tcp://10.0.0.5:1884").unwrap(),
            ("10.0.0.5".to_string(), 1884)
        );
        assert_eq!(
            broker_address("mqtt://[::1]:1885").unwrap(),
            ("::1".to_string(), 1885)
        );
        assert!(broker_address("mqtts://broker").is_err());
        assert!(broker_address("broker:1883").is_err());
    }

    #[test]
    fn mqtt_home_assistant_keys() {
        let text = format!(
            "{GOOD}\n[mqtt]\nurl = \"mqtt://b\"\nhome_assistant = true\ndiscovery_prefix = \"ha\"\n"
        );
        let mqtt = parse(&text).unwrap().mqtt.unwrap();
        assert!(mqtt.home_assistant && !mqtt.commands);
        assert_eq!(mqtt.discovery_prefix, "ha");
        let defaults = parse(&format!("{GOOD}\n[mqtt]\nurl = \"mqtt://b\"\n"))
            .unwrap()
            .mqtt
            .unwrap();
        assert!(!defaults.home_assistant && !defaults.commands);
        assert_eq!(defaults.discovery_prefix, "homeassistant");
        let bad = parse(&format!(
            "{GOOD}\n[mqtt]\nurl = \"mqtt://b\"\ndiscovery_prefix = \"home/#\"\n"
        ))
        .unwrap_err();
        assert_eq!(bad[0].key, "mqtt.discovery_prefix");
    }

    #[test]
    fn the_event_share_is_a_percentage_and_a_segment_cap_is_optional() {
        let minimal = "[storage]\ndir = \"/srv/store\"\n";
        let config = parse(minimal).unwrap();
        assert_eq!(config.storage.segment, None);
        assert_eq!(config.storage.event_share, Percent(25));
        let half = parse(&format!("{minimal}event_share = \"50%\"\n")).unwrap();
        assert_eq!(half.storage.event_share, Percent(50));
        for (bad, why) in [
            ("\"150%\"", "more than 100%"),
            ("\"25\"", "invalid percentage"),
            ("\"a lot\"", "invalid percentage"),
            ("25", "a percentage such as"),
        ] {
            let problems = parse(&format!("{minimal}event_share = {bad}\n")).unwrap_err();
            assert_eq!(problems[0].line, Some(3), "{bad}: {problems:?}");
            assert!(problems[0].message.contains(why), "{bad}: {problems:?}");
        }
    }

    #[test]
    fn the_reference_config_parses() {
        let config = parse(GOOD).unwrap();
        assert_eq!(config.box_.name, "garage");
        assert_eq!(config.storage.segment, Some(HumanDuration::from_secs(10)));
        assert_eq!(config.storage.event_share, Percent(25));
        assert_eq!(config.camera.len(), 2);
        assert_eq!(config.camera[1].transport, Transport::Udp);
        assert_eq!(config.camera[1].mode, RecordModeConfig::Continuous);
        assert_eq!(config.camera[1].pre_roll, HumanDuration::from_secs(5));
    }

    #[test]
    fn the_example_file_parses() {
        let text = include_str!("../../../../examples/config.toml");
        let config = parse(text).unwrap();
        assert!(!config.camera.is_empty());
    }

    #[test]
    fn unknown_keys_are_errors_with_a_line() {
        let text = GOOD.replace("transport = \"udp\"", "transport = \"udp\"\nfps = 25");
        let problems = parse(&text).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].message.contains("unknown field `fps`"),
            "{problems:?}"
        );
        assert_eq!(problems[0].line, Some(20));
    }

    #[test]
    fn bad_types_and_values_are_named() {
        let problems = parse(&GOOD.replace("\"10s\"", "\"ten\"")).unwrap_err();
        assert!(
            problems[0].message.contains("invalid duration"),
            "{problems:?}"
        );
        assert_eq!(problems[0].line, Some(7));
        let problems = parse(&GOOD.replace("\"udp\"", "\"sctp\"")).unwrap_err();
        assert!(problems[0].message.contains("sctp"), "{problems:?}");
    }

    #[test]
    fn semantic_problems_name_key_and_line() {
        let text = GOOD
            .replace("name = \"back\"", "name = \"front\"")
            .replace("rtsp://cam-back.lan", "http://u:secret@cam-back.lan")
            .replace(
                "mode = \"continuous\"",
                "mode = \"events\"\ntriggers = [\"pir\"]",
            );
        let err = ConfigError {
            path: "c.toml".into(),
            problems: parse(&text).unwrap_err(),
        };
        let shown = err.to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.len(), 3, "{shown}");
        assert_eq!(
            lines[0],
            "c.toml:15: camera[0].triggers[0]: \"pir\" is not the name of a [[sensor]]"
        );
        assert_eq!(
            lines[1],
            "c.toml:18: camera[1].name: \"front\" is already the name of camera[0]"
        );
        assert!(
            lines[2].starts_with("c.toml:19: camera[1].url: "),
            "{shown}"
        );
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[test]
    fn storage_is_required_and_checked() {
        let problems = parse("[[camera]]\nname = \"a\"\nurl = \"rtsp://x/y\"\n").unwrap_err();
        assert!(
            problems[0].message.contains("missing field `storage`"),
            "{problems:?}"
        );
        let problems = parse(&GOOD.replace("\"10s\"", "\"0s\"")).unwrap_err();
        assert_eq!(problems[0].key, "storage.segment");
        assert_eq!(problems[0].line, Some(7));
    }

    const BOX: &str = r#"
[storage]
dir = "/mnt/usb/edgenvr"
endurance = "40TB"

[state]
listen = "0.0.0.0:7420"

[mqtt]
url = "mqtt://broker.lan:1883"
username = "garage"
password_file = "/etc/edgenvr/mqtt.pass"

[[sensor]]
name = "pir-hall"
kind = "pir"
backend = "sim"

[[output]]
name = "light"
backend = "sim"

[[rule]]
when = "pir-hall"
then = "light"
for = "60s"

[[camera]]
name = "hall"
url = "rtsp://cam-hall.lan/stream1"
mode = "events"
pre_roll = "2s"
post_roll = "20s"
triggers = ["pir-hall"]

[[report]]
sensor = "hall_fps"
deadband = 2.0
min_interval = "10s"
"#;

    #[test]
    fn the_whole_box_parses_and_triggers_resolve() {
        let config = parse(BOX).unwrap();
        assert_eq!(config.sensor.len(), 1);
        assert_eq!(config.camera[0].triggers, ["pir-hall"]);
        assert_eq!(config.state.listen.as_deref(), Some("0.0.0.0:7420"));
        assert_eq!(config.storage.endurance, Some(ByteSize(40_000_000_000_000)));
        assert_eq!(config.report[0].deadband, Some(2.0));
        assert!(config.mqtt.is_some());
    }

    #[test]
    fn box_sections_are_checked() {
        let text = BOX
            .replace("\"0.0.0.0:7420\"", "\"port 7420\"")
            .replace("then = \"light\"", "then = \"lamp\"")
            .replace("sensor = \"hall_fps\"", "sensor = \"hall_fsp\"")
            .replace("mqtt://broker", "http://broker")
            .replace("triggers = [\"pir-hall\"]", "triggers = [\"pir-hal\"]");
        let problems = parse(&text).unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "camera[0].triggers[0]",
                "rule",
                "state.listen",
                "mqtt.url",
                "report[0].sensor"
            ],
            "{problems:?}"
        );
        assert!(problems.iter().all(|p| p.line.is_some()), "{problems:?}");
        assert!(problems[1].message.contains("lamp"), "{problems:?}");
    }

    #[test]
    fn http_section_is_optional_and_checked() {
        assert!(parse(GOOD).unwrap().http.is_none());
        let with_http = format!("{GOOD}\n[http]\nlisten = \"127.0.0.1:7421\"\n");
        let http = parse(&with_http).unwrap().http.unwrap();
        assert_eq!(http.listen.port(), 7421);
        assert!(http.token.is_none() && http.token_file.is_none());
        assert!(http.ui, "the page is on by default");
        let without_ui = format!("{with_http}ui = false\n");
        assert!(!parse(&without_ui).unwrap().http.unwrap().ui);

        let both = format!(
            "{GOOD}\n[http]\nlisten = \"0.0.0.0:7421\"\ntoken = \"0123456789abcdef\"\n\
             token_file = \"/etc/edgenvr/token\"\n"
        );
        let problems = parse(&both).unwrap_err();
        assert_eq!(problems[0].key, "http.token");
        assert!(problems[0].message.contains("not both"), "{problems:?}");

        let short = format!("{GOOD}\n[http]\nlisten = \"0.0.0.0:7421\"\ntoken = \"abc\"\n");
        let problems = parse(&short).unwrap_err();
        assert!(problems[0].message.contains("at least 16"), "{problems:?}");
        assert_eq!(problems[0].line, Some(23));

        let bad_addr = format!("{GOOD}\n[http]\nlisten = \"localhost\"\n");
        assert!(parse(&bad_addr).is_err());
    }

    #[test]
    fn names_are_plain() {
        assert!(check_name("front-door_2").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("../etc").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name(&"x".repeat(33)).is_err());
    }
}
