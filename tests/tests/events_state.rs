//! The running box's state upstream, end to end with real processes only: `edgenvr run` with a
//! sim PIR, `[state] listen` and `[mqtt] url` pointing at a real mosquitto started here; the PIR
//! driven by `edgenvr sim set`; the state read by the real `nvrctl watch` binary over TCP and
//! over MQTT (`--json` lines). Shows that `run` wires sensors, health, the state port and the
//! MQTT publisher to one bus. No camera: the state path needs no video.

use std::time::Duration;

use edgenvr_tests::edgenvr_box::{init_store, sim_set, spawn_run};
use edgenvr_tests::mosquitto::Broker;
use edgenvr_tests::watcher::Watcher;

/// Guards against a hang only.
const HANG_GUARD: Duration = Duration::from_secs(30);

#[test]
fn a_sim_pir_reaches_nvrctl_over_tcp_and_mqtt_from_the_running_box() {
    let work = tempfile::tempdir().unwrap();
    let broker = Broker::start().expect("mosquitto starts");
    let store = work.path().join("store");
    init_store(&store, &["--size", "1MiB", "--slots", "4"]).unwrap();
    let config = work.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[box]
name = "state-box"
[storage]
dir = "{store}"
endurance = "40TB"
[state]
listen = "127.0.0.1:0"
[mqtt]
url = "mqtt://127.0.0.1:{port}"
[control]
socket = "{socket}"
[[sensor]]
name = "pir-hall"
kind = "pir"
backend = "sim"
debounce = "50ms"
"#,
            store = store.display(),
            port = broker.port(),
            socket = work.path().join("control.sock").display(),
        ),
    )
    .unwrap();
    let mut edgenvr_box = spawn_run(&config).unwrap();
    let state_addr = edgenvr_box.wait_for_listener("state", HANG_GUARD).unwrap();
    edgenvr_box
        .wait_for_listener("control", HANG_GUARD)
        .unwrap();

    let tcp = Watcher::start(&["watch", &state_addr]);
    let mqtt_url = broker.url();
    let mqtt = Watcher::start(&["watch", "--mqtt", &mqtt_url]);
    // Both start from the snapshot: the PIR quiet, and the box's health sensors present.
    for watcher in [&tcp, &mqtt] {
        watcher.wait_for(HANG_GUARD, "pir-hall", serde_json::json!(false));
        watcher.wait_for(HANG_GUARD, "storage_endurance_used", serde_json::json!(0.0));
    }
    sim_set(&config, "pir-hall", "high").unwrap();
    tcp.wait_for(HANG_GUARD, "pir-hall", serde_json::json!(true));
    mqtt.wait_for(HANG_GUARD, "pir-hall", serde_json::json!(true));
    sim_set(&config, "pir-hall", "low").unwrap();
    tcp.wait_for(HANG_GUARD, "pir-hall", serde_json::json!(false));
    mqtt.wait_for(HANG_GUARD, "pir-hall", serde_json::json!(false));

    let exit = edgenvr_box.terminate(HANG_GUARD).unwrap();
    assert!(exit.success(), "edgenvr run exit: {exit:?}");
}
