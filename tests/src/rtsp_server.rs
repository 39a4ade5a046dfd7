//! The test RTSP camera: `scripts/rtsp-server.py` (gst-rtsp-server under /usr/bin/python3)
//! serving looped clips on a free port, with optional digest auth. Reads the server's stdout
//! protocol (`port N`, `frames PATH N`, `idle PATH N`) on a thread so tests can wait for events.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::bins::workspace_root;

/// How long the server may take to bind (Python + GStreamer start-up on a loaded 2-core box).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// What the server has reported so far.
#[derive(Debug, Default)]
struct Reports {
    port: Option<u16>,
    frames: HashMap<String, u64>,
    /// Per path, the frame total at each time its pipeline went idle (last client left).
    idle: HashMap<String, Vec<u64>>,
    exited: bool,
}

/// What a test server offers beyond its streams.
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    /// `(user, password)` every path requires.
    pub auth: Option<(String, String)>,
    /// Basic instead of digest authentication.
    pub basic_auth: bool,
    /// A live AAC track (16 kHz mono) on every path.
    pub audio: bool,
}

/// A running test RTSP server; killed on drop.
pub struct RtspServer {
    child: Child,
    port: u16,
    reports: Arc<(Mutex<Reports>, Condvar)>,
    streams: Vec<(String, PathBuf)>,
    options: ServerOptions,
}

impl RtspServer {
    /// Starts a server for `streams` (`(path, clip)`, path like `/h264`) on any free port, with
    /// digest authentication when `auth` is given.
    pub fn start(streams: &[(&str, &Path)], auth: Option<(&str, &str)>) -> anyhow::Result<Self> {
        let options = ServerOptions {
            auth: auth.map(|(u, p)| (u.to_owned(), p.to_owned())),
            ..ServerOptions::default()
        };
        Self::start_with(streams, options)
    }

    /// Like [`RtspServer::start`], with every option.
    pub fn start_with(streams: &[(&str, &Path)], options: ServerOptions) -> anyhow::Result<Self> {
        let streams: Vec<(String, PathBuf)> = streams
            .iter()
            .map(|(p, f)| ((*p).to_owned(), f.to_path_buf()))
            .collect();
        Self::spawn(streams, options, 0)
    }

    /// Starts the same server again on the same port (after [`RtspServer::kill`]).
    pub fn restart(self) -> anyhow::Result<Self> {
        let (streams, options, port) = (self.streams.clone(), self.options.clone(), self.port);
        drop(self);
        Self::spawn(streams, options, port)
    }

    fn spawn(
        streams: Vec<(String, PathBuf)>,
        options: ServerOptions,
        port: u16,
    ) -> anyhow::Result<Self> {
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg(workspace_root().join("scripts/rtsp-server.py"))
            .args(["--port", &port.to_string()]);
        for (path, clip) in &streams {
            cmd.arg("--stream")
                .arg(format!("{path}={}", clip.display()));
        }
        if let Some((user, password)) = &options.auth {
            cmd.args(["--user", user, "--password", password]);
        }
        if options.audio {
            cmd.arg("--audio");
        }
        if options.basic_auth {
            cmd.arg("--basic");
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let reports = Arc::new((Mutex::new(Reports::default()), Condvar::new()));
        let thread_reports = reports.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let (lock, changed) = &*thread_reports;
                let mut r = lock.lock().unwrap_or_else(|e| e.into_inner());
                let words: Vec<&str> = line.split_whitespace().collect();
                match words.as_slice() {
                    ["port", n] => r.port = n.parse().ok(),
                    ["frames", path, n] => {
                        if let Ok(n) = n.parse() {
                            r.frames.insert((*path).to_owned(), n);
                        }
                    }
                    ["idle", path, n] => {
                        if let Ok(n) = n.parse() {
                            r.idle.entry((*path).to_owned()).or_default().push(n);
                        }
                    }
                    _ => {}
                }
                changed.notify_all();
            }
            let (lock, changed) = &*thread_reports;
            lock.lock().unwrap_or_else(|e| e.into_inner()).exited = true;
            changed.notify_all();
        });
        let mut server = Self {
            child,
            port: 0,
            reports,
            streams,
            options,
        };
        server.port = server
            .wait_for(STARTUP_TIMEOUT, |r| r.port)?
            .ok_or_else(|| anyhow::anyhow!("rtsp-server exited before binding"))?;
        Ok(server)
    }

    fn wait_for<T>(
        &self,
        timeout: Duration,
        mut ready: impl FnMut(&Reports) -> Option<T>,
    ) -> anyhow::Result<Option<T>> {
        let deadline = Instant::now() + timeout;
        let (lock, changed) = &*self.reports;
        let mut r = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(value) = ready(&r) {
                return Ok(Some(value));
            }
            if r.exited {
                return Ok(None);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            anyhow::ensure!(!left.is_zero(), "rtsp-server: timed out waiting");
            r = changed
                .wait_timeout(r, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `rtsp://[user:password@]127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str, credentials: Option<(&str, &str)>) -> String {
        match credentials {
            Some((u, p)) => format!("rtsp://{u}:{p}@127.0.0.1:{}{path}", self.port),
            None => format!("rtsp://127.0.0.1:{}{path}", self.port),
        }
    }

    /// Access units stamped so far for `path` (across restarts of its pipeline). The server
    /// reports every 200 ms, so this trails by a few frames.
    pub fn frames_sent(&self, path: &str) -> u64 {
        let (lock, _) = &*self.reports;
        let r = lock.lock().unwrap_or_else(|e| e.into_inner());
        r.frames.get(path).copied().unwrap_or(0)
    }

    /// Waits until the server has stamped at least `n` frames for `path`.
    pub fn wait_frames(&self, path: &str, n: u64, timeout: Duration) -> anyhow::Result<u64> {
        self.wait_for(timeout, |r| r.frames.get(path).copied().filter(|&f| f >= n))?
            .ok_or_else(|| anyhow::anyhow!("rtsp-server exited"))
    }

    /// Waits until `path`'s pipeline has gone idle `times` times (its last client left) and
    /// returns the frames stamped for it in total by then: what the server sent to its clients
    /// (give or take the few frames queued in the pipeline).
    pub fn wait_idle(&self, path: &str, times: usize, timeout: Duration) -> anyhow::Result<u64> {
        self.wait_for(timeout, |r| {
            r.idle
                .get(path)
                .and_then(|totals| totals.get(times.checked_sub(1)?))
                .copied()
        })?
        .ok_or_else(|| anyhow::anyhow!("rtsp-server exited"))
    }

    /// Sends a signal by name (`STOP` freezes the server with its sockets open: a camera that
    /// hangs without closing the connection; `CONT` thaws it).
    pub fn signal(&self, name: &str) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()?;
        anyhow::ensure!(status.success(), "kill -{name} failed");
        Ok(())
    }

    /// Kills the server at once (SIGKILL), as a crashing camera would vanish.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        self.kill();
    }
}
