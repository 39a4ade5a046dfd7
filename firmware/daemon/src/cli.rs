//! The `edgenvr` command line: argument types and dispatch. `main.rs` only calls [`main`].
//!
//! Each subcommand's logic lives in its module; this file maps arguments onto it and errors onto
//! exit codes.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

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
    /// Serve an H.264 test clip over RTSP in a loop, as a stand-in for an IP camera.
    ///
    /// Every path plays the clip from its first key frame for each client, in real time, with
    /// timestamps that keep increasing across the loop point. Runs until SIGINT or SIGTERM.
    SimCamera {
        /// Address to listen on (port 0 picks a free port; the log line `listening rtsp
        /// ADDR:PORT` says which).
        #[arg(long, default_value = crate::simcam::DEFAULT_LISTEN)]
        listen: SocketAddr,
        /// A stream path, served at rtsp://ADDR:PORT/PATH; repeat for several (default: stream).
        #[arg(long = "path", value_name = "PATH")]
        paths: Vec<String>,
        /// An Annex-B H.264 file to serve instead of the built-in clip (640x360, 25 fps, 12 s).
        #[arg(long, value_name = "FILE")]
        clip: Option<PathBuf>,
    },
}

/// Runs the command line and returns the process exit code.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgenvr: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::SimCamera {
            listen,
            paths,
            clip,
        } => {
            let clip = match clip {
                Some(path) => crate::simcam::Clip::from_file(&path)
                    .with_context(|| format!("cannot serve clip {}", path.display()))?,
                None => crate::simcam::Clip::embedded().context("the built-in clip")?,
            };
            let runtime = runtime()?;
            runtime.block_on(async {
                let camera = crate::simcam::SimCamera::bind(crate::simcam::SimCameraConfig {
                    listen,
                    paths,
                    clip,
                })
                .await?;
                camera.run(shutdown_signal()?).await;
                Ok(())
            })
        }
    }
}

/// One current-thread runtime: the box's tasks are I/O-bound and small boards have few cores.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Completes on the first SIGINT or SIGTERM.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT: stopping"),
            _ = terminate.recv() => tracing::info!("SIGTERM: stopping"),
        }
    })
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`); colours only on a terminal, so log
/// lines stay greppable in files and tests.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
