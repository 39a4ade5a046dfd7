//! The `edgenvr` command line: argument types and dispatch. `main.rs` only calls [`main`].
//!
//! Each subcommand's logic lives in its module; this file maps arguments onto it and errors onto
//! exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::DEFAULT_CONFIG_PATH;

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
    /// Check a config file without touching the store or the pins; exit 0 when it is usable.
    CheckConfig {
        /// The config file.
        #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Provision, check and list a recording store.
    Store(crate::store::cli::StoreArgs),
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::CheckConfig { config } => crate::daemon::check_config(&config),
        Command::Store(args) => exit_code(crate::store::cli::run(
            args,
            &mut std::io::stdout(),
            &mut std::io::stderr(),
        )),
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
        .init();
}
