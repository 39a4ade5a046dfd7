//! The MQTT publisher against a real mosquitto broker started by the test, watched with
//! `nvrctl watch --mqtt`'s code.

use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use edgenvr::publish::mqtt::{run, MqttConfig};
use edgenvr::state::{SensorSpec, SensorValue, StateBus};
use edgenvr_proto::Role;
use nvrctl::mqtt_watch::watch_mqtt;
use nvrctl::watch::WatchOutput;
use tokio::sync::{mpsc, oneshot};

/// A safety net so a broken build fails instead of hanging CI; never a timing assertion.
const GIVE_UP: Duration = Duration::from_secs(30);

/// mosquitto on a free loopback port, killed on drop.
struct Broker {
    child: Child,
    port: u16,
}

impl Broker {
    fn start() -> Broker {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("mosquitto")
            .args(["-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto is installed");
        // Ready once it accepts a connection; it takes a few milliseconds to start.
        let deadline = std::time::Instant::now() + GIVE_UP;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "mosquitto did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Broker { child, port }
    }

    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lines from a watcher; a broken pipe once closed.
struct LineSink {
    lines: mpsc::UnboundedSender<String>,
    closed: Arc<AtomicBool>,
    partial: Vec<u8>,
}

impl Write for LineSink {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        self.partial.extend_from_slice(bytes);
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let _ = self
                .lines
                .send(String::from_utf8_lossy(&line).trim().to_string());
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn start_watcher(url: String) -> (mpsc::UnboundedReceiver<String>, Arc<AtomicBool>) {
    let (lines_tx, lines) = mpsc::unbounded_channel();
    let closed = Arc::new(AtomicBool::new(false));
    let mut sink = LineSink {
        lines: lines_tx,
        closed: closed.clone(),
        partial: Vec::new(),
    };
    // Detached: it ends on the broken pipe after `closed` is set, or with the test process.
    std::thread::spawn(move || {
        watch_mqtt(&url, WatchOutput::JsonLines, &mut sink, &mut io::sink())
    });
    (lines, closed)
}

async fn next_line_matching(
    lines: &mut mpsc::UnboundedReceiver<String>,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    tokio::time::timeout(GIVE_UP, async {
        loop {
            let line = lines.recv().await.expect("watcher still running");
            let json: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
            if wanted(&json) {
                return json;
            }
        }
    })
    .await
    .expect("line arrives")
}

#[tokio::test]
async fn a_pir_change_reaches_an_mqtt_subscriber_and_late_subscribers_see_current_state() {
    let broker = Broker::start();
    let bus = StateBus::new();
    let pir = bus
        .register(SensorSpec::binary("front_door_pir", Role::Sensor))
        .unwrap();
    bus.set_now(pir, SensorValue::Binary(false)).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let publisher = tokio::spawn(run(
        bus.clone(),
        MqttConfig::new(broker.url(), "garage"),
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
    next_line_matching(&mut lines, |json| is_pir(json, "snapshot", false)).await;
    bus.set_now(pir, SensorValue::Binary(true)).unwrap();
    next_line_matching(&mut lines, |json| is_pir(json, "change", true)).await;

    // A subscriber that arrives later gets the current value from the retained snapshot.
    let (mut late_lines, late_closed) = start_watcher(broker.url());
    next_line_matching(&mut late_lines, |json| is_pir(json, "snapshot", true)).await;

    // A clean shutdown says offline.
    let _ = stop.send(());
    tokio::time::timeout(GIVE_UP, publisher)
        .await
        .expect("publisher stops")
        .expect("publisher task")
        .expect("publisher ran");
    next_line_matching(&mut lines, |json| {
        json["event"] == "status" && json["box"] == "garage" && json["status"] == "offline"
    })
    .await;
    closed.store(true, Ordering::SeqCst);
    late_closed.store(true, Ordering::SeqCst);
}
