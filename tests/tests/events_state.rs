//! The running box's state upstream, end to end with real processes only: `edgenvr run` with a
//! sim PIR, `[state] listen` and `[mqtt] url` pointing at a real mosquitto started here; the PIR
//! driven by `edgenvr sim set`; the state read by the real `nvrctl watch` binary over TCP and
//! over MQTT (`--json` lines). Shows that `run` wires sensors, health, the state port and the
//! MQTT publisher to one bus. No camera: the state path needs no video.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use edgenvr_tests::bins;
use edgenvr_tests::process::{run, Process};

/// Guards against a hang only.
const HANG_GUARD: Duration = Duration::from_secs(30);

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
        // Ready once it accepts a connection: nothing to await but the port itself.
        let deadline = Instant::now() + HANG_GUARD;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Broker { child, port }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `nvrctl watch ... --json` with its JSON lines arriving on a channel; killed on drop.
struct Watcher {
    child: Child,
    lines: mpsc::Receiver<serde_json::Value>,
}

impl Watcher {
    fn start(args: &[&str]) -> Watcher {
        let mut child = Command::new(bins::nvrctl())
            .args(args)
            .arg("--json")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nvrctl watch");
        let stdout = child.stdout.take().expect("piped stdout");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let json = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                if send.send(json).is_err() {
                    break;
                }
            }
        });
        Watcher { child, lines }
    }

    /// Waits for an update of `sensor` to `value`.
    fn wait_for(&self, sensor: &str, value: serde_json::Value) {
        let deadline = Instant::now() + HANG_GUARD;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("nvrctl never showed {sensor} = {value}"));
            if line["sensor"] == sensor && line["value"] == value {
                return;
            }
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sim_set(config: &Path, level: &str) {
    let (status, out, err) = run(
        &bins::edgenvr(),
        &[
            "sim",
            "set",
            "pir-hall",
            level,
            "--config",
            config.to_str().expect("utf-8 path"),
        ],
    )
    .expect("edgenvr sim set");
    assert!(status.success(), "sim set {level}: {out}{err}");
}

#[test]
fn a_sim_pir_reaches_nvrctl_over_tcp_and_mqtt_from_the_running_box() {
    let work = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let edgenvr = bins::edgenvr();
    let store = work.path().join("store");
    let (status, out, err) = run(
        &edgenvr,
        &[
            "store",
            "init",
            store.to_str().unwrap(),
            "--size",
            "1MiB",
            "--slots",
            "4",
        ],
    )
    .unwrap();
    assert!(status.success(), "store init: {out}{err}");
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
            port = broker.port,
            socket = work.path().join("control.sock").display(),
        ),
    )
    .unwrap();
    let mut edgenvr_box = Process::spawn(
        &edgenvr,
        &["run", "--config", config.to_str().unwrap()],
        &[("RUST_LOG", "info")],
    )
    .unwrap();
    let state_line = edgenvr_box
        .wait_for_line("listening state ", HANG_GUARD)
        .unwrap();
    let state_addr = state_line
        .split("listening state ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    edgenvr_box
        .wait_for_line("listening control ", HANG_GUARD)
        .unwrap();

    let tcp = Watcher::start(&["watch", &state_addr]);
    let mqtt_url = format!("mqtt://127.0.0.1:{}", broker.port);
    let mqtt = Watcher::start(&["watch", "--mqtt", &mqtt_url]);
    // Both start from the snapshot: the PIR quiet, and the box's health sensors present.
    for watcher in [&tcp, &mqtt] {
        watcher.wait_for("pir-hall", serde_json::json!(false));
        watcher.wait_for("storage_endurance_used", serde_json::json!(0.0));
    }
    sim_set(&config, "high");
    tcp.wait_for("pir-hall", serde_json::json!(true));
    mqtt.wait_for("pir-hall", serde_json::json!(true));
    sim_set(&config, "low");
    tcp.wait_for("pir-hall", serde_json::json!(false));
    mqtt.wait_for("pir-hall", serde_json::json!(false));

    let exit = edgenvr_box.terminate(HANG_GUARD).unwrap();
    assert!(exit.success(), "edgenvr run exit: {exit:?}");
}
