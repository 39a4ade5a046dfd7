//! The `nvrctl` command line: argument types and dispatch; errors become messages and exit codes
//! here.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::client::with_default_port;
use crate::http::{default_config_path, resolve_token, BoxClient, TOKEN_ENV};
use crate::mqtt_watch::watch_mqtt;
use crate::pull::{pull, ClipSelector, PullRequest};
use crate::recordings::{fetch, write_table, RecordingsQuery};
use crate::times::parse_time_ms;
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
    /// Print every sensor's current value once (table, or JSON with --json), of one box or
    /// several (read at once, shown grouped by box).
    State {
        /// The boxes' state ports, HOST[:PORT] (default port 7420).
        #[arg(required = true, value_name = "TARGET")]
        targets: Vec<String>,
        /// JSON instead of a table (several boxes: {"boxes": [...]}).
        #[arg(long)]
        json: bool,
    },
    /// Follow the state of one box or several live: a refreshing table per box with its link
    /// status on a terminal, JSON lines when piped or with --json. Reconnects on its own.
    Watch {
        /// The boxes' state ports, HOST[:PORT] (default port 7420).
        #[arg(
            required_unless_present = "mqtt",
            conflicts_with = "mqtt",
            value_name = "TARGET"
        )]
        targets: Vec<String>,
        /// Every box on an MQTT broker instead: mqtt://broker[:port].
        #[arg(long, value_name = "URL")]
        mqtt: Option<String>,
        /// JSON lines even on a terminal.
        #[arg(long)]
        json: bool,
    },
    /// Switch an output (a light, a relay) of a box through its HTTP API. `on` holds until
    /// `off`; `on --for 30s` for 30 s, then the box's rules decide again; `off` switches off
    /// until a rule triggers anew; `off --for 10m` keeps it off for 10 minutes.
    Set {
        /// The box's HTTP API, HOST[:PORT] (default port 7421).
        target: String,
        /// The output's name ([[output]] name).
        output: String,
        /// on or off.
        #[arg(value_parser = ["on", "off"])]
        state: String,
        /// For how long ("30s", "5m"); see above.
        #[arg(long = "for", value_name = "DURATION", value_parser = humantime::parse_duration)]
        duration: Option<std::time::Duration>,
        #[command(flatten)]
        token: TokenArgs,
    },
    /// Turn a captured byte stream of frames into JSON lines, reporting damaged frames and
    /// where decoding resynchronised.
    Decode {
        /// The capture; `-` or nothing for standard input.
        file: Option<PathBuf>,
    },
    /// List a box's recordings: time ranges with the gaps between them, and events.
    Recordings {
        /// The box's HTTP API, HOST[:PORT] (default port 7421).
        target: String,
        /// Only this camera.
        #[arg(long)]
        camera: Option<String>,
        /// Only what ends after this time (RFC 3339, "YYYY-MM-DD HH:MM[:SS]", "HH:MM", "-5m").
        #[arg(long)]
        from: Option<String>,
        /// Only what starts before this time (same forms as --from).
        #[arg(long)]
        to: Option<String>,
        /// The box's JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        token: TokenArgs,
    },
    /// Download one camera's video from --from to --to as one MP4 (resumes an interrupted
    /// download of the same clip when run again).
    Pull {
        /// The box's HTTP API, HOST[:PORT] (default port 7421).
        target: String,
        /// The camera (required with --from/--to; with --event, checked against the event's).
        #[arg(long, required_unless_present = "event")]
        camera: Option<String>,
        /// Start (RFC 3339, "YYYY-MM-DD HH:MM[:SS]", "HH:MM" today, "-5m"); the clip starts at
        /// the key frame at or before it.
        #[arg(long, required_unless_present = "event", conflicts_with = "event")]
        from: Option<String>,
        /// End (same forms as --from); the clip ends at or after it.
        #[arg(long, required_unless_present = "event", conflicts_with = "event")]
        to: Option<String>,
        /// One event's video, pre-roll to post-roll, by the id `nvrctl recordings` shows.
        #[arg(long)]
        event: Option<u64>,
        /// The file to write (FILE.part while downloading).
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
        #[command(flatten)]
        token: TokenArgs,
    },
}

/// Where the HTTP API token comes from.
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// The box's API token (else EDGENVR_TOKEN, else `token` in ~/.config/nvrctl/config.toml).
    #[arg(long)]
    token: Option<String>,
}

impl TokenArgs {
    fn client(&self, target: &str) -> anyhow::Result<BoxClient> {
        let env = std::env::var(TOKEN_ENV).ok();
        let config = default_config_path();
        let token = resolve_token(self.token.as_deref(), env.as_deref(), config.as_deref())?;
        Ok(BoxClient::new(target, token))
    }
}

fn parse_time_arg(name: &str, text: &str, now: &jiff::Zoned) -> anyhow::Result<i64> {
    parse_time_ms(text, now).with_context(|| format!("--{name}"))
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
        Command::State { targets, json } => {
            let targets: Vec<String> = targets.iter().map(|t| with_default_port(t)).collect();
            match state(&targets, json, &mut stdout) {
                Err(WatchError::Output(error)) if error.kind() == io::ErrorKind::BrokenPipe => {
                    Ok(())
                }
                other => other.with_context(|| format!("state of {}", targets.join(", "))),
            }
        }
        Command::Set {
            target,
            output,
            state,
            duration,
            token,
        } => {
            let client = token.client(&target)?;
            let report = crate::set::set_output(&client, &output, state == "on", duration)
                .with_context(|| format!("switching {output} on {}", client.base()))?;
            let until = report
                .until
                .map(|until| format!(" until {until}"))
                .unwrap_or_default();
            writeln!(
                stdout,
                "{} is {}{until}",
                report.output,
                if report.on { "on" } else { "off" }
            )?;
            Ok(())
        }
        Command::Watch {
            targets,
            mqtt,
            json,
        } => {
            let output = if json || !io::stdout().is_terminal() {
                WatchOutput::JsonLines
            } else {
                WatchOutput::Table
            };
            let mut stderr = io::stderr();
            match mqtt {
                Some(url) => watch_mqtt(&url, output, &mut stdout, &mut stderr)
                    .with_context(|| format!("watching {url}")),
                None if targets.is_empty() => {
                    anyhow::bail!("watch needs HOST[:PORT] or --mqtt URL")
                }
                None => {
                    let targets: Vec<String> =
                        targets.iter().map(|t| with_default_port(t)).collect();
                    watch(&targets, output, &mut stdout, &mut stderr)
                        .with_context(|| format!("watching {}", targets.join(", ")))
                }
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
        Command::Recordings {
            target,
            camera,
            from,
            to,
            json,
            token,
        } => {
            let now = jiff::Zoned::now();
            let query = RecordingsQuery {
                camera,
                from_ms: from.map(|t| parse_time_arg("from", &t, &now)).transpose()?,
                to_ms: to.map(|t| parse_time_arg("to", &t, &now)).transpose()?,
            };
            if let (Some(from), Some(to)) = (query.from_ms, query.to_ms) {
                anyhow::ensure!(from <= to, "--from is after --to");
            }
            let client = token.client(&target)?;
            let listing = fetch(&client, &query)
                .with_context(|| format!("recordings of {}", client.base()))?;
            let written = if json {
                serde_json::to_writer_pretty(&mut stdout, &listing)
                    .map_err(io::Error::from)
                    .and_then(|()| writeln!(stdout))
            } else {
                write_table(&listing, now.time_zone(), &mut stdout)
            };
            match written {
                Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(()),
                other => Ok(other?),
            }
        }
        Command::Pull {
            target,
            camera,
            from,
            to,
            event,
            output,
            token,
        } => {
            let now = jiff::Zoned::now();
            let clip = match (event, camera, from, to) {
                (Some(id), camera, _, _) => ClipSelector::Event { id, camera },
                (None, Some(camera), Some(from), Some(to)) => {
                    let (from_ms, to_ms) = (
                        parse_time_arg("from", &from, &now)?,
                        parse_time_arg("to", &to, &now)?,
                    );
                    anyhow::ensure!(from_ms <= to_ms, "--from is after --to");
                    ClipSelector::Range {
                        camera,
                        from_ms,
                        to_ms,
                    }
                }
                _ => anyhow::bail!("pull needs --camera, --from and --to, or --event ID"),
            };
            let request = PullRequest {
                clip,
                output,
                progress: io::stderr().is_terminal(),
            };
            let client = token.client(&target)?;
            let report = pull(&client, &request)
                .with_context(|| format!("pulling a clip from {}", client.base()))?;
            let resumed = if report.resumed_from > 0 {
                format!(", resumed at byte {}", report.resumed_from)
            } else {
                String::new()
            };
            eprintln!(
                "{}: {} bytes, {} to {}{resumed}",
                request.output.display(),
                report.total_bytes,
                report.clip_start.as_deref().unwrap_or("?"),
                report.clip_end.as_deref().unwrap_or("?"),
            );
            if let Some(why) = &report.truncated {
                eprintln!("nvrctl: warning: the clip ends early at {why}");
            }
            Ok(())
        }
    }
}
