//! A simulated site on the real state bus and the real TCP state port, for
//! `scripts/bench-state.sh`.
//!
//! Registers `--binary` binary sensors (PIR, contacts) and `--scalar` temperatures in one
//! [`StateBus`], binds the state port with [`StatePort::bind`] (which logs
//! `listening state ADDR`) and serves it with the box's own settings ([`TcpStateConfig::new`]),
//! and runs the bus's scalar timers. Then, in real time:
//! - binary sensors: each one toggles on average once every `--mean-interval-s` seconds, as one
//!   Poisson process over the whole site (a random sensor per event, exponential gaps);
//! - scalars: every temperature takes a random-walk reading once a second, reported by exception
//!   (absolute deadband, minimum and maximum interval) by the bus itself;
//! - `--trigger-stdin`: registers one more binary sensor, `bench_pir`, that only stdin sets:
//!   lines `NAME high|low` set that sensor at once (an in-process edge for latency).
//!
//! Alongside, it subscribes to the bus like any publisher and costs every reported change in the
//! two formats the benchmark compares against (nothing is sent for them):
//! - Home-Assistant-style MQTT, one PUBLISH per change (MQTT 3.1.1, QoS 0, not retained) on
//!   `homeassistant/<binary_sensor|sensor>/<site>/<name>/state`: plain payload `ON`/`OFF` or
//!   `21.5`, and a JSON payload `{"state":"ON"}` / `{"temperature":21.5}`. Packet bytes =
//!   1 (fixed header) + len(varint remaining) + remaining, remaining = 2 + topic + payload;
//!   With `--mqtt HOST:PORT` the plain-payload publishes are also really sent, QoS 0, to that
//!   broker (the benchmark reads the broker's `$SYS` byte counters);
//! - edgenvr's own Home Assistant state topics (`[mqtt] home_assistant = true`): one PUBLISH
//!   per change on `edgenvr/<site>/ha/<name>`, payload `ON`/`OFF` or `21.5`;
//! - polled XML: once a second the whole site's current state (a bus snapshot) as one XML
//!   document, `<sensor id=".." name=".." state="0"/>` per binary sensor, its length.
//!
//! With `--mqtt-publisher URL` the site's bus is also published by the box's own MQTT
//! publisher (`publish::mqtt`, the frames a box sends to its broker), for the benchmark's
//! bridge run.
//!
//! Prints one JSON line a second (`"kind":"second"`) and a summary line (`"kind":"summary"`) to
//! stdout after `--seconds` or on SIGINT/SIGTERM; logs go to stderr.

use std::fmt::Write as _;
use std::time::Duration;

use clap::Parser;
use edgenvr::publish::tcp::{StatePort, TcpStateConfig};
use edgenvr::state::{unix_now_ms, BusEvent, SensorKind, SensorSpec, SensorValue, StateBus};
use edgenvr_proto::{Deadband, ReportPolicy, Role, SensorId};
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;

#[derive(Parser, Debug)]
#[command(about = "A simulated site of sensors on the real state bus and TCP state port")]
struct Args {
    /// Where the state port listens.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Site (box) name, in the hello and in the MQTT topics.
    #[arg(long, default_value = "site1")]
    site: String,
    /// Binary sensors. 60,000: the brief's site.
    #[arg(long, default_value_t = 60_000)]
    binary: u32,
    /// Temperature sensors, reported by exception.
    #[arg(long, default_value_t = 2_000)]
    scalar: u32,
    /// Mean seconds between two transitions of one binary sensor. 300: the brief's average.
    #[arg(long, default_value_t = 300.0)]
    mean_interval_s: f64,
    /// Run this long, then print the summary and exit (0: until SIGINT/SIGTERM).
    #[arg(long, default_value_t = 0)]
    seconds: u64,
    /// Seed of the random site.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also publish every change, Home-Assistant style (plain payload), to this MQTT broker
    /// (HOST:PORT), so the broker's own byte counters can be read against the formula.
    #[arg(long)]
    mqtt: Option<String>,
    /// Also publish the bus with the box's own MQTT publisher to this broker URL
    /// (`mqtt://HOST:PORT`).
    #[arg(long)]
    mqtt_publisher: Option<String>,
    /// Register one more binary sensor, `bench_pir`, left alone by the random process, and set
    /// sensors from `NAME high|low` lines on stdin.
    #[arg(long)]
    trigger_stdin: bool,
}

/// Temperatures' deadband: 0.5 °C, what a building-management point typically reports at.
const TEMPERATURE_DEADBAND_C: f32 = 0.5;
/// Largest random-walk step per one-second reading (uniform in ±this): a probe's noise plus
/// drift, so a reading leaves the deadband every minute or two.
const TEMPERATURE_STEP_C: f32 = 0.1;
/// At most one report per temperature every 10 s: a rate limit that bounds a noisy probe.
const TEMPERATURE_MIN_INTERVAL_MS: u64 = 10_000;
/// A temperature is re-sent after 15 minutes without a report (heartbeat).
const TEMPERATURE_MAX_INTERVAL_MS: u64 = 15 * 60 * 1000;

/// The binary sensor that `--trigger-stdin` registers for in-process edges.
const TRIGGER_SENSOR: &str = "bench_pir";

struct Site {
    bus: StateBus,
    binary_ids: Vec<SensorId>,
    scalar_ids: Vec<SensorId>,
    /// Current level of each binary sensor, by index into `binary_ids`.
    levels: Vec<bool>,
    /// Current reading of each temperature, by index into `scalar_ids`.
    readings: Vec<f32>,
    /// Names by sensor id (the bus's ids are dense from 0).
    names: Vec<String>,
}

/// A realistic name of about 16 characters: building, floor, kind and number.
fn binary_name(index: u32) -> String {
    let kind = if index % 4 == 3 { "door" } else { "pir" };
    format!(
        "b{:02}_f{:02}_{kind}_{:04}",
        index / 5000,
        (index / 250) % 20,
        index % 250
    )
}

fn scalar_name(index: u32) -> String {
    format!(
        "b{:02}_f{:02}_temp_{:03}",
        index / 200,
        (index / 10) % 20,
        index % 10
    )
}

impl Site {
    fn build(args: &Args, rng: &mut fastrand::Rng) -> anyhow::Result<Site> {
        let bus = StateBus::new();
        let mut names = Vec::new();
        let mut binary_ids = Vec::new();
        let mut levels = Vec::new();
        for index in 0..args.binary {
            let name = binary_name(index);
            binary_ids.push(bus.register(SensorSpec::binary(name.clone(), Role::Sensor))?);
            names.push(name);
            // A tenth of the site is active at any time (occupied rooms, open doors).
            levels.push(rng.u8(..10) == 0);
        }
        let policy = ReportPolicy {
            deadband: Deadband::Absolute(TEMPERATURE_DEADBAND_C),
            min_interval_ms: TEMPERATURE_MIN_INTERVAL_MS,
            max_interval_ms: Some(TEMPERATURE_MAX_INTERVAL_MS),
        };
        let mut scalar_ids = Vec::new();
        let mut readings = Vec::new();
        for index in 0..args.scalar {
            let name = scalar_name(index);
            scalar_ids.push(bus.register(SensorSpec::scalar(
                name.clone(),
                "°C",
                Role::Sensor,
                policy,
            ))?);
            names.push(name);
            readings.push(18.0 + rng.f32() * 6.0);
        }
        if args.trigger_stdin {
            // Set only from stdin, never by the random process.
            let id = bus.register(SensorSpec::binary(TRIGGER_SENSOR, Role::Sensor))?;
            names.push(TRIGGER_SENSOR.to_string());
            bus.set_now(id, SensorValue::Binary(false))?;
        }
        let now_ms = unix_now_ms();
        for (id, level) in binary_ids.iter().zip(&levels) {
            bus.set(*id, SensorValue::Binary(*level), now_ms)?;
        }
        for (id, reading) in scalar_ids.iter().zip(&readings) {
            bus.set(*id, SensorValue::Scalar(*reading), now_ms)?;
        }
        Ok(Site {
            bus,
            binary_ids,
            scalar_ids,
            levels,
            readings,
            names,
        })
    }

    fn toggle(&mut self, index: usize) -> anyhow::Result<()> {
        let (Some(level), Some(id)) = (self.levels.get_mut(index), self.binary_ids.get(index))
        else {
            return Ok(());
        };
        *level = !*level;
        self.bus.set_now(*id, SensorValue::Binary(*level))?;
        Ok(())
    }

    fn read_temperatures(&mut self, rng: &mut fastrand::Rng) -> anyhow::Result<()> {
        let now_ms = unix_now_ms();
        for (id, reading) in self.scalar_ids.iter().zip(self.readings.iter_mut()) {
            *reading += (rng.f32() * 2.0 - 1.0) * TEMPERATURE_STEP_C;
            self.bus.set(*id, SensorValue::Scalar(*reading), now_ms)?;
        }
        Ok(())
    }
}

/// Length of the whole site's state as the XML document a 1 Hz poller would fetch, built from
/// a snapshot of the bus (HTTP headers and compression left out).
fn xml_document_bytes(bus: &StateBus, site_name: &str, out: &mut String) -> u64 {
    let snapshot = bus.subscribe();
    out.clear();
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(out, "<site name=\"{site_name}\">");
    for change in &snapshot.values {
        let Some(info) = snapshot.catalog.get(change.id.0 as usize) else {
            continue;
        };
        let _ = match (&change.value, &info.kind) {
            (SensorValue::Binary(level), _) => writeln!(
                out,
                "  <sensor id=\"{}\" name=\"{}\" state=\"{}\"/>",
                info.id.0,
                info.name,
                u8::from(*level)
            ),
            (SensorValue::Scalar(reading), SensorKind::Scalar { unit }) => writeln!(
                out,
                "  <sensor id=\"{}\" name=\"{}\" value=\"{reading:.1}\" unit=\"{unit}\"/>",
                info.id.0, info.name
            ),
            _ => Ok(()),
        };
    }
    out.push_str("</site>\n");
    out.len() as u64
}

/// Bytes of one MQTT 3.1.1 PUBLISH packet, QoS 0 (no packet id), no retain.
fn mqtt_publish_bytes(topic: &str, payload: &str) -> u64 {
    let remaining = 2 + topic.len() + payload.len();
    let length_bytes = match remaining {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    };
    (1 + length_bytes + remaining) as u64
}

/// Publishes queued for the broker connection before `try_publish` refuses: 4096 is 20 s of the
/// site's changes, far more than a local broker lets pile up.
const MQTT_QUEUE_PUBLISHES: usize = 4096;

/// Connects to the broker at `address` (HOST:PORT) and drives the connection until `stop`.
fn mqtt_client(
    address: &str,
    site: &str,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<(rumqttc::AsyncClient, tokio::task::JoinHandle<()>)> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("--mqtt wants HOST:PORT, got {address:?}"))?;
    let mut options = rumqttc::MqttOptions::new(format!("state-site-{site}"), host, port.parse()?);
    // 30 s, as the box's own MQTT publisher: two PINGREQs a minute, noise next to the changes.
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, MQTT_QUEUE_PUBLISHES);
    let driver = tokio::spawn(async move {
        loop {
            let lost = tokio::select! {
                _ = stop.wait_for(|stop| *stop) => return,
                event = eventloop.poll() => match event {
                    Ok(_) => false,
                    Err(error) => {
                        tracing::warn!(%error, "mqtt connection lost, retrying in 1 s");
                        true
                    }
                },
            };
            if lost {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    });
    Ok((client, driver))
}

#[derive(Default, Clone, Copy)]
struct Counts {
    binary_changes: u64,
    scalar_reports: u64,
    mqtt_plain_bytes: u64,
    mqtt_json_bytes: u64,
    ha_state_bytes: u64,
    xml_bytes: u64,
    xml_documents: u64,
    lagged: u64,
    mqtt_sent: u64,
    mqtt_refused: u64,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.binary_changes += other.binary_changes;
        self.scalar_reports += other.scalar_reports;
        self.mqtt_plain_bytes += other.mqtt_plain_bytes;
        self.mqtt_json_bytes += other.mqtt_json_bytes;
        self.ha_state_bytes += other.ha_state_bytes;
        self.xml_bytes += other.xml_bytes;
        self.xml_documents += other.xml_documents;
        self.lagged += other.lagged;
        self.mqtt_sent += other.mqtt_sent;
        self.mqtt_refused += other.mqtt_refused;
    }

    fn json(&self, kind: &str, seconds: f64) -> serde_json::Value {
        json!({
            "kind": kind,
            "seconds": seconds,
            "binary_changes": self.binary_changes,
            "scalar_reports": self.scalar_reports,
            "mqtt_plain_bytes": self.mqtt_plain_bytes,
            "mqtt_json_bytes": self.mqtt_json_bytes,
            "ha_state_bytes": self.ha_state_bytes,
            "xml_bytes": self.xml_bytes,
            "xml_documents": self.xml_documents,
            "lagged": self.lagged,
            "mqtt_sent": self.mqtt_sent,
            "mqtt_refused": self.mqtt_refused,
        })
    }
}

// One thread, like the box's runtime.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let args = Args::parse();
    let mut rng = fastrand::Rng::with_seed(args.seed);
    let mut site = Site::build(&args, &mut rng)?;
    let bus = site.bus.clone();

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let port = StatePort::bind(&args.listen).await?;
    let server = tokio::spawn(port.serve(
        bus.clone(),
        TcpStateConfig::new(args.site.clone()),
        stopped(stop_rx.clone()),
    ));
    let timers = tokio::spawn({
        let bus = bus.clone();
        let stop = stopped(stop_rx.clone());
        async move { bus.run_timers(stop).await }
    });

    let publisher = args.mqtt_publisher.clone().map(|url| {
        let config = edgenvr::publish::mqtt::MqttConfig::new(url, args.site.clone());
        tokio::spawn(edgenvr::publish::mqtt::run(
            bus.clone(),
            config,
            None,
            stopped(stop_rx.clone()),
        ))
    });
    let mqtt = match &args.mqtt {
        Some(address) => Some(mqtt_client(address, &args.site, stop_rx.clone())?),
        None => None,
    };

    // Costs every reported change as MQTT, like a publisher would see it.
    let mut events = bus.subscribe().events;
    let names = site.names.clone();

    // tokio's stdin needs a feature the box does not use; a plain thread hands lines over.
    let (line_tx, mut stdin_lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    if args.trigger_stdin {
        std::thread::spawn(move || {
            for line in std::io::stdin().lines() {
                let Ok(line) = line else { break };
                if line_tx.send(line).is_err() {
                    break;
                }
            }
        });
    } else {
        drop(line_tx);
    }
    let mut stdin_open = args.trigger_stdin;
    let mean_gap_s = args.mean_interval_s / f64::from(args.binary.max(1));
    let started = Instant::now();
    let mut next_toggle = started;
    let mut next_second = started + Duration::from_secs(1);
    let mut total = Counts::default();
    let mut second = Counts::default();
    // The XML poller's document is built on a blocking thread, so its ~3.5 MB a second of
    // formatting never delays the bus, the state port or a trigger.
    let (xml_tx, mut xml_lengths) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let poller = {
        let bus = bus.clone();
        let site_name = args.site.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut buffer = String::new();
            loop {
                tokio::select! {
                    _ = stop.wait_for(|stop| *stop) => return,
                    _ = tick.tick() => {}
                }
                let bus = bus.clone();
                let site_name = site_name.clone();
                let built = tokio::task::spawn_blocking(move || {
                    let bytes = xml_document_bytes(&bus, &site_name, &mut buffer);
                    (bytes, buffer)
                })
                .await;
                let Ok((bytes, returned)) = built else { return };
                buffer = returned;
                if xml_tx.send(bytes).is_err() {
                    return;
                }
            }
        })
    };
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let end = (args.seconds > 0).then(|| started + Duration::from_secs(args.seconds));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = sigterm.recv() => break,
            () = tokio::time::sleep_until(end.unwrap_or(next_second)), if end.is_some() => break,
            () = tokio::time::sleep_until(next_toggle), if args.binary > 0 => {
                let now = Instant::now();
                while next_toggle <= now {
                    site.toggle(rng.usize(..site.binary_ids.len()))?;
                    let gap_s = -(1.0 - rng.f64()).ln() * mean_gap_s;
                    next_toggle += Duration::from_secs_f64(gap_s);
                }
            }
            () = tokio::time::sleep_until(next_second) => {
                site.read_temperatures(&mut rng)?;
                while let Ok(bytes) = xml_lengths.try_recv() {
                    second.xml_bytes += bytes;
                    second.xml_documents += 1;
                }
                let seconds = started.elapsed().as_secs_f64();
                println!("{}", second.json("second", seconds));
                total.add(&second);
                second = Counts::default();
                next_second += Duration::from_secs(1);
            }
            event = events.recv() => match event {
                Ok(BusEvent::Changed(change)) => {
                    let name = names.get(change.id.0 as usize).map_or("", String::as_str);
                    let is_binary = matches!(change.value, SensorValue::Binary(_));
                    let (plain, json_payload, component) = match change.value {
                        SensorValue::Binary(level) => {
                            let state = if level { "ON" } else { "OFF" };
                            (state.to_string(), format!("{{\"state\":\"{state}\"}}"), "binary_sensor")
                        }
                        SensorValue::Scalar(reading) => (
                            format!("{reading:.1}"),
                            format!("{{\"temperature\":{reading:.1}}}"),
                            "sensor",
                        ),
                        SensorValue::Complex(_) | SensorValue::Unsigned(_) => continue,
                    };
                    let topic = format!("homeassistant/{component}/{}/{name}/state", args.site);
                    second.mqtt_plain_bytes += mqtt_publish_bytes(&topic, &plain);
                    if let Some((client, _)) = &mqtt {
                        match client.try_publish(topic.clone(), rumqttc::QoS::AtMostOnce, false, plain.clone()) {
                            Ok(()) => second.mqtt_sent += 1,
                            Err(_) => second.mqtt_refused += 1,
                        }
                    }
                    second.mqtt_json_bytes += mqtt_publish_bytes(&topic, &json_payload);
                    // What a box with `[mqtt] home_assistant = true` publishes per change besides
                    // its frames: the entity's plain state, QoS 0 (no packet id), retained.
                    let ha_topic = format!("edgenvr/{}/ha/{name}", args.site);
                    second.ha_state_bytes += mqtt_publish_bytes(&ha_topic, &plain);
                    if is_binary {
                        second.binary_changes += 1;
                    } else {
                        second.scalar_reports += 1;
                    }
                }
                Ok(BusEvent::Registered(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    second.lagged += missed;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
            line = stdin_lines.recv(), if stdin_open => match line {
                Some(line) => {
                    let mut words = line.split_whitespace();
                    match (words.next().and_then(|name| bus.id_of(name)), words.next()) {
                        (Some(id), Some("high")) => bus.set_now(id, SensorValue::Binary(true))?,
                        (Some(id), Some("low")) => bus.set_now(id, SensorValue::Binary(false))?,
                        _ => tracing::warn!(%line, "trigger line is not `NAME high|low` of a known sensor"),
                    }
                }
                None => stdin_open = false,
            },
        }
    }
    let _ = stop_tx.send(true);
    let _ = server.await;
    let _ = timers.await;
    let _ = poller.await;
    if let Some(publisher) = publisher {
        let _ = publisher.await;
    }
    if let Some((_, driver)) = mqtt {
        let _ = driver.await;
    }
    // The last, partial second counts too.
    total.add(&second);
    println!("{}", total.json("summary", started.elapsed().as_secs_f64()));
    Ok(())
}
