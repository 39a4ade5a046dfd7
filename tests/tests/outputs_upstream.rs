//! Home Assistant discovery and switching outputs from upstream, with real processes only:
//! `edgenvr run` with a sim PIR, a sim light driven by a rule, a camera that is not there (its
//! status and health entities still exist), `[mqtt] home_assistant = true` on a real mosquitto
//! and `[http]`; Home Assistant's side played by `mosquitto_sub`/`mosquitto_pub`, the user's by
//! `nvrctl set` and `nvrctl watch`.

use std::time::Duration;

use edgenvr_tests::edgenvr_box::{sim_set, spawn_run, wait_for_level, BoxDir};
use edgenvr_tests::mosquitto::{publish, Broker, Subscriber};
use edgenvr_tests::nvrctl_cli::nvrctl;
use edgenvr_tests::watcher::Watcher;

/// Guards against a hang only.
const HANG_GUARD: Duration = Duration::from_secs(30);

const TOKEN: &str = "a-test-token-of-enough-length";

struct TestBox {
    dir: BoxDir,
    process: edgenvr_tests::process::Process,
    state: String,
    http: String,
}

fn start_box(broker: &Broker) -> TestBox {
    let dir = BoxDir::small(
        "garage",
        &format!(
            r#"
[[camera]]
name = "front"
url = "rtsp://127.0.0.1:1/nothing-listens-here"
[state]
listen = "127.0.0.1:0"
[mqtt]
url = "mqtt://127.0.0.1:{port}"
home_assistant = true
[http]
listen = "127.0.0.1:0"
token = "{TOKEN}"
[[sensor]]
name = "pir-hall"
kind = "pir"
backend = "sim"
debounce = "1ms"
[[output]]
name = "light"
backend = "sim"
[[rule]]
when = "pir-hall"
then = "light"
for = "0s"
"#,
            port = broker.port(),
        ),
    );
    let process = spawn_run(&dir.config).unwrap();
    let state = process.wait_for_listener("state", HANG_GUARD).unwrap();
    let http = process.wait_for_listener("http", HANG_GUARD).unwrap();
    process.wait_for_listener("control", HANG_GUARD).unwrap();
    TestBox {
        dir,
        process,
        state,
        http,
    }
}

/// `nvrctl set HTTP light STATE [--for D]`; returns stdout.
fn nvrctl_set(http: &str, args: &[&str]) -> String {
    let mut all = vec!["set", http, "light"];
    all.extend_from_slice(args);
    let output = nvrctl(&all, Some(TOKEN)).unwrap();
    assert!(
        output.status.success(),
        "nvrctl set {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn home_assistant_discovers_the_box_sees_a_pir_edge_and_switches_the_light() {
    let broker = Broker::start().expect("mosquitto starts");
    let the_box = start_box(&broker);
    the_box
        .process
        .wait_for_line("mqtt connected", HANG_GUARD)
        .unwrap();
    let states = Subscriber::start(broker.port(), &["edgenvr/garage/ha/#"], "%t %p").unwrap();
    // The camera that is not there reads as such, in words.
    states
        .wait_for(HANG_GUARD, |l| {
            l == "edgenvr/garage/ha/front_status offline: unreachable"
        })
        .unwrap();

    // Home Assistant subscribes after the box published: what it gets is retained.
    let discovery = Subscriber::start(broker.port(), &["homeassistant/#"], "%r %t %p").unwrap();
    let mut configs = std::collections::BTreeMap::new();
    let wanted = [
        "homeassistant/binary_sensor/edgenvr_garage/pir-hall/config",
        "homeassistant/switch/edgenvr_garage/light/config",
        "homeassistant/binary_sensor/edgenvr_garage/front_online/config",
        "homeassistant/binary_sensor/edgenvr_garage/front_recording/config",
        "homeassistant/sensor/edgenvr_garage/front_status/config",
        "homeassistant/sensor/edgenvr_garage/front_fps/config",
        "homeassistant/sensor/edgenvr_garage/storage_used/config",
        "homeassistant/sensor/edgenvr_garage/storage_status/config",
    ];
    while wanted.iter().any(|topic| !configs.contains_key(*topic)) {
        let line = discovery.wait_for(HANG_GUARD, |_| true).unwrap();
        let mut parts = line.splitn(3, ' ');
        let (retained, topic, payload) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default().to_owned(),
            parts.next().unwrap_or_default(),
        );
        assert_eq!(retained, "1", "discovery configs are retained: {line}");
        let json: serde_json::Value =
            serde_json::from_str(payload).unwrap_or_else(|e| panic!("{topic}: not JSON: {e}"));
        configs.insert(topic, json);
    }
    for (topic, config) in &configs {
        // What Home Assistant requires of every entity here, and what ties it to the device.
        assert!(config["name"].is_string(), "{topic}");
        assert!(config["unique_id"].is_string(), "{topic}");
        assert!(config["state_topic"].is_string(), "{topic}");
        assert_eq!(
            config["device"]["identifiers"][0], "edgenvr_garage",
            "{topic}"
        );
        assert_eq!(
            config["availability_topic"], "edgenvr/garage/status",
            "{topic}"
        );
    }
    let pir = &configs[wanted[0]];
    assert_eq!(pir["device_class"], "motion");
    let switch = &configs[wanted[1]];
    assert_eq!(switch["command_topic"], "edgenvr/garage/output/light/set");
    assert_eq!(configs[wanted[2]]["device_class"], "connectivity");
    assert_eq!(configs[wanted[5]]["unit_of_measurement"], "fps");
    assert_eq!(configs[wanted[6]]["unit_of_measurement"], "%");
    // Availability follows the last will: online now.
    let status = Subscriber::start(broker.port(), &["edgenvr/garage/status"], "%r %p").unwrap();
    status.wait_for(HANG_GUARD, |l| l == "1 online").unwrap();

    // A PIR edge reaches the entity's state topic.
    sim_set(&the_box.dir.config, "pir-hall", "high").unwrap();
    states
        .wait_for(HANG_GUARD, |l| l == "edgenvr/garage/ha/pir-hall ON")
        .unwrap();
    sim_set(&the_box.dir.config, "pir-hall", "low").unwrap();
    states
        .wait_for(HANG_GUARD, |l| l == "edgenvr/garage/ha/pir-hall OFF")
        .unwrap();

    // Home Assistant's switch: a command on the command topic switches the sim output.
    publish(broker.port(), "edgenvr/garage/output/light/set", "ON").unwrap();
    wait_for_level(&the_box.dir.config, "light", "high", HANG_GUARD).unwrap();
    states
        .wait_for(HANG_GUARD, |l| l == "edgenvr/garage/ha/light ON")
        .unwrap();
    publish(broker.port(), "edgenvr/garage/output/light/set", "OFF").unwrap();
    wait_for_level(&the_box.dir.config, "light", "low", HANG_GUARD).unwrap();

    // A clean shutdown says offline, as the last will would.
    let mut process = the_box.process;
    let exit = process.terminate(HANG_GUARD).unwrap();
    assert!(exit.success());
    // (Delivered live, so without the retained flag.)
    status
        .wait_for(HANG_GUARD, |l| l.ends_with(" offline"))
        .unwrap();
}

#[test]
fn nvrctl_set_switches_an_output_and_the_rule_timer_interacts_as_documented() {
    let broker = Broker::start().expect("mosquitto starts");
    let the_box = start_box(&broker);
    let watch = Watcher::start(&["watch", &the_box.state]);
    // The output is in the catalog and the stream, off at start.
    watch.wait_for(HANG_GUARD, "light", false.into());

    // `on` holds: the rule (whose sensor is quiet) does not switch it off.
    let said = nvrctl_set(&the_box.http, &["on"]);
    assert_eq!(said.trim(), "light is on");
    wait_for_level(&the_box.dir.config, "light", "high", HANG_GUARD).unwrap();
    watch.wait_for(HANG_GUARD, "light", true.into());
    sim_set(&the_box.dir.config, "pir-hall", "high").unwrap();
    sim_set(&the_box.dir.config, "pir-hall", "low").unwrap();
    watch.wait_for(HANG_GUARD, "pir-hall", false.into());
    assert_eq!(
        edgenvr_tests::edgenvr_box::sim_get(&the_box.dir.config, "light").unwrap(),
        "high"
    );

    // `off` switches off although the PIR is triggered, until it triggers anew.
    sim_set(&the_box.dir.config, "pir-hall", "high").unwrap();
    watch.wait_for(HANG_GUARD, "pir-hall", true.into());
    nvrctl_set(&the_box.http, &["off"]);
    wait_for_level(&the_box.dir.config, "light", "low", HANG_GUARD).unwrap();
    watch.wait_for(HANG_GUARD, "light", false.into());
    sim_set(&the_box.dir.config, "pir-hall", "low").unwrap();
    watch.wait_for(HANG_GUARD, "pir-hall", false.into());
    sim_set(&the_box.dir.config, "pir-hall", "high").unwrap();
    wait_for_level(&the_box.dir.config, "light", "high", HANG_GUARD).unwrap();
    sim_set(&the_box.dir.config, "pir-hall", "low").unwrap();
    wait_for_level(&the_box.dir.config, "light", "low", HANG_GUARD).unwrap();

    // `on --for`: on, and after the time the rule decides again (its sensor is quiet: off).
    let said = nvrctl_set(&the_box.http, &["on", "--for", "1s"]);
    assert!(said.starts_with("light is on until 20"), "{said}");
    wait_for_level(&the_box.dir.config, "light", "high", HANG_GUARD).unwrap();
    wait_for_level(&the_box.dir.config, "light", "low", HANG_GUARD).unwrap();

    // A name the box does not have is refused with the box's reason.
    let refused = nvrctl(&["set", &the_box.http, "siren", "on"], Some(TOKEN)).unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("404"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    // And without the token nothing is switched.
    let wrong = ["--token", "wrong-token-wrong-token"];
    let unauthorised = nvrctl(
        &["set", &the_box.http, "light", "on", wrong[0], wrong[1]],
        None,
    )
    .unwrap();
    assert!(!unauthorised.status.success());
    assert_eq!(
        edgenvr_tests::edgenvr_box::sim_get(&the_box.dir.config, "light").unwrap(),
        "low"
    );
}
