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
    /// Set or read simulated pins of the running box (through `[control] socket`).
    Sim(crate::gpio::sim_cli::SimArgs),
}

/// Runs the command line and returns the process exit code.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Sim(args) => crate::gpio::sim_cli::main(args),
    }
}
