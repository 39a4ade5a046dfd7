//! The logic of `edgenvr check-config`, `edgenvr record` and `edgenvr run`, callable in-process
//! (tests drive it without spawning the binary); `cli` only parses arguments, installs the signal
//! handlers and maps results to exit codes.
//!
//! `record` and `run` open the store on a blocking thread, start one task per camera (and, for
//! `run` with `[http]`, the HTTP API of [`crate::serve`]) on the
//! caller's tokio runtime ([`crate::record::record_continuous`]), and return once every camera
//! has stopped and closed its recording (after the shutdown signal, or when `record` gives up on
//! a refused password).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::{self, Config, ConfigError, HttpConfig, RecordModeConfig};
use crate::ingest::{
    AuthFailurePolicy, CameraSource, CameraStatus, IngestErrorKind, IngestOptions, SourceError,
    Transport,
};
use crate::media::TIMESCALE_90K;
use crate::record::{self, RecordError};
use crate::serve::{self, HttpServer};
use crate::shutdown::Shutdown;
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
    /// Target segment length.
    pub segment: Duration,
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
    /// The HTTP API could not start (token, or the listen address).
    #[error("http: {0}")]
    Http(String),
    /// Something the box cannot do yet.
    #[error("{0}")]
    Unsupported(String),
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
            println!(
                "{}: ok ({} camera{})",
                path.display(),
                config.camera.len(),
                if config.camera.len() == 1 { "" } else { "s" }
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
    let source = CameraSource::new(
        &request.name,
        &request.url,
        request.password.as_deref(),
        request.transport,
    )?;
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
    )
    .await?;
    log_counters(&source.name, &counters);
    Ok(())
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

fn writer_options(segment: Duration, sync_interval: Duration) -> WriterOptions {
    let segment_90k = i64::try_from(segment.as_millis())
        .unwrap_or(i64::MAX / i64::from(TIMESCALE_90K))
        .saturating_mul(i64::from(TIMESCALE_90K))
        / 1000;
    WriterOptions {
        segment_90k,
        sync_interval,
        ..WriterOptions::default()
    }
}

/// `edgenvr run`: every camera of `config`, until `shutdown`. A camera with a refused password
/// keeps retrying slowly (its status says why); the others record on.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), DaemonError> {
    if let Some(camera) = config
        .camera
        .iter()
        .find(|c| c.mode == RecordModeConfig::Events)
    {
        return Err(DaemonError::Unsupported(format!(
            "camera {}: mode = \"events\" needs sensor triggers, which this build does not wire yet",
            camera.name
        )));
    }
    let mut sources = Vec::new();
    for camera in &config.camera {
        sources.push(CameraSource::new(
            &camera.name,
            &camera.url,
            None,
            camera.transport,
        )?);
    }
    let dir = config.storage.dir.clone();
    let store = blocking(move || Store::open(&dir)).await??;
    let http = match &config.http {
        Some(http) => Some(start_http(http, &store, shutdown.clone()).await?),
        None => None,
    };
    let options = IngestOptions {
        on_unauthorized: AuthFailurePolicy::RetrySlowly,
        ..IngestOptions::default()
    };
    let segment = config.storage.segment.0;
    let sync_interval = config.storage.sync_interval.0;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut tasks = tokio::task::JoinSet::new();
    for source in sources {
        let writer = store.camera_writer(&source.name, writer_options(segment, sync_interval))?;
        let (options, clock, shutdown) = (options.clone(), clock.clone(), shutdown.clone());
        tracing::info!(camera = %source.name, url = %source.url, "recording");
        tasks.spawn(async move {
            let (status, _) = watch::channel(CameraStatus::Connecting);
            let result = record::record_continuous(
                &source,
                &options,
                writer,
                sync_interval,
                clock,
                shutdown,
                &status,
            )
            .await;
            (source.name, result)
        });
    }
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((camera, Ok(counters))) => log_counters(&camera, &counters),
            Ok((camera, Err(error))) => {
                tracing::error!(camera = %camera, "{error}");
                first_error.get_or_insert(DaemonError::Record(error));
            }
            Err(join_error) => {
                first_error.get_or_insert(DaemonError::Internal(join_error.to_string()));
            }
        }
    }
    if let Some(http) = http {
        stop_http(http).await;
    }
    first_error.map_or(Ok(()), Err)
}

/// Resolves the API token, binds `[http] listen` and serves until `shutdown`.
async fn start_http(
    http: &HttpConfig,
    store: &Store,
    mut shutdown: Shutdown,
) -> Result<tokio::task::JoinHandle<()>, DaemonError> {
    let (config, dir) = (http.clone(), store.dir().to_owned());
    let (token, source) = blocking(move || serve::resolve_token(&config, &dir))
        .await?
        .map_err(|e| DaemonError::Http(e.to_string()))?;
    tracing::info!(token_from = %source, "http API token");
    let server = HttpServer::bind(http.listen, store.clone(), token)
        .await
        .map_err(|e| DaemonError::Http(format!("cannot listen on {}: {e}", http.listen)))?;
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

fn log_counters(camera: &str, counters: &record::WriterCounters) {
    use std::sync::atomic::Ordering::Relaxed;
    tracing::info!(
        camera,
        written_gops = counters.written_gops.load(Relaxed),
        dropped_gops = counters.dropped_gops.load(Relaxed),
        failed_gops = counters.failed_gops.load(Relaxed),
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
