//! The real `edgenvr sim` binary against the GPIO part of a box running in this test process:
//! `sim set` over the control socket named in a config file triggers the sim sensor, `sim get`
//! prints raw levels, and refusals exit non-zero with the box's message.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use edgenvr::gpio::{self, ControlConfig, SensorConfig};

/// Guard against a hang only.
const HANG_GUARD: Duration = Duration::from_secs(20);

/// Runs the binary without blocking the runtime that serves the socket.
async fn edgenvr(args: &[&str], config: &Path) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_edgenvr"));
    command.args(args).arg("--config").arg(config);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn sim_set_and_get_drive_the_running_box() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let config_file = dir.path().join("config.toml");
    // A whole config file: `edgenvr sim` reads only `[control]` from it.
    let config_text = format!(
        "[box]\nname = \"test\"\n\n[[sensor]]\nname = \"pir-hall\"\nkind = \"pir\"\n\
         backend = \"sim\"\ndebounce = \"20ms\"\n\n[control]\nsocket = {:?}\n",
        socket.to_str().unwrap()
    );
    std::fs::write(&config_file, &config_text).unwrap();
    let table: toml::Table = toml::from_str(&config_text).unwrap();
    let sensors: Vec<SensorConfig> = table["sensor"].clone().try_into().unwrap();
    let control = ControlConfig {
        socket: Some(socket.clone()),
    };

    let (sender, mut events) = gpio::event_channel();
    let running = gpio::start(
        gpio::GpioSections {
            sensors: &sensors,
            outputs: &[],
            rules: &[],
            control: &control,
        },
        sender,
        gpio::output_channel().0,
    )
    .await
    .unwrap();

    let got = edgenvr(&["sim", "get", "pir-hall"], &config_file).await;
    assert!(got.status.success(), "{}", stderr(&got));
    assert_eq!(stdout(&got), "low\n");

    let set = edgenvr(&["sim", "set", "pir-hall", "high"], &config_file).await;
    assert!(set.status.success(), "{}", stderr(&set));
    let event = tokio::time::timeout(HANG_GUARD, events.recv())
        .await
        .expect("no sensor event")
        .unwrap();
    assert_eq!((&*event.name, event.triggered), ("pir-hall", true));
    let got = edgenvr(&["sim", "get", "pir-hall"], &config_file).await;
    assert_eq!(stdout(&got), "high\n");

    let unknown = edgenvr(&["sim", "set", "pir-attic", "low"], &config_file).await;
    assert_eq!(unknown.status.code(), Some(1));
    assert_eq!(
        stderr(&unknown),
        "edgenvr sim: no simulated sensor or output named \"pir-attic\"\n"
    );

    running.shutdown().await;
    let gone = edgenvr(&["sim", "get", "pir-hall"], &config_file).await;
    assert_eq!(gone.status.code(), Some(3));
    assert!(
        stderr(&gone).contains("cannot connect"),
        "{}",
        stderr(&gone)
    );
}
