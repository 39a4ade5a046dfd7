//! The logic of `edgenvr check-config`, `edgenvr record` and `edgenvr run`, callable in-process
//! (tests drive it without spawning the binary); `cli` only parses arguments, installs the signal
//! handlers and maps results to exit codes.
//!
//! `record` and `run` open the store on a blocking thread, start one task per camera on the
//! caller's tokio runtime ([`crate::record::record_continuous`] or, for `mode = "events"`,
//! [`crate::record::record_events`]), and return once every camera has stopped and closed its
//! recording (after the shutdown signal, or when `record` gives up on a refused password). `run`
//! also starts the GPIO part ([`crate::gpio::start`]), the state bus with the sensors' changes and
//! the box's health ([`crate::health`]), the TCP state port (`[state] listen`) and the MQTT
//! publisher (`[mqtt] url`) and the HTTP API of [`crate::serve`] (`[http] listen`); all of them
//! hear the same shutdown signal and `run` waits for every one.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use edgenvr_proto::Role;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;

use crate::config::{self, Config, ConfigError, HttpConfig, RecordModeConfig};
use crate::gpio::{self, GpioSections};
use crate::health::{self, CameraHealth, Health};
use crate::ingest::{
    AuthFailurePolicy, CameraSource, CameraStatus, IngestErrorKind, IngestOptions, SourceError,
    Transport,
};
use crate::media::TIMESCALE_90K;
use crate::publish::tcp::{StatePort, TcpStateConfig};
use crate::record::{self, RecordError};
use crate::serve::{self, HttpServer};
use crate::shutdown::Shutdown;
use crate::state::{unix_now_ms, SensorSpec, SensorValue, StateBus};
use crate::store::{
    InitOptions, InitProgress, Store, StoreError, WriterOptions, DEFAULT_SLOT_BYTES,
};
use crate::time::{Clock, SystemClock};

/// What `edgenvr record` was asked to do.
#[derive(Clone, Debug)]
pub struct RecordRequest {
    /// The camera URL (credentials allowed; never logged).
    pub url: String,
    /// A password from outside the URL (`EDGENVR_RTSP_PASSWORD`).
    pub password: Option<String>,
    /// The store directory (initialised when empty).
    pub dir: PathBuf,
    /// Longest segment (`None`: a segment fills its slot).
    pub segment: Option<Duration>,
    /// Size of a new store.
    pub max_bytes: Option<u64>,
    /// Slot count of a new store.
    pub wrap: Option<u32>,
    /// Camera name.
    pub name: String,
    /// RTP transport.
    pub transport: Transport,
    /// Longest time written video stays unsynced.
    pub sync_interval: Duration,
}

/// Why `record` or `run` could not run (or stopped).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The camera URL is unusable.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The store refused (not a store, locked, corrupt, I/O).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An empty directory but no size to initialise it with.
    #[error(
        "{} is empty; give --max-bytes SIZE or --wrap N to initialise it as a store",
        dir.display()
    )]
    NoSize {
        /// The directory.
        dir: PathBuf,
    },
    /// A camera stopped for good.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The config is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `--name` is not a usable camera name.
    #[error("--name: {0}")]
    BadName(String),
    /// The HTTP API could not start (token, or the listen address).
    #[error("http: {0}")]
    Http(String),
    /// Something the box cannot do (a GPIO config it cannot start, a control socket it cannot
    /// bind).
    #[error("{0}")]
    Unsupported(String),
    /// A listener could not bind.
    #[error("cannot listen for {what} on {addr}: {source}")]
    Listen {
        /// What the listener is for.
        what: &'static str,
        /// The configured address.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A blocking task or thread failed.
    #[error("internal: {0}")]
    Internal(String),
}

impl DaemonError {
    /// True when the camera refused the credentials.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, DaemonError::Record(RecordError::Ingest(e)) if e.kind() == IngestErrorKind::Unauthorized)
    }
}

/// `edgenvr check-config`: prints each problem (file:line: key: what) to stderr and returns 1,
/// or prints a one-line summary to stdout and returns 0.
pub fn check_config(path: &Path) -> ExitCode {
    match config::load(path) {
        Ok(config) => {
            let plural = |n: usize| if n == 1 { "" } else { "s" };
            let (cameras, sensors) = (config.camera.len(), config.sensor.len());
            println!(
                "{}: ok ({cameras} camera{}, {sensors} sensor{})",
                path.display(),
                plural(cameras),
                plural(sensors)
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

/// `edgenvr record`: one camera, continuously, until `shutdown`; gives up on a refused password.
pub async fn record(request: RecordRequest, shutdown: Shutdown) -> Result<(), DaemonError> {
    config::check_name(&request.name).map_err(DaemonError::BadName)?;
    let source = CameraSource::new(
        &request.name,
        &request.url,
        request.password.as_deref(),
        request.transport,
    )?;
    if request.password.is_none()
        && url::Url::parse(&request.url).is_ok_and(|u| u.password().is_some())
    {
        tracing::warn!(
            "the camera password in the URL is visible to every user in `ps`; \
             EDGENVR_RTSP_PASSWORD keeps it private"
        );
    }
    let init = match (request.max_bytes, request.wrap) {
        (Some(size_bytes), wrap) => Some(InitOptions {
            size_bytes,
            slot_count: wrap,
            slot_bytes: None,
        }),
        (None, Some(slots)) => Some(InitOptions {
            size_bytes: DEFAULT_SLOT_BYTES.saturating_mul(u64::from(slots)),
            slot_count: Some(slots),
            slot_bytes: None,
        }),
        (None, None) => None,
    };
    let dir = request.dir.clone();
    let store = blocking(move || open_or_init(&dir, init)).await??;
    let writer = store.camera_writer(
        &source.name,
        writer_options(request.segment, request.sync_interval),
    )?;
    let options = IngestOptions {
        on_unauthorized: AuthFailurePolicy::GiveUp,
        ..IngestOptions::default()
    };
    let (status, _) = watch::channel(CameraStatus::Connecting);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let watcher = tokio::spawn(watch_store(store.clone(), shutdown.clone()));
    tracing::info!(
        camera = %source.name,
        url = %source.url,
        dir = %request.dir.display(),
        "recording"
    );
    let counters = record::record_continuous(
        &source,
        &options,
        writer,
        request.sync_interval,
        clock,
        shutdown,
        &status,
        Arc::default(),
    )
    .await?;
    watcher.abort();
    log_counters(&source.name, &counters, &store);
    Ok(())
}

/// How often the store checks that its directory is still the store, and whether a detached
/// store is back (see `store/attach.rs`): once a second shows an outage in the state within
/// about two seconds, for a `stat` and a `statvfs` while all is well.
const STORE_CHECK: Duration = Duration::from_secs(1);

/// Runs [`Store::check`] every [`STORE_CHECK`] until shutdown.
async fn watch_store(store: Store, shutdown: Shutdown) {
    every(STORE_CHECK, shutdown, move || {
        store.check();
    })
    .await;
}

/// Runs `work` on a blocking thread every `period` until shutdown.
async fn every(period: Duration, mut shutdown: Shutdown, work: impl Fn() + Clone + Send + 'static) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.requested() => break,
            _ = tick.tick() => {
                if tokio::task::spawn_blocking(work.clone()).await.is_err() {
                    break;
                }
            }
        }
    }
}

fn open_or_init(dir: &Path, init: Option<InitOptions>) -> Result<Store, DaemonError> {
    let is_empty_dir = std::fs::read_dir(dir)
        .map(|mut entries| entries.next().is_none())
        .unwrap_or(false);
    match init {
        Some(options) => {
            let mut last_percent = None;
            let mut progress = |p: InitProgress| {
                let percent = p.bytes_done.saturating_mul(100) / p.bytes_total.max(1);
                // One log line per 10 %: an init of a large disk takes minutes.
                if last_percent != Some(percent / 10) {
                    last_percent = Some(percent / 10);
                    tracing::info!(
                        done_bytes = p.bytes_done,
                        total_bytes = p.bytes_total,
                        "initialising store: {percent}%"
                    );
                }
            };
            Ok(Store::open_or_init(dir, &options, &mut progress)?)
        }
        None if is_empty_dir => Err(DaemonError::NoSize {
            dir: dir.to_owned(),
        }),
        None => Ok(Store::open(dir)?),
    }
}

fn writer_options(segment: Option<Duration>, sync_interval: Duration) -> WriterOptions {
    let segment_90k = segment.map(|segment| {
        i64::try_from(segment.as_millis())
            .unwrap_or(i64::MAX / i64::from(TIMESCALE_90K))
            .saturating_mul(i64::from(TIMESCALE_90K))
            / 1000
    });
    WriterOptions {
        segment_90k,
        sync_interval,
        ..WriterOptions::default()
    }
}

/// `edgenvr run`: the whole box from `config`, until `shutdown`: every camera (continuous or
/// events mode), the GPIO sensors, outputs, rules and control socket, the state bus fed by the
/// sensors and the box's health, and the TCP state port when `[state] listen` is set. A camera
/// with a refused password keeps retrying slowly (its status says why) and a sensor whose pin
/// cannot be opened is left out (logged); everything else runs on. Every task hears `shutdown`
/// and this returns once all of them have stopped and every recording is closed.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), DaemonError> {
    run_with_status(config, shutdown, |_| {}).await
}

/// Each camera's name and the receiving end of its status (connecting, streaming, retrying and
/// why, stopped).
pub type CameraStatuses = Vec<(String, watch::Receiver<CameraStatus>)>;

/// [`run`], handing every camera's status receiver to `publish` once the cameras are started
/// (tests and embedders watch why a camera is not recording).
pub async fn run_with_status(
    config: Config,
    shutdown: Shutdown,
    publish: impl FnOnce(CameraStatuses),
) -> Result<(), DaemonError> {
    let problems = crate::config::gpio::validate(&config.sensor, &config.output, &config.rule);
    if let Some(problem) = problems.first() {
        return Err(DaemonError::Unsupported(problem.to_string()));
    }
    // Clients of the state port and the HTTP API each take a descriptor; the soft default of
    // 1024 is far below what the hard limit allows.
    match crate::limits::raise_nofile_limit() {
        Ok(limit) => tracing::debug!(limit, "file descriptor limit"),
        Err(error) => tracing::warn!(%error, "cannot raise the file descriptor limit"),
    }
    let mut sources = Vec::new();
    for camera in &config.camera {
        sources.push((
            CameraSource::new(&camera.name, &camera.url, None, camera.transport)?,
            camera.clone(),
        ));
    }
    let mqtt_config = match &config.mqtt {
        Some(section) => Some(mqtt_config(section, &config.box_.name)?),
        None => None,
    };
    let dir = config.storage.dir.clone();
    let store = blocking(move || Store::open(&dir)).await??;
    store.set_event_share_percent(config.storage.event_share.0);
    let state_port = match &config.state.listen {
        Some(listen) => {
            Some(
                StatePort::bind(listen.as_str())
                    .await
                    .map_err(|e| DaemonError::Listen {
                        what: "state",
                        addr: listen.clone(),
                        source: e,
                    })?,
            )
        }
        None => None,
    };

    let bus = StateBus::new();
    let (sensor_events, _) = gpio::event_channel();
    let (output_events, output_switches) = gpio::output_channel();
    let mut tasks: JoinSet<TaskOutcome> = JoinSet::new();
    // Sensors and outputs join the catalog before their first change can happen.
    tasks.spawn(feed_sensors(
        bus.clone(),
        &config.sensor,
        sensor_events.subscribe(),
        shutdown.clone(),
    ));
    let gpio = gpio::start(
        GpioSections {
            sensors: &config.sensor,
            outputs: &config.output,
            rules: &config.rule,
            control: &config.control,
        },
        sensor_events.clone(),
        output_events.clone(),
    )
    .await
    .map_err(|e| DaemonError::Unsupported(e.to_string()))?;
    // The control socket logged `listening control PATH` when it bound.
    if let Some(outputs) = &gpio.outputs {
        tasks.spawn(feed_outputs(
            bus.clone(),
            outputs.names(),
            output_switches,
            shutdown.clone(),
        ));
    }

    let http = match &config.http {
        Some(http) => {
            Some(start_http(http, &store, &bus, gpio.outputs.clone(), shutdown.clone()).await?)
        }
        None => None,
    };
    let options = IngestOptions {
        on_unauthorized: AuthFailurePolicy::RetrySlowly,
        ..IngestOptions::default()
    };
    let segment = config.storage.segment.map(|s| s.0);
    let sync_interval = config.storage.sync_interval.0;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut cameras_health = Vec::new();
    let mut statuses = CameraStatuses::new();
    for (source, camera) in sources {
        let events_mode = camera.mode == RecordModeConfig::Events;
        let mut options_for_camera = writer_options(segment, sync_interval);
        if events_mode {
            // Events share slots across the gaps between them: a segment ends when its slot is
            // full, whatever `segment` says, so short events do not cost a slot each.
            options_for_camera.segment_90k = None;
        }
        let writer = store.camera_writer(&source.name, options_for_camera)?;
        let (status, status_rx) = watch::channel(CameraStatus::Connecting);
        let activity = Arc::new(record::CameraActivity::default());
        statuses.push((source.name.clone(), status_rx.clone()));
        cameras_health.push(CameraHealth {
            name: source.name.clone(),
            status: status_rx,
            activity: activity.clone(),
            events_mode,
        });
        let (options, clock, shutdown) = (options.clone(), clock.clone(), shutdown.clone());
        tracing::info!(camera = %source.name, url = %source.url, mode = ?camera.mode, "recording");
        if events_mode {
            let plan = record::EventPlan {
                pre_roll: camera.pre_roll.0,
                post_roll: camera.post_roll.0,
                triggers: camera.triggers.clone(),
            };
            let triggers = sensor_events.subscribe();
            tasks.spawn(async move {
                let result = record::record_events(
                    &source, &options, writer, &plan, triggers, clock, shutdown, &status, activity,
                )
                .await;
                TaskOutcome::Camera(source.name, result)
            });
        } else {
            tasks.spawn(async move {
                let result = record::record_continuous(
                    &source,
                    &options,
                    writer,
                    sync_interval,
                    clock,
                    shutdown,
                    &status,
                    activity,
                )
                .await;
                TaskOutcome::Camera(source.name, result)
            });
        }
    }

    publish(statuses);
    let (watched, stop) = (store.clone(), shutdown.clone());
    tasks.spawn(async move {
        watch_store(watched, stop).await;
        TaskOutcome::Done
    });
    let stop = shutdown.clone();
    tasks.spawn(async move {
        every(crate::malloc::TRIM_EVERY, stop, crate::malloc::trim).await;
        TaskOutcome::Done
    });
    let health = Health::register(
        &bus,
        store.clone(),
        cameras_health,
        config.storage.endurance.map(|e| e.0),
        Path::new(health::THERMAL_ROOT),
        &config.report,
    )
    .map_err(|e| DaemonError::Internal(e.to_string()))?;
    let mut stop = shutdown.clone();
    tasks.spawn(async move {
        health.run(stop.clone()).await;
        stop.requested().await;
        TaskOutcome::Done
    });
    let (timer_bus, mut stop) = (bus.clone(), shutdown.clone());
    tasks.spawn(async move {
        timer_bus
            .run_timers(async move { stop.requested().await })
            .await;
        TaskOutcome::Done
    });
    if let Some(port) = state_port {
        let (bus, mut stop) = (bus.clone(), shutdown.clone());
        let config = TcpStateConfig::new(config.box_.name.clone());
        tasks.spawn(async move {
            port.serve(bus, config, async move { stop.requested().await })
                .await;
            TaskOutcome::Done
        });
    }
    if let Some(mqtt) = mqtt_config {
        let (mqtt_bus, mut stop) = (bus.clone(), shutdown.clone());
        let outputs = gpio.outputs.clone();
        tasks.spawn(async move {
            if let Err(error) =
                crate::publish::mqtt::run(
                    mqtt_bus,
                    mqtt,
                    outputs,
                    async move { stop.requested().await },
                )
                .await
            {
                tracing::error!(%error, "MQTT publishing stopped");
            }
            TaskOutcome::Done
        });
    }

    // Cameras (and listeners) are started: tell systemd (Type=notify) and feed its watchdog
    // until the service value drops, after the last camera closed.
    let _service = crate::notify::Service::ready_from_env(
        &format!("recording {} camera(s)", config.camera.len()),
        shutdown.clone(),
    );
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(TaskOutcome::Camera(camera, Ok(counters))) => {
                log_counters(&camera, &counters, &store)
            }
            Ok(TaskOutcome::Camera(camera, Err(error))) => {
                tracing::error!(camera = %camera, "{error}");
                first_error.get_or_insert(DaemonError::Record(error));
            }
            Ok(TaskOutcome::Done) => {}
            Err(join_error) => {
                first_error.get_or_insert(DaemonError::Internal(join_error.to_string()));
            }
        }
    }
    // Cameras are closed: only now stop the pins and remove the control socket.
    gpio.shutdown().await;
    if let Some(http) = http {
        stop_http(http).await;
    }
    first_error.map_or(Ok(()), Err)
}

/// The publisher's settings from `[mqtt]`, the password read from its file.
fn mqtt_config(
    section: &config::MqttSection,
    box_name: &str,
) -> Result<crate::publish::mqtt::MqttConfig, DaemonError> {
    let mut mqtt = crate::publish::mqtt::MqttConfig::new(section.url.clone(), box_name);
    mqtt.username = section.username.clone();
    mqtt.home_assistant = section.home_assistant;
    mqtt.discovery_prefix = section.discovery_prefix.clone();
    mqtt.commands = section.commands || section.home_assistant;
    if let Some(file) = &section.password_file {
        let password = std::fs::read_to_string(file).map_err(|e| {
            DaemonError::Unsupported(format!(
                "mqtt.password_file {}: cannot read it: {e}",
                file.display()
            ))
        })?;
        // Files written by `echo` end in a newline that is not part of the password.
        mqtt.password = Some(password.trim_end_matches(['\r', '\n']).to_owned());
    }
    Ok(mqtt)
}

/// What one of `run`'s tasks ended with.
enum TaskOutcome {
    Camera(String, Result<Arc<record::WriterCounters>, RecordError>),
    Done,
}

/// Registers every `[[sensor]]` on the bus (inactive) and, until shutdown, sets each change.
fn feed_sensors(
    bus: StateBus,
    sensors: &[crate::gpio::SensorConfig],
    events: broadcast::Receiver<gpio::SensorEvent>,
    shutdown: Shutdown,
) -> impl std::future::Future<Output = TaskOutcome> + Send + 'static {
    let mut ids = Vec::new();
    for sensor in sensors {
        match bus.register(SensorSpec::binary(sensor.name.clone(), Role::Sensor)) {
            Ok(id) => {
                let _ = bus.set_now(id, SensorValue::Binary(false));
                ids.push(Some(id));
            }
            Err(error) => {
                tracing::error!(sensor = %sensor.name, %error, "not in the state");
                ids.push(None);
            }
        }
    }
    feed_binary(bus, events, shutdown, "sensor events", move |event| {
        let id = ids.get(event.index).copied().flatten()?;
        Some((id, event.triggered, event.at_wall))
    })
}

/// Registers every running `[[output]]` on the bus and, until shutdown, sets each switch.
fn feed_outputs(
    bus: StateBus,
    names: &[String],
    events: broadcast::Receiver<gpio::OutputEvent>,
    shutdown: Shutdown,
) -> impl std::future::Future<Output = TaskOutcome> + Send + 'static {
    let mut ids = std::collections::HashMap::new();
    for name in names {
        match bus.register(SensorSpec::binary(name.clone(), Role::Output)) {
            Ok(id) => {
                ids.insert(name.clone(), id);
            }
            Err(error) => tracing::error!(output = %name, %error, "not in the state"),
        }
    }
    feed_binary(bus, events, shutdown, "output switches", move |event| {
        let id = *ids.get(&*event.name)?;
        Some((id, event.on, event.at_wall))
    })
}

/// Until shutdown, sets on `bus` the binary value each event says (`read` gives the sensor,
/// level and wall time of an event, `None` for one not in the state).
async fn feed_binary<E: Clone + Send + 'static>(
    bus: StateBus,
    mut events: broadcast::Receiver<E>,
    mut shutdown: Shutdown,
    what: &'static str,
    read: impl Fn(&E) -> Option<(edgenvr_proto::SensorId, bool, std::time::SystemTime)> + Send + 'static,
) -> TaskOutcome {
    loop {
        tokio::select! {
            () = shutdown.requested() => break,
            received = events.recv() => match received {
                Ok(event) => {
                    if let Some((id, level, at_wall)) = read(&event) {
                        let time_ms = at_wall
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or_else(|_| unix_now_ms(), |d| d.as_millis() as u64);
                        let _ = bus.set(id, SensorValue::Binary(level), time_ms);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "state missed {what}");
                }
                Err(broadcast::error::RecvError::Closed) => {
                    shutdown.requested().await;
                    break;
                }
            },
        }
    }
    TaskOutcome::Done
}

/// Resolves the API token, binds `[http] listen` and serves until `shutdown`.
async fn start_http(
    http: &HttpConfig,
    store: &Store,
    bus: &StateBus,
    outputs: Option<gpio::OutputControl>,
    mut shutdown: Shutdown,
) -> Result<tokio::task::JoinHandle<()>, DaemonError> {
    let (config, dir) = (http.clone(), store.dir().to_owned());
    let (token, source) = blocking(move || serve::resolve_token(&config, &dir))
        .await?
        .map_err(|e| DaemonError::Http(e.to_string()))?;
    tracing::info!(token_from = %source, "http API token");
    let server = HttpServer::bind(http.listen, store.clone(), token)
        .await
        .map_err(|e| DaemonError::Http(format!("cannot listen on {}: {e}", http.listen)))?
        .with_outputs(outputs)
        .with_live_state(bus.clone())
        .with_ui(http.ui);
    Ok(tokio::spawn(async move {
        if let Err(error) = server
            .serve(async move { shutdown.requested().await })
            .await
        {
            tracing::error!(%error, "http API stopped");
        }
    }))
}

/// Waits for the HTTP API to finish the requests in flight after shutdown, but not for ever: a
/// client pulling a long clip over a slow link must not hold the box's exit.
async fn stop_http(http: tokio::task::JoinHandle<()>) {
    // Five seconds: enough for a listing or the end of a short clip; systemd waits 90 s.
    const HTTP_DRAIN: Duration = Duration::from_secs(5);
    let abort = http.abort_handle();
    if tokio::time::timeout(HTTP_DRAIN, http).await.is_err() {
        tracing::warn!("http API: downloads still running at shutdown were cut off");
        abort.abort();
    }
}

/// The close line: what this run did with the camera's GOPs (`assembled_gops == written_gops +
/// dropped_gops + failed_gops + not_recorded_gops`, `written_gops` equals
/// `store_written_since_open`), and what the store holds of the camera
/// (`store_written == store_listed + store_overwritten`: nothing left silently).
fn log_counters(camera: &str, counters: &record::WriterCounters, store: &Store) {
    use std::sync::atomic::Ordering::Relaxed;
    let totals = store
        .camera_totals()
        .into_iter()
        .find(|t| t.camera == camera);
    let total = |f: fn(&crate::store::CameraTotals) -> u64| totals.as_ref().map_or(0, f);
    let unaccounted_gops = counters.unaccounted_gops();
    if unaccounted_gops != 0 {
        tracing::warn!(
            camera,
            unaccounted_gops,
            "GOPs neither written nor counted as dropped, failed or not recorded"
        );
    }
    tracing::info!(
        camera,
        frames_received = counters.frames_received.load(Relaxed),
        assembled_gops = counters.assembled_gops.load(Relaxed),
        written_gops = counters.written_gops.load(Relaxed),
        dropped_gops = counters.dropped_gops.load(Relaxed),
        failed_gops = counters.failed_gops.load(Relaxed),
        not_recorded_gops = counters.not_recorded_gops.load(Relaxed),
        unaccounted_gops,
        store_status = store.status().name(),
        store_outages = store.outages(),
        store_written_since_open = total(|t| t.written_since_open),
        store_overwritten_since_open = total(|t| t.overwritten_since_open),
        store_written = total(|t| t.fragments_written),
        store_listed = total(|t| t.fragments_listed),
        store_overwritten = total(|t| t.fragments_overwritten),
        "recording closed"
    );
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, DaemonError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| DaemonError::Internal(e.to_string()))
}
