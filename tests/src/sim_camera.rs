//! `edgenvr sim-camera` as a [`Process`] on a free port: the built-in RTSP test camera, healthy
//! or playing one of its `--fault` modes. Killed on drop.

use std::net::SocketAddr;
use std::time::Duration;

use crate::bins;
use crate::process::Process;

/// How long the camera may take to bind on a loaded 2-core box.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `edgenvr sim-camera`; killed when dropped.
pub struct SimCamera {
    process: Process,
    addr: SocketAddr,
}

impl SimCamera {
    /// Starts `edgenvr sim-camera --listen 127.0.0.1:0 ARGS...` and waits for its
    /// `listening rtsp` line.
    pub fn start(args: &[&str]) -> anyhow::Result<SimCamera> {
        let mut all_args = vec!["sim-camera", "--listen", "127.0.0.1:0"];
        all_args.extend_from_slice(args);
        let process = Process::spawn(&bins::edgenvr(), &all_args, &[("RUST_LOG", "info")])?;
        let addr = process
            .wait_for_listener("rtsp", START_TIMEOUT)
            .and_then(|addr| Ok(addr.parse::<SocketAddr>()?))
            .map_err(|e| {
                anyhow::anyhow!("no `listening rtsp` line ({e}); log:\n{}", process.stderr())
            })?;
        Ok(SimCamera { process, addr })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `rtsp://ADDR:PORT/PATH`.
    pub fn url(&self, path: &str) -> String {
        format!("rtsp://{}/{path}", self.addr)
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.process.stderr()
    }

    /// The process, to wait for log lines.
    pub fn process(&self) -> &Process {
        &self.process
    }

    /// Video frames sent to each client that has left, in order (from its
    /// `client disconnected frames_sent=N` lines).
    pub fn frames_sent_per_client(&self) -> Vec<u64> {
        self.log()
            .lines()
            .filter(|line| line.contains("client disconnected"))
            .filter_map(|line| {
                let (_, after) = line.split_once("frames_sent=")?;
                after.split_whitespace().next()?.parse().ok()
            })
            .collect()
    }

    /// Sends SIGTERM and returns whether the process exited with status 0.
    pub fn terminate(mut self) -> bool {
        if self.process.signal("TERM").is_err() {
            return false;
        }
        self.process
            .wait(START_TIMEOUT)
            .is_ok_and(|status| status.success())
    }
}
