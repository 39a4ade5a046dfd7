//! Home Assistant MQTT discovery (`[mqtt] home_assistant = true`): what the box publishes so
//! Home Assistant shows its sensors, outputs and health as entities of one device per box.
//!
//! Pure functions, no I/O: receives a registered sensor ([`SensorInfo`]) or a value; emits
//! topics and payloads that `publish::mqtt` sends. Per sensor:
//!
//! | catalog entry | Home Assistant entity |
//! | --- | --- |
//! | PIR (sensor, binary) | `binary_sensor`, device class `motion` |
//! | output (binary) | `switch` with a command topic (with `[mqtt] commands`; else a `binary_sensor`) |
//! | camera online / recording / event | `binary_sensor` (`connectivity`, `running`, none), diagnostic |
//! | camera status | `sensor`, text such as `offline: auth_failed`, diagnostic |
//! | frame rate, bit rate, health scalars | `sensor` with unit and `state_class: measurement` (temperatures `temperature`, bit rates `data_rate`, MB `data_size`) |
//! | storage status | `sensor`, device class `enum`, diagnostic |
//! | counters | `sensor`, `state_class: total_increasing`, diagnostic |
//!
//! Topics: the discovery config at `<prefix>/<component>/edgenvr_<box>/<object>/config`
//! (retained), the entity's state at `edgenvr/<box>/ha/<object>` (retained, a plain payload:
//! `ON`/`OFF`, a number, or words), commands at `edgenvr/<box>/output/<name>/set`, and
//! availability from the box's `edgenvr/<box>/status` (`online`, and `offline` as its last
//! will). `<object>` is the sensor's name with every character outside `[A-Za-z0-9_-]` made
//! `_`, as discovery topics require.

use edgenvr_proto::{split_camera_status, CameraReason, CameraRole, CameraState, Role, StoreState};
use serde_json::{json, Value as Json};

use super::mqtt::topic;
use crate::state::{SensorInfo, SensorKind, SensorValue};

/// A sensor or output name as a discovery object id.
pub fn object_id(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The device id every entity of the box names.
pub fn device_id(box_name: &str) -> String {
    format!("edgenvr_{}", object_id(box_name))
}

/// `edgenvr/<box>/ha/<object>`: where an entity's plain state goes.
pub fn state_topic(box_name: &str, sensor: &str) -> String {
    topic(box_name, &format!("ha/{}", object_id(sensor)))
}

/// `edgenvr/<box>/output/<name>/set`: where commands for an output arrive.
pub fn command_topic(box_name: &str, output: &str) -> String {
    topic(box_name, &format!("output/{output}/set"))
}

/// The output a command topic names, if `topic` is one of `box_name`'s.
pub fn output_of_command_topic<'t>(box_name: &str, topic: &'t str) -> Option<&'t str> {
    topic
        .strip_prefix("edgenvr/")?
        .strip_prefix(box_name)?
        .strip_prefix("/output/")?
        .strip_suffix("/set")
        .filter(|name| !name.is_empty() && !name.contains('/'))
}

/// What the discovery config of one entity says, with its topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Discovery {
    /// `<prefix>/<component>/<device>/<object>/config`.
    pub topic: String,
    /// The config JSON.
    pub payload: Json,
}

/// The discovery config of `info` on `box_name`, or `None` for a sensor Home Assistant gets no
/// entity for (complex values). `commands`: outputs take commands (a `switch`).
pub fn discovery(
    prefix: &str,
    box_name: &str,
    info: &SensorInfo,
    commands: bool,
) -> Option<Discovery> {
    let object = object_id(&info.name);
    let device = device_id(box_name);
    let mut config = json!({
        "name": info.name,
        "unique_id": format!("{device}_{object}"),
        "state_topic": state_topic(box_name, &info.name),
        "availability_topic": topic(box_name, "status"),
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": {
            "identifiers": [device],
            "name": box_name,
            "manufacturer": "edgenvr",
            "model": "edgenvr box",
            "sw_version": env!("CARGO_PKG_VERSION"),
        },
    });
    let diagnostic = !matches!(info.role, Role::Sensor | Role::Output);
    if diagnostic {
        config["entity_category"] = json!("diagnostic");
    }
    let component = match (&info.kind, info.role) {
        (SensorKind::Complex, _) => return None,
        (SensorKind::Binary, Role::Output) if commands => {
            config["command_topic"] = json!(command_topic(box_name, &info.name));
            config["payload_on"] = json!("ON");
            config["payload_off"] = json!("OFF");
            config["optimistic"] = json!(false);
            "switch"
        }
        (SensorKind::Binary, role) => {
            config["payload_on"] = json!("ON");
            config["payload_off"] = json!("OFF");
            let class = match role {
                Role::Sensor => Some("motion"),
                Role::Output => Some("power"),
                Role::Camera(CameraRole::Online) => Some("connectivity"),
                Role::Camera(CameraRole::Recording) => Some("running"),
                _ => None,
            };
            if let Some(class) = class {
                config["device_class"] = json!(class);
            }
            "binary_sensor"
        }
        (_, Role::StoreStatus) => {
            config["device_class"] = json!("enum");
            config["options"] = json!(STORE_STATES.map(StoreState::name));
            "sensor"
        }
        (_, Role::Camera(CameraRole::Status)) => "sensor",
        (SensorKind::Scalar { unit } | SensorKind::Unsigned { unit }, role) => {
            if !unit.is_empty() {
                config["unit_of_measurement"] = json!(unit);
            }
            let counter = role == Role::Counter;
            config["state_class"] = json!(if counter {
                "total_increasing"
            } else {
                "measurement"
            });
            let class = match unit.as_str() {
                "°C" => Some("temperature"),
                "kbit/s" => Some("data_rate"),
                "MB" => Some("data_size"),
                _ => None,
            };
            if let Some(class) = class {
                config["device_class"] = json!(class);
            }
            "sensor"
        }
    };
    Some(Discovery {
        topic: format!("{prefix}/{component}/{device}/{object}/config"),
        payload: config,
    })
}

const STORE_STATES: [StoreState; 5] = [
    StoreState::Ok,
    StoreState::Full,
    StoreState::Missing,
    StoreState::IoError,
    StoreState::ReadOnly,
];

/// The plain state payload of `value` for `info`'s entity.
pub fn state_payload(info: &SensorInfo, value: &SensorValue) -> Option<String> {
    Some(match (value, info.role) {
        (SensorValue::Binary(true), _) => "ON".to_owned(),
        (SensorValue::Binary(false), _) => "OFF".to_owned(),
        (SensorValue::Unsigned(code), Role::Camera(CameraRole::Status)) => {
            camera_status_text(*code)
        }
        (SensorValue::Unsigned(code), Role::StoreStatus) => StoreState::from_code(*code)
            .map_or_else(|| format!("state {code}"), |s| s.name().to_owned()),
        (SensorValue::Unsigned(number), _) => number.to_string(),
        // Home Assistant reads "unknown" for a sensor without a reading.
        (SensorValue::Scalar(reading), _) if reading.is_nan() => "unknown".to_owned(),
        (SensorValue::Scalar(reading), _) => reading.to_string(),
        (SensorValue::Complex(_), _) => return None,
    })
}

/// A camera status code in words: `online`, `offline: auth_failed`, `state 6: reason 9` for
/// codes of a later version.
pub fn camera_status_text(code: u64) -> String {
    let (state, reason) = split_camera_status(code);
    let state = CameraState::from_code(state)
        .map_or_else(|| format!("state {state}"), |s| s.name().to_owned());
    match CameraReason::from_code(reason) {
        Some(CameraReason::None) => state,
        Some(reason) => format!("{state}: {}", reason.name()),
        None => format!("{state}: reason {reason}"),
    }
}

/// A command payload: `ON`/`OFF` (what Home Assistant sends), or JSON
/// `{"state": "ON", "for": "30s"}`. Returns the action and the duration text, if any.
pub fn parse_command(payload: &[u8]) -> Result<(bool, Option<String>), String> {
    let text = std::str::from_utf8(payload).map_err(|_| "not UTF-8".to_string())?;
    let text = text.trim();
    let word = |w: &str| match w.to_ascii_lowercase().as_str() {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(format!("{other:?} is not ON or OFF")),
    };
    if !text.starts_with('{') {
        return word(text).map(|on| (on, None));
    }
    let json: Json = serde_json::from_str(text).map_err(|e| format!("bad JSON: {e}"))?;
    let state = json["state"].as_str().ok_or("JSON without a \"state\"")?;
    let duration = json.get("for").and_then(Json::as_str).map(str::to_owned);
    Ok((word(state)?, duration))
}

#[cfg(test)]
mod tests {
    use edgenvr_proto::{camera_status_code, SensorId};

    use super::*;

    fn info(name: &str, kind: SensorKind, role: Role) -> SensorInfo {
        SensorInfo {
            id: SensorId(0),
            name: name.into(),
            kind,
            role,
        }
    }

    #[test]
    fn a_pir_is_a_motion_binary_sensor_of_the_box_device() {
        let pir = info("pir-hall", SensorKind::Binary, Role::Sensor);
        let d = discovery("homeassistant", "garage", &pir, true).unwrap();
        assert_eq!(
            d.topic,
            "homeassistant/binary_sensor/edgenvr_garage/pir-hall/config"
        );
        assert_eq!(d.payload["device_class"], "motion");
        assert_eq!(d.payload["state_topic"], "edgenvr/garage/ha/pir-hall");
        assert_eq!(d.payload["availability_topic"], "edgenvr/garage/status");
        assert_eq!(d.payload["device"]["identifiers"][0], "edgenvr_garage");
        assert_eq!(d.payload["unique_id"], "edgenvr_garage_pir-hall");
        assert!(d.payload.get("entity_category").is_none());
    }

    #[test]
    fn outputs_are_switches_only_with_commands() {
        let light = info("light.porch", SensorKind::Binary, Role::Output);
        let switch = discovery("ha", "garage", &light, true).unwrap();
        assert_eq!(switch.topic, "ha/switch/edgenvr_garage/light_porch/config");
        assert_eq!(
            switch.payload["command_topic"],
            "edgenvr/garage/output/light.porch/set"
        );
        let read_only = discovery("ha", "garage", &light, false).unwrap();
        assert!(read_only.topic.starts_with("ha/binary_sensor/"));
        assert_eq!(
            output_of_command_topic("garage", "edgenvr/garage/output/light.porch/set"),
            Some("light.porch")
        );
        assert_eq!(
            output_of_command_topic("garage", "edgenvr/other/output/x/set"),
            None
        );
        assert_eq!(
            output_of_command_topic("garage", "edgenvr/garage/output/a/b/set"),
            None
        );
    }

    #[test]
    fn health_values_carry_units_and_classes() {
        let temp = info(
            "cpu_temp",
            SensorKind::Scalar { unit: "°C".into() },
            Role::Health,
        );
        let d = discovery("ha", "b", &temp, false).unwrap();
        assert_eq!(d.payload["unit_of_measurement"], "°C");
        assert_eq!(d.payload["device_class"], "temperature");
        assert_eq!(d.payload["state_class"], "measurement");
        assert_eq!(d.payload["entity_category"], "diagnostic");
        let dropped = info(
            "front_dropped",
            SensorKind::Unsigned {
                unit: "GOPs".into(),
            },
            Role::Counter,
        );
        assert_eq!(
            discovery("ha", "b", &dropped, false).unwrap().payload["state_class"],
            "total_increasing"
        );
        let store = info(
            "storage_status",
            SensorKind::Unsigned {
                unit: String::new(),
            },
            Role::StoreStatus,
        );
        let d = discovery("ha", "b", &store, false).unwrap();
        assert_eq!(d.payload["device_class"], "enum");
        assert_eq!(
            state_payload(&store, &SensorValue::Unsigned(4)).as_deref(),
            Some("read_only")
        );
        assert!(d.payload["options"]
            .as_array()
            .unwrap()
            .contains(&json!("read_only")));
    }

    #[test]
    fn states_are_plain_words_and_numbers() {
        let status = info(
            "front_status",
            SensorKind::Unsigned {
                unit: String::new(),
            },
            Role::Camera(CameraRole::Status),
        );
        let code = camera_status_code(CameraState::Offline, CameraReason::AuthFailed);
        assert_eq!(
            state_payload(&status, &SensorValue::Unsigned(code)).as_deref(),
            Some("offline: auth_failed")
        );
        assert_eq!(camera_status_text(0), "online");
        assert_eq!(camera_status_text(9 << 3 | 6), "state 6: reason 9");
        let pir = info("pir", SensorKind::Binary, Role::Sensor);
        assert_eq!(
            state_payload(&pir, &SensorValue::Binary(true)).as_deref(),
            Some("ON")
        );
        let fps = info(
            "front_fps",
            SensorKind::Scalar { unit: "fps".into() },
            Role::Camera(CameraRole::FrameRate),
        );
        assert_eq!(
            state_payload(&fps, &SensorValue::Scalar(25.0)).as_deref(),
            Some("25")
        );
    }

    #[test]
    fn commands_are_on_off_or_json() {
        assert_eq!(parse_command(b"ON"), Ok((true, None)));
        assert_eq!(parse_command(b" off\n"), Ok((false, None)));
        assert_eq!(
            parse_command(br#"{"state":"ON","for":"30s"}"#),
            Ok((true, Some("30s".into())))
        );
        assert!(parse_command(b"TOGGLE").is_err());
        assert!(parse_command(&[0xff, 0xfe]).is_err());
        assert!(parse_command(b"{\"for\":\"1s\"}").is_err());
    }
}
