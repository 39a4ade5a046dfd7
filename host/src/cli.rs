//! The `nvrctl` command line: argument types and dispatch.

use clap::{Parser, Subcommand};

/// nvrctl: watch an edgenvr box's state live and pull clips from it.
#[derive(Debug, Parser)]
#[command(name = "nvrctl", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {}

/// Runs the command line and returns the process exit code.
pub fn main() -> std::process::ExitCode {
    let _cli = Cli::parse();
    std::process::ExitCode::SUCCESS
}
