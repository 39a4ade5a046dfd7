//! The `nvrctl` command line: argument types and dispatch; errors become messages and exit codes
//! here.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::client::with_default_port;
use crate::mqtt_watch::watch_mqtt;
use crate::watch::{state, watch, WatchError, WatchOutput};

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
pub enum Command {
    /// Print every sensor's current value once (table, or JSON with --json).
    State {
        /// The box's state port, HOST[:PORT] (default port 7420).
        target: String,
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Follow a box's state live: a refreshing table on a terminal, JSON lines when piped or
    /// with --json. Reconnects on its own.
    Watch {
        /// The box's state port, HOST[:PORT] (default port 7420).
        #[arg(required_unless_present = "mqtt", conflicts_with = "mqtt")]
        target: Option<String>,
        /// Every box on an MQTT broker instead: mqtt://broker[:port].
        #[arg(long, value_name = "URL")]
        mqtt: Option<String>,
        /// JSON lines even on a terminal.
        #[arg(long)]
        json: bool,
    },
    /// Turn a captured byte stream of frames into JSON lines, reporting damaged frames and
    /// where decoding resynchronised.
    Decode {
        /// The capture; `-` or nothing for standard input.
        file: Option<PathBuf>,
    },
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("nvrctl: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut stdout = io::stdout().lock();
    match cli.command {
        Command::State { target, json } => {
            let target = with_default_port(&target);
            match state(&target, json, &mut stdout) {
                Err(WatchError::Output(error)) if error.kind() == io::ErrorKind::BrokenPipe => {
                    Ok(())
                }
                other => other.with_context(|| format!("state of {target}")),
            }
        }
        Command::Watch { target, mqtt, json } => {
            let output = if json || !io::stdout().is_terminal() {
                WatchOutput::JsonLines
            } else {
                WatchOutput::Table
            };
            let mut stderr = io::stderr();
            match (mqtt, target) {
                (Some(url), _) => watch_mqtt(&url, output, &mut stdout, &mut stderr)
                    .with_context(|| format!("watching {url}")),
                (None, Some(target)) => {
                    let target = with_default_port(&target);
                    watch(&target, output, &mut stdout, &mut stderr)
                        .with_context(|| format!("watching {target}"))
                }
                (None, None) => anyhow::bail!("watch needs HOST[:PORT] or --mqtt URL"),
            }
        }
        Command::Decode { file } => {
            let mut input: Box<dyn io::Read> = match &file {
                Some(path) if path.as_os_str() != "-" => Box::new(io::BufReader::new(
                    std::fs::File::open(path)
                        .with_context(|| format!("cannot open {}", path.display()))?,
                )),
                _ => Box::new(io::stdin().lock()),
            };
            match crate::decode::decode(&mut input, &mut stdout) {
                Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(()),
                other => other.map(|_| ()).context("decoding"),
            }?;
            stdout.flush().ok();
            Ok(())
        }
    }
}
