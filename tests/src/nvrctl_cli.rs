//! The real `nvrctl` binary, run as a user would: with the HTTP token from the environment and
//! no user config file (so nothing on the machine lends the tests a token).

use std::process::{Command, Output};

use crate::bins;

/// Runs `nvrctl ARGS` with `EDGENVR_TOKEN` set to `token` (or unset), and returns its output.
pub fn nvrctl(args: &[&str], token: Option<&str>) -> std::io::Result<Output> {
    let mut command = Command::new(bins::nvrctl());
    command.args(args).env_remove("EDGENVR_TOKEN");
    command.env("XDG_CONFIG_HOME", "/nonexistent");
    if let Some(token) = token {
        command.env("EDGENVR_TOKEN", token);
    }
    command.output()
}
