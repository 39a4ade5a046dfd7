//! The logic of `edgenvr check-config`, `edgenvr record` and `edgenvr run`, callable in-process
//! (tests drive it without spawning the binary); `cli` only parses arguments and maps results to
//! exit codes.

use std::path::Path;
use std::process::ExitCode;

use crate::config;

/// `edgenvr check-config`: prints each problem (file:line: key: what) to stderr and returns 1,
/// or prints a one-line summary to stdout and returns 0.
pub fn check_config(path: &Path) -> ExitCode {
    match config::load(path) {
        Ok(config) => {
            println!(
                "{}: ok ({} camera{})",
                path.display(),
                config.camera.len(),
                if config.camera.len() == 1 { "" } else { "s" }
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}
