//! End to end through the control socket: the GPIO part of the box runs in-process (control
//! server, sim sensor tasks, rules task) and is driven over the real Unix socket by the same
//! client code `edgenvr sim set`/`get` uses. Assertions await the sensor events and the sim
//! output levels; time limits only guard against a hang, and timing checks are lower bounds.

use std::path::{Path, PathBuf};
use std::time::Duration;

use edgenvr::gpio::control::{self, Reply, Request};
use edgenvr::gpio::{self, ControlConfig, OutputConfig, RuleConfig, SensorConfig, SensorEvent};
use tokio::sync::broadcast;
use tokio::time::{timeout, Instant};

/// Guard against a hang only; every wait normally ends within about a second.
const HANG_GUARD: Duration = Duration::from_secs(20);
/// Debounce of the test sensors (as in the config below): long enough that a burst of socket
/// requests (a few milliseconds) stays well inside it even on a loaded 2-core CI machine.
const DEBOUNCE: Duration = Duration::from_millis(300);
/// The first rule's `for` (as in the config below).
const RULE_FOR: Duration = Duration::from_millis(400);
/// The GPIO clock counts whole milliseconds, so a deadline may land up to 1 ms before the exact
/// instant: the only slack allowed in the lower bounds below.
const CLOCK_RESOLUTION: Duration = Duration::from_millis(1);

#[derive(serde::Deserialize)]
struct Sections {
    sensor: Vec<SensorConfig>,
    output: Vec<OutputConfig>,
    rule: Vec<RuleConfig>,
}

const CONFIG: &str = r#"
    [[sensor]]
    name = "pir-hall"
    kind = "pir"
    backend = "sim"
    debounce = "300ms"
    [[sensor]]
    name = "pir-yard"
    kind = "pir"
    backend = "sim"
    active_low = true
    debounce = "300ms"
    [[sensor]]
    name = "pir-real"
    kind = "pir"
    backend = "gpiocdev"
    chip = "gpiochip9"
    line = 4
    [[output]]
    name = "light-porch"
    backend = "sim"
    [[output]]
    name = "relay-gate"
    backend = "sim"
    active_low = true
    [[rule]]
    when = "pir-hall"
    then = "light-porch"
    for = "400ms"
    [[rule]]
    when = "pir-yard"
    then = "relay-gate"
"#;

async fn sim(socket: &Path, request: Request) -> Reply {
    control::request(socket, &request).await.unwrap()
}

async fn set(socket: &Path, name: &str, high: bool) {
    let request = Request::Set {
        name: name.into(),
        high,
    };
    assert_eq!(sim(socket, request).await, Reply::Ok(None), "set {name}");
}

async fn get(socket: &Path, name: &str) -> Option<bool> {
    match sim(socket, Request::Get { name: name.into() }).await {
        Reply::Ok(level) => level,
        Reply::Err(e) => panic!("get {name}: {e}"),
    }
}

async fn next_event(events: &mut broadcast::Receiver<SensorEvent>) -> SensorEvent {
    timeout(HANG_GUARD, events.recv())
        .await
        .expect("no sensor event")
        .unwrap()
}

/// Waits until a sim output has raw level `high`; returns when that was seen.
async fn output_level(watch: &mut tokio::sync::watch::Receiver<bool>, high: bool) -> Instant {
    timeout(HANG_GUARD, watch.wait_for(|level| *level == high))
        .await
        .unwrap_or_else(|_| panic!("the output never went {high}"))
        .unwrap();
    Instant::now()
}

/// The GPIO part running for one test; the temporary directory (holding the socket) must live
/// as long as it.
struct Running {
    gpio: gpio::Gpio,
    socket: PathBuf,
    events: broadcast::Receiver<SensorEvent>,
    _dir: tempfile::TempDir,
}

async fn start() -> Running {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("run/control.sock");
    let sections: Sections = toml::from_str(CONFIG).unwrap();
    let problems =
        edgenvr::config::gpio::validate(&sections.sensor, &sections.output, &sections.rule);
    assert_eq!(problems, []);
    let control = ControlConfig {
        socket: Some(socket.clone()),
    };
    let (sender, events) = gpio::event_channel();
    let gpio = gpio::start(
        gpio::GpioSections {
            sensors: &sections.sensor,
            outputs: &sections.output,
            rules: &sections.rule,
            control: &control,
        },
        sender,
        gpio::output_channel().0,
    )
    .await
    .unwrap();
    Running {
        gpio,
        socket,
        events,
        _dir: dir,
    }
}

#[tokio::test]
async fn chattering_sim_input_gives_one_event_and_the_rule_switches_the_light() {
    let Running {
        gpio,
        socket,
        mut events,
        _dir: _keep_dir,
    } = start().await;
    // The sensor on a missing chip is reported and left out; the rest runs.
    let open_errors: Vec<String> = gpio.open_errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        open_errors,
        [
            "sensor \"pir-real\": cannot open /dev/gpiochip9 line 4 (backend \"gpiocdev\"): \
          /dev/gpiochip9 does not exist (no such GPIO chip)"
        ]
    );
    let mut light = gpio.sim.watch("light-porch").unwrap();
    assert_eq!(get(&socket, "light-porch").await, Some(false));

    // 21 edges in a burst, ending high.
    for i in 0..20 {
        set(&socket, "pir-hall", i % 2 == 0).await;
    }
    let last_edge_sent = Instant::now();
    set(&socket, "pir-hall", true).await;
    let triggered = next_event(&mut events).await;
    assert_eq!(
        (&*triggered.name, triggered.index, triggered.triggered),
        ("pir-hall", 0, true)
    );
    assert!(
        triggered.at + CLOCK_RESOLUTION >= last_edge_sent + DEBOUNCE,
        "a level counts only after holding for the debounce time"
    );
    output_level(&mut light, true).await;
    assert_eq!(get(&socket, "light-porch").await, Some(true));

    // Chatter on the way down too, ending low.
    for i in 0..21 {
        set(&socket, "pir-hall", i % 2 != 0).await;
    }
    let cleared = next_event(&mut events).await;
    assert_eq!((&*cleared.name, cleared.triggered), ("pir-hall", false));
    let light_off = output_level(&mut light, false).await;
    assert!(
        light_off + CLOCK_RESOLUTION >= cleared.at + RULE_FOR,
        "the light stays on for `for` after the sensor clears"
    );
    assert!(
        matches!(
            events.try_recv(),
            Err(broadcast::error::TryRecvError::Empty)
        ),
        "exactly one trigger and one clear"
    );
    gpio.shutdown().await;
    assert!(!socket.exists(), "the socket file is removed at shutdown");
}

#[tokio::test]
async fn active_low_applies_on_top_of_raw_sim_levels() {
    let Running {
        gpio,
        socket,
        mut events,
        _dir: _keep_dir,
    } = start().await;
    // At rest an active-low input reads high, and an active-low output is driven high (off).
    assert_eq!(get(&socket, "pir-yard").await, Some(true));
    let mut relay = gpio.sim.watch("relay-gate").unwrap();
    output_level(&mut relay, true).await;

    set(&socket, "pir-yard", false).await;
    let event = next_event(&mut events).await;
    assert_eq!(
        (&*event.name, event.index, event.triggered),
        ("pir-yard", 1, true)
    );
    output_level(&mut relay, false).await;
    assert_eq!(get(&socket, "relay-gate").await, Some(false));

    set(&socket, "pir-yard", true).await;
    let event = next_event(&mut events).await;
    assert_eq!((&*event.name, event.triggered), ("pir-yard", false));
    output_level(&mut relay, true).await;

    // Refusals come back as replies, and the server keeps serving.
    let reply = sim(
        &socket,
        Request::Get {
            name: "nope".into(),
        },
    )
    .await;
    assert_eq!(
        reply,
        Reply::Err("no simulated sensor or output named \"nope\"".into())
    );
    let to_output = Request::Set {
        name: "relay-gate".into(),
        high: true,
    };
    assert!(matches!(sim(&socket, to_output).await, Reply::Err(m) if m.contains("is an output")));
    let to_real = Request::Set {
        name: "pir-real".into(),
        high: true,
    };
    assert!(
        matches!(sim(&socket, to_real).await, Reply::Err(m) if m.contains("no simulated sensor"))
    );
    assert_eq!(get(&socket, "pir-yard").await, Some(true));
    assert_eq!(DEBOUNCE, Duration::from_millis(300));
    gpio.shutdown().await;
}
