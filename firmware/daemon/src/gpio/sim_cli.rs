//! `edgenvr sim set NAME high|low` and `edgenvr sim get NAME`: the command-line side of the
//! control socket.
//!
//! Receives the parsed arguments; reads only `[control] socket` from the config file (the rest of
//! the file is the box's business, so a config this command does not fully understand still
//! works); sends one [`Request`] and prints the reply. Exit codes: 0 done, 1 the box refused
//! (e.g. unknown name), 3 the config or the box could not be reached (2 is clap's usage error).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};

use super::control::{self, Reply, Request};
use crate::config::gpio::ControlConfig;

/// The config file read when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/edgenvr/config.toml";

/// `edgenvr sim ...`: set or read simulated pins of the running box.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: SimAction,
    /// The box's config file (for `[control] socket`) [default: /etc/edgenvr/config.toml].
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// A sim action.
#[derive(Debug, Subcommand)]
pub enum SimAction {
    /// Set a simulated sensor's raw pin level (`active_low` applies on top, as for a real pin).
    Set {
        /// The sensor's name.
        name: String,
        /// The raw level.
        level: Level,
    },
    /// Print a simulated sensor's or output's raw pin level.
    Get {
        /// The sensor's or output's name.
        name: String,
    },
}

/// A raw pin level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Level {
    /// 3.3 V.
    High,
    /// 0 V.
    Low,
}

/// Finds the control socket for `config`: its `[control] socket`, or the default. A missing
/// default config file is fine (the default socket is used); a missing named file is not.
pub fn socket_for_config(config: Option<&Path>) -> anyhow::Result<PathBuf> {
    let (path, required) = match config {
        Some(path) => (path, true),
        None => (Path::new(DEFAULT_CONFIG), false),
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(control::default_socket_path());
        }
        Err(e) => return Err(e).with_context(|| format!("reading config {}", path.display())),
    };
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing config {}", path.display()))?;
    let control_config = match table.get("control") {
        Some(value) => ControlConfig::deserialize(value.clone())
            .with_context(|| format!("config {}: [control]", path.display()))?,
        None => ControlConfig::default(),
    };
    Ok(control::socket_path(&control_config))
}

use serde::Deserialize as _;

/// Runs `edgenvr sim` and returns the exit code; prints the result or the error.
pub fn main(args: SimArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("edgenvr sim: cannot start the runtime: {e}");
            return ExitCode::from(3);
        }
    };
    let outcome = runtime.block_on(async {
        let socket = socket_for_config(args.config.as_deref())?;
        let request = match &args.action {
            SimAction::Set { name, level } => Request::Set {
                name: name.clone(),
                high: *level == Level::High,
            },
            SimAction::Get { name } => Request::Get { name: name.clone() },
        };
        anyhow::Ok(control::request(&socket, &request).await?)
    });
    match outcome {
        Ok(Reply::Ok(None)) => ExitCode::SUCCESS,
        Ok(Reply::Ok(Some(high))) => {
            println!("{}", if high { "high" } else { "low" });
            ExitCode::SUCCESS
        }
        Ok(Reply::Err(message)) => {
            eprintln!("edgenvr sim: {message}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("edgenvr sim: {e:#}");
            ExitCode::from(3)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_comes_from_the_control_section_and_other_sections_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            "[box]\nname = \"x\"\n[control]\nsocket = \"/tmp/edgenvr-test.sock\"\n",
        )
        .unwrap();
        assert_eq!(
            socket_for_config(Some(&config)).unwrap(),
            PathBuf::from("/tmp/edgenvr-test.sock")
        );
        std::fs::write(&config, "[box]\nname = \"x\"\n").unwrap();
        assert_eq!(
            socket_for_config(Some(&config)).unwrap(),
            control::default_socket_path()
        );
        std::fs::write(&config, "[control]\nsockett = \"/x\"\n").unwrap();
        let err = format!("{:#}", socket_for_config(Some(&config)).unwrap_err());
        assert!(err.contains("unknown field `sockett`"), "{err}");
        let missing = dir.path().join("missing.toml");
        let err = format!("{:#}", socket_for_config(Some(&missing)).unwrap_err());
        assert!(
            err.contains("reading config") && err.contains("missing.toml"),
            "{err}"
        );
    }
}
