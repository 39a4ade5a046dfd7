//! The `edgenvr` command line: argument types and dispatch. `main.rs` only calls [`main`].
//!
//! Each subcommand's logic lives in its module; this file maps arguments onto it and errors onto
//! exit codes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::config::DEFAULT_CONFIG_PATH;
use crate::daemon::{DaemonError, RecordRequest};
use crate::ingest::Transport;
use crate::shutdown::{Shutdown, ShutdownTrigger};

/// edgenvr: an edge video recorder for Raspberry Pi-class boards.
#[derive(Debug, Parser)]
#[command(name = "edgenvr", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Record one camera continuously into DIR until SIGINT/SIGTERM (the ffmpeg segment
    /// one-liner, done right). The password may come from EDGENVR_RTSP_PASSWORD instead of URL.
    Record {
        /// rtsp://[user[:password]@]host[:port]/path
        url: String,
        /// The store directory; an empty one is initialised (needs --max-bytes or --wrap).
        #[arg(long)]
        dir: PathBuf,
        /// End each segment after this long even when its slot has room for more (default: a
        /// segment fills its slot, so the store holds as much video as its bytes allow).
        #[arg(long, value_parser = humantime::parse_duration)]
        segment: Option<Duration>,
        /// Size of a new store, e.g. 8GiB.
        #[arg(long, value_parser = crate::config::parse_size, conflicts_with = "wrap")]
        max_bytes: Option<u64>,
        /// Number of slots (segments) of a new store, like ffmpeg's -segment_wrap.
        #[arg(long)]
        wrap: Option<u32>,
        /// Camera name in the store.
        #[arg(long, default_value = "camera")]
        name: String,
        /// RTP transport: tcp (interleaved) or udp.
        #[arg(long, default_value = "tcp")]
        transport: Transport,
        /// Longest time written video stays unsynced (bound on loss at a power cut).
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        sync_interval: Duration,
    },
    /// Record every camera of the config until SIGINT/SIGTERM.
    Run {
        /// The config file.
        #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Check a config file without touching the store or the pins; exit 0 when it is usable.
    CheckConfig {
        /// The config file.
        #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Provision, check and list a recording store.
    Store(crate::store::cli::StoreArgs),
    /// Serve an H.264 test clip over RTSP in a loop, as a stand-in for an IP camera.
    ///
    /// Every path plays the clip from its first key frame for each client, in real time, with
    /// timestamps that keep increasing across the loop point. Runs until SIGINT or SIGTERM.
    SimCamera {
        /// Address to listen on (port 0 picks a free port; the log line `listening rtsp
        /// ADDR:PORT` says which).
        #[arg(long, default_value = crate::simcam::DEFAULT_LISTEN)]
        listen: std::net::SocketAddr,
        /// A stream path, served at rtsp://ADDR:PORT/PATH; repeat for several (default: stream).
        #[arg(long = "path", value_name = "PATH")]
        paths: Vec<String>,
        /// An Annex-B H.264 file to serve instead of the built-in clip (640x360, 25 fps, 12 s).
        #[arg(long, value_name = "FILE")]
        clip: Option<PathBuf>,
        /// Play a broken camera (fault tests): silent, garbage-rtp, bad-sdp, oversized, ts-jump,
        /// ts-back or sps-change.
        #[arg(long, value_enum, hide = true)]
        fault: Option<crate::simcam::Fault>,
    },
    /// Set or read simulated pins of the running box (through `[control] socket`).
    Sim(crate::gpio::sim_cli::SimArgs),
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The box alone: a short command has no memory to keep from creeping.
    let restart = match cli.command {
        Command::Run { .. } => Some(crate::malloc::restart_with_tunables()),
        _ => None,
    };
    crate::malloc::tune();
    init_logging();
    if let Some(restart) = restart {
        crate::malloc::log_setup(restart);
    }
    match cli.command {
        Command::Sim(args) => crate::gpio::sim_cli::main(args),
        Command::SimCamera {
            listen,
            paths,
            clip,
            fault,
        } => run_until_signal(|mut shutdown| async move {
            let clip = match clip {
                Some(path) => crate::simcam::Clip::from_file(&path)
                    .with_context(|| format!("cannot serve clip {}", path.display()))?,
                None => crate::simcam::Clip::embedded().context("the built-in clip")?,
            };
            let config = crate::simcam::SimCameraConfig {
                listen,
                paths,
                clip,
                fault,
            };
            let camera = crate::simcam::SimCamera::bind(config).await?;
            camera.run(async move { shutdown.requested().await }).await;
            Ok(())
        }),
        Command::CheckConfig { config } => crate::daemon::check_config(&config),
        Command::Store(args) => exit_code(crate::store::cli::run(
            args,
            &mut std::io::stdout(),
            &mut std::io::stderr(),
        )),
        Command::Record {
            url,
            dir,
            segment,
            max_bytes,
            wrap,
            name,
            transport,
            sync_interval,
        } => {
            let request = RecordRequest {
                url,
                password: std::env::var(PASSWORD_ENV).ok(),
                dir,
                segment,
                max_bytes,
                wrap,
                name,
                transport,
                sync_interval,
            };
            run_until_signal(|shutdown| async {
                Ok(crate::daemon::record(request, shutdown).await?)
            })
        }
        Command::Run { config } => match crate::config::load(&config) {
            Ok(config) => run_until_signal(|shutdown| async {
                Ok(crate::daemon::run(config, shutdown).await?)
            }),
            Err(error) => {
                eprintln!("{error}");
                ExitCode::FAILURE
            }
        },
    }
}

/// The environment variable `record` reads a camera password from (keeps it out of `ps`).
pub const PASSWORD_ENV: &str = "EDGENVR_RTSP_PASSWORD";

/// Exit code when the camera refused the credentials.
pub const EXIT_UNAUTHORIZED: u8 = 3;

/// Runs `work` on a current-thread runtime (one runtime, as DESIGN.md measured) with SIGINT and
/// SIGTERM wired to its shutdown signal; maps its result to an exit code.
fn run_until_signal<F>(work: impl FnOnce(Shutdown) -> F) -> ExitCode
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("edgenvr: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let (trigger, shutdown) = ShutdownTrigger::new();
        let work = work(shutdown);
        tokio::pin!(work);
        tokio::select! {
            result = &mut work => result,
            signal = trigger.on_signals() => {
                match signal {
                    Ok(name) => tracing::info!("{name}: closing recordings"),
                    Err(e) => tracing::error!("cannot watch for signals ({e}); stopping"),
                }
                work.await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("edgenvr: {error:#}");
            if error
                .downcast_ref::<DaemonError>()
                .is_some_and(DaemonError::is_unauthorized)
            {
                ExitCode::from(EXIT_UNAUTHORIZED)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Prints an error with its context chain and maps it to exit code 1.
fn exit_code(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("edgenvr: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr with a `RUST_LOG`-style filter, `info` by default.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
