//! The `edgenvr` command line: argument types and dispatch. `main.rs` only calls [`main`].
//!
//! Each subcommand's logic lives in its module; this file maps arguments onto it and errors onto
//! exit codes.

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
    /// Provision, check and list a recording store.
    Store(crate::store::cli::StoreArgs),
}

/// Runs the command line and returns the process exit code.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Store(args) => {
            crate::store::cli::run(args, &mut std::io::stdout(), &mut std::io::stderr())
        }
    };
    exit_code(result)
}

/// Prints an error with its context chain and maps it to exit code 1.
fn exit_code(result: anyhow::Result<std::process::ExitCode>) -> std::process::ExitCode {
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("edgenvr: error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
