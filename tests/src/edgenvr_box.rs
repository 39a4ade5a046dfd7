//! The real `edgenvr` box driven through its command line, as an installer or operator would:
//! `store init`, `run --config` and `record URL --dir DIR` as a [`Process`] with its stderr log
//! captured, and `sim set` for simulated sensors. Each call runs the built binary from [`crate::bins`] and blocks until it
//! exits (except `run` and `record`, which return the running process).

use std::path::Path;

use anyhow::Context;

use crate::bins;
use crate::process::{run, Process};

/// `edgenvr store init STORE EXTRA_ARGS...` (e.g. `["--size", "16MiB", "--slots", "8"]`);
/// fails with its output when it exits unsuccessfully.
pub fn init_store(store: &Path, extra_args: &[&str]) -> anyhow::Result<()> {
    let store_arg = store.to_str().context("store path is not UTF-8")?;
    let mut args = vec!["store", "init", store_arg];
    args.extend_from_slice(extra_args);
    let (status, out, err) = run(&bins::edgenvr(), &args)?;
    anyhow::ensure!(status.success(), "store init: {out}{err}");
    Ok(())
}

/// Starts `edgenvr run --config CONFIG` with `RUST_LOG=info`, so its `listening ...` and
/// recording lines can be awaited with [`Process::wait_for_line`] and
/// [`Process::wait_for_listener`]; killed on drop.
pub fn spawn_run(config: &Path) -> anyhow::Result<Process> {
    let config_arg = config.to_str().context("config path is not UTF-8")?;
    Process::spawn(
        &bins::edgenvr(),
        &["run", "--config", config_arg],
        &[("RUST_LOG", "info")],
    )
}

/// Starts `edgenvr record URL --dir DIR EXTRA_ARGS...` (e.g. `["--wrap", "4"]`) with the extra
/// environment `envs`; killed on drop.
pub fn spawn_record(
    url: &str,
    dir: &Path,
    extra_args: &[&str],
    envs: &[(&str, &str)],
) -> anyhow::Result<Process> {
    let dir_arg = dir.to_str().context("store path is not UTF-8")?;
    let mut args = vec!["record", url, "--dir", dir_arg];
    args.extend_from_slice(extra_args);
    Process::spawn(&bins::edgenvr(), &args, envs)
}

/// `edgenvr sim set SENSOR LEVEL --config CONFIG`: drives a `backend = "sim"` sensor of the
/// running box; fails with its output when it exits unsuccessfully.
pub fn sim_set(config: &Path, sensor: &str, level: &str) -> anyhow::Result<()> {
    let config_arg = config.to_str().context("config path is not UTF-8")?;
    let (status, out, err) = run(
        &bins::edgenvr(),
        &["sim", "set", sensor, level, "--config", config_arg],
    )?;
    anyhow::ensure!(status.success(), "sim set {level}: {out}{err}");
    Ok(())
}

/// `edgenvr sim get NAME --config CONFIG`: the raw level (`high`/`low`) of a simulated sensor or
/// output of the running box.
pub fn sim_get(config: &Path, name: &str) -> anyhow::Result<String> {
    let config_arg = config.to_str().context("config path is not UTF-8")?;
    let (status, out, err) = run(
        &bins::edgenvr(),
        &["sim", "get", name, "--config", config_arg],
    )?;
    anyhow::ensure!(status.success(), "sim get {name}: {out}{err}");
    Ok(out.trim().to_owned())
}

/// Polls `sim get NAME` until it reads `level`; an error after `timeout` (a hang guard).
pub fn wait_for_level(
    config: &Path,
    name: &str,
    level: &str,
    timeout: std::time::Duration,
) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let now = sim_get(config, name)?;
        if now == level {
            return Ok(());
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "{name} stayed {now}, never {level}"
        );
        // The control socket answers in microseconds; 20 ms between polls keeps the CPU free.
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A box's working directory: an initialised store and a config file, for `edgenvr run`.
pub struct BoxDir {
    /// The directory (removed on drop).
    pub dir: tempfile::TempDir,
    /// The config file.
    pub config: std::path::PathBuf,
    /// The store directory.
    pub store: std::path::PathBuf,
}

impl BoxDir {
    /// A store made with `store init` and `store_args` (e.g. `["--size", "1MiB", "--slots",
    /// "4"]`), and a config of `[box] name`, `[storage] dir` plus `storage_keys` (lines), a
    /// `[control] socket` in the directory, then `sections` (TOML) as given.
    pub fn new(name: &str, store_args: &[&str], storage_keys: &str, sections: &str) -> BoxDir {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = dir.path().join("store");
        init_store(&store, store_args).expect("store init");
        let config = dir.path().join("config.toml");
        let text = format!(
            "[box]\nname = \"{name}\"\n[storage]\ndir = \"{}\"\n{storage_keys}\n[control]\nsocket = \"{}\"\n{sections}\n",
            store.display(),
            dir.path().join("control.sock").display()
        );
        std::fs::write(&config, text).expect("write the config");
        BoxDir { dir, config, store }
    }

    /// A small store (1 MiB, 4 slots) and the config: enough for a box without cameras.
    pub fn small(name: &str, sections: &str) -> BoxDir {
        Self::new(name, &["--size", "1MiB", "--slots", "4"], "", sections)
    }
}
