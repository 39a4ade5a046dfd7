//! The MQTT publisher against a real mosquitto broker started by the test, watched with
//! `nvrctl watch --mqtt`'s code.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use edgenvr::publish::mqtt::{run, MqttConfig};
use edgenvr::state::{SensorSpec, SensorValue, StateBus};
use edgenvr_proto::Role;
use edgenvr_tests::line_sink::{next_line_matching, LineSink};
use edgenvr_tests::mosquitto::Broker;
use nvrctl::mqtt_watch::watch_mqtt;
use nvrctl::watch::WatchOutput;
use tokio::sync::{mpsc, oneshot};

/// A safety net so a broken build fails instead of hanging CI; never a timing assertion.
const GIVE_UP: Duration = Duration::from_secs(30);

fn start_watcher(url: String) -> (mpsc::UnboundedReceiver<String>, Arc<AtomicBool>) {
    let (lines_tx, lines) = mpsc::unbounded_channel();
    let closed = Arc::new(AtomicBool::new(false));
    let mut sink = LineSink::new(lines_tx, closed.clone());
    // Detached: it ends on the broken pipe after `closed` is set, or with the test process.
    std::thread::spawn(move || {
        watch_mqtt(&url, WatchOutput::JsonLines, &mut sink, &mut io::sink())
    });
    (lines, closed)
}

#[tokio::test]
async fn a_pir_change_reaches_an_mqtt_subscriber_and_late_subscribers_see_current_state() {
    let broker = Broker::start().expect("mosquitto starts");
    let bus = StateBus::new();
    let pir = bus
        .register(SensorSpec::binary("front_door_pir", Role::Sensor))
        .unwrap();
    bus.set_now(pir, SensorValue::Binary(false)).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let publisher = tokio::spawn(run(
        bus.clone(),
        MqttConfig::new(broker.url(), "garage"),
        None,
        async {
            let _ = stopped.await;
        },
    ));

    let (mut lines, closed) = start_watcher(broker.url());
    let is_pir = |json: &serde_json::Value, event: &str, value: bool| {
        json["event"] == event
            && json["box"] == "garage"
            && json["sensor"] == "front_door_pir"
            && json["value"] == value
    };
    next_line_matching(&mut lines, GIVE_UP, |json| is_pir(json, "snapshot", false)).await;
    bus.set_now(pir, SensorValue::Binary(true)).unwrap();
    next_line_matching(&mut lines, GIVE_UP, |json| is_pir(json, "change", true)).await;

    // A subscriber that arrives later gets the current value from the retained snapshot.
    let (mut late_lines, late_closed) = start_watcher(broker.url());
    next_line_matching(&mut late_lines, GIVE_UP, |json| {
        is_pir(json, "snapshot", true)
    })
    .await;

    // A clean shutdown says offline.
    let _ = stop.send(());
    tokio::time::timeout(GIVE_UP, publisher)
        .await
        .expect("publisher stops")
        .expect("publisher task")
        .expect("publisher ran");
    next_line_matching(&mut lines, GIVE_UP, |json| {
        json["event"] == "status" && json["box"] == "garage" && json["status"] == "offline"
    })
    .await;
    closed.store(true, Ordering::SeqCst);
    late_closed.store(true, Ordering::SeqCst);
}
