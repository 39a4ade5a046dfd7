//! The real `nvrctl watch ... --json` as a child process, its JSON lines arriving on a channel,
//! so tests wait for what a user would see. Its catalog cache goes to a temporary directory,
//! never the user's. Killed on drop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::bins;

/// A running `nvrctl watch --json`.
pub struct Watcher {
    child: Child,
    lines: mpsc::Receiver<serde_json::Value>,
    _cache: tempfile::TempDir,
}

impl Watcher {
    /// Starts `nvrctl ARGS... --json` (e.g. `["watch", "127.0.0.1:7420"]`).
    pub fn start(args: &[&str]) -> Watcher {
        let cache = tempfile::tempdir().expect("a temporary cache directory");
        let mut child = Command::new(bins::nvrctl())
            .args(args)
            .arg("--json")
            .env("XDG_CACHE_HOME", cache.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nvrctl watch");
        let stdout = child.stdout.take().expect("piped stdout");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let json = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                if send.send(json).is_err() {
                    break;
                }
            }
        });
        Watcher {
            child,
            lines,
            _cache: cache,
        }
    }

    /// The next line satisfying `wanted` (earlier ones are dropped); panics, failing the test,
    /// when none comes within `timeout` (a hang guard).
    pub fn wait_for_line(
        &self,
        timeout: Duration,
        wanted: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        recv_matching(&self.lines, timeout, wanted)
            .unwrap_or_else(|| panic!("nvrctl never showed the line awaited"))
    }

    /// Waits for an update of `sensor` to `value` (from any box).
    pub fn wait_for(&self, timeout: Duration, sensor: &str, value: serde_json::Value) {
        self.wait_for_line(timeout, |line| {
            line["sensor"] == sensor && line["value"] == value
        });
    }

    /// Waits until each `(sensor, value)` was shown, in any order (values that change in one
    /// frame arrive in the frame's order, not the caller's).
    pub fn wait_for_all(&self, timeout: Duration, wanted: &[(&str, serde_json::Value)]) {
        let seen = std::cell::RefCell::new(vec![false; wanted.len()]);
        self.wait_for_line(timeout, |line| {
            let mut seen = seen.borrow_mut();
            for (n, (sensor, value)) in wanted.iter().enumerate() {
                seen[n] |= line["sensor"] == *sensor && line["value"] == *value;
            }
            seen.iter().all(|s| *s)
        });
    }
}

/// The next item from `items` satisfying `wanted` (earlier ones are dropped), or `None` when
/// none comes within `timeout` (a hang guard, not a timing assertion).
pub fn recv_matching<T>(
    items: &mpsc::Receiver<T>,
    timeout: Duration,
    wanted: impl Fn(&T) -> bool,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let item = items.recv_timeout(left).ok()?;
        if wanted(&item) {
            return Some(item);
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
