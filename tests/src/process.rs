//! A running `edgenvr` (or any) child process whose stderr is collected line by line on a thread,
//! so tests wait for log events ("streaming", "listening ...") instead of sleeping.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Lines {
    lines: Vec<String>,
    closed: bool,
}

/// A child with its stderr captured; killed on drop if still running.
pub struct Process {
    child: Child,
    stderr: Arc<(Mutex<Lines>, Condvar)>,
    name: String,
}

impl Process {
    /// Starts `program args` with extra environment `envs`.
    pub fn spawn(program: &Path, args: &[&str], envs: &[(&str, &str)]) -> anyhow::Result<Self> {
        let mut child = Command::new(program)
            .args(args)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stderr"))?;
        let lines = Arc::new((Mutex::new(Lines::default()), Condvar::new()));
        let thread_lines = lines.clone();
        let name = format!("{} {}", program.display(), args.join(" "));
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("  | {line}");
                let (lock, changed) = &*thread_lines;
                lock.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .lines
                    .push(line);
                changed.notify_all();
            }
            let (lock, changed) = &*thread_lines;
            lock.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
            changed.notify_all();
        });
        Ok(Self {
            child,
            stderr: lines,
            name,
        })
    }

    /// Waits until `count` stderr lines contain `needle`; returns the last such line.
    pub fn wait_for_lines(
        &self,
        needle: &str,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        let (lock, changed) = &*self.stderr;
        let mut state = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let matching: Vec<&String> =
                state.lines.iter().filter(|l| l.contains(needle)).collect();
            if matching.len() >= count {
                return Ok(matching[count - 1].clone());
            }
            anyhow::ensure!(
                !state.closed,
                "{}: exited before logging {needle:?} ×{count}",
                self.name
            );
            let left = deadline.saturating_duration_since(Instant::now());
            anyhow::ensure!(
                !left.is_zero(),
                "{}: no {needle:?} ×{count} within {timeout:?}",
                self.name
            );
            state = changed
                .wait_timeout(state, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Waits for the first stderr line containing `needle`.
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> anyhow::Result<String> {
        self.wait_for_lines(needle, 1, timeout)
    }

    /// Waits for the `listening NAME ADDR` line `edgenvr` logs when its `NAME` listener (`state`,
    /// `http`, `control`, `rtsp`) is bound; returns `ADDR` as logged.
    pub fn wait_for_listener(&self, name: &str, timeout: Duration) -> anyhow::Result<String> {
        let needle = format!("listening {name} ");
        let line = self.wait_for_line(&needle, timeout)?;
        line.split(&needle)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("{}: no address in {line:?}", self.name))
    }

    /// Everything written to stderr so far (complete once the process exited and [`Process::wait`]
    /// returned).
    pub fn stderr(&self) -> String {
        let (lock, _) = &*self.stderr;
        lock.lock()
            .unwrap_or_else(|e| e.into_inner())
            .lines
            .join("\n")
    }

    /// The child's process id (for `/proc/PID/...`).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`).
    pub fn signal(&self, name: &str) -> anyhow::Result<()> {
        send_signal(self.child.id(), name)
    }

    /// Waits for the process to exit (and its stderr to be fully read).
    pub fn wait(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                let (lock, changed) = &*self.stderr;
                let mut state = lock.lock().unwrap_or_else(|e| e.into_inner());
                while !state.closed {
                    state = changed
                        .wait_timeout(state, Duration::from_secs(5))
                        .map(|(g, _)| g)
                        .unwrap_or_else(|e| e.into_inner().0);
                }
                return Ok(status);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{}: still running after {timeout:?}",
                self.name
            );
            // Polling a child's exit has no event to await without a signal handler; 50 ms is
            // short next to every timeout here.
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        self.signal("TERM")?;
        self.wait(timeout)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `program args` to completion, returning (exit status, stdout, stderr).
pub fn run(program: &Path, args: &[&str]) -> anyhow::Result<(ExitStatus, String, String)> {
    let out = Command::new(program).args(args).output()?;
    Ok((
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Sends signal `name` (`TERM`, `KILL`, `STOP`, ...) to process `pid` with `kill(1)`.
pub fn send_signal(pid: u32, name: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()?;
    anyhow::ensure!(status.success(), "kill -{name} {pid} failed");
    Ok(())
}

/// The integer value of field `key` in a `tracing` log line (`key=123`), if it has one.
pub fn log_field(line: &str, key: &str) -> Option<i64> {
    line.split_whitespace()
        .find_map(|field| field.strip_prefix(key)?.strip_prefix('='))
        .and_then(|n| n.parse().ok())
}
