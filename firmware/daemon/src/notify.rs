//! The systemd service notification protocol (`sd_notify(3)`), spoken directly, without
//! libsystemd: the packaged unit is `Type=notify` with `WatchdogSec=`, so the box says when it is
//! ready, feeds the watchdog while its runtime turns, and says when it is stopping.
//!
//! Receives the environment systemd sets for the service: `NOTIFY_SOCKET` (an absolute socket
//! path, or `@name` for a socket in the abstract namespace), `WATCHDOG_USEC` and `WATCHDOG_PID`.
//! Emits one datagram per message, newline-separated `KEY=VALUE` assignments: `READY=1` with a
//! `STATUS=` line once `run` has started its cameras and listeners, `WATCHDOG=1` every
//! `WATCHDOG_USEC / 2`, `STOPPING=1` with a `STATUS=` line when shutdown begins (or when `run`
//! ends without one). Without `NOTIFY_SOCKET` (started by hand, in tests, in a container)
//! everything here is a no-op.
//!
//! I/O and threading: [`Notifier`] owns one unbound, non-blocking datagram socket; a send never
//! blocks the caller (a full receive queue drops the message with a warning, as libsystemd's does
//! not retry either). [`Service`] spawns one task on the caller's tokio runtime that feeds the
//! watchdog and announces the shutdown. Because the pings come from the same runtime as the
//! cameras, a runtime that stops turning (a blocked thread, a busy loop) stops feeding the
//! watchdog and systemd restarts the box: that is the health the watchdog certifies.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::shutdown::Shutdown;

/// The variable naming the socket systemd listens on for this service.
pub const NOTIFY_SOCKET_ENV: &str = "NOTIFY_SOCKET";
/// The variable holding the watchdog timeout in microseconds (`WatchdogSec=`).
pub const WATCHDOG_USEC_ENV: &str = "WATCHDOG_USEC";
/// The variable naming the process the watchdog is meant for.
pub const WATCHDOG_PID_ENV: &str = "WATCHDOG_PID";

/// Why a notification could not be set up or sent.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// `NOTIFY_SOCKET` is neither an absolute path nor an `@` abstract name.
    #[error(
        "{NOTIFY_SOCKET_ENV}={0:?} is neither an absolute socket path nor an '@' abstract name"
    )]
    UnsupportedAddress(String),
    /// `WATCHDOG_USEC` or `WATCHDOG_PID` is not a number.
    #[error("{name}={value:?} is not a number")]
    BadNumber {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
    },
    /// The socket could not be made or the datagram not sent.
    #[error("notify socket {address}: {source}")]
    Io {
        /// The socket as written in `NOTIFY_SOCKET`.
        address: String,
        /// What the system said.
        source: std::io::Error,
    },
}

/// One assignment of a notification message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotifyState<'a> {
    /// `READY=1`: start-up is finished.
    Ready,
    /// `STOPPING=1`: shutdown has begun.
    Stopping,
    /// `WATCHDOG=1`: the service is alive.
    Watchdog,
    /// `STATUS=...`: a one-line human-readable status (`systemctl status` shows it).
    Status(&'a str),
}

/// The datagram for `states`: one `KEY=VALUE` line each. A status is flattened to one line,
/// since a newline would start a new assignment.
pub fn encode(states: &[NotifyState<'_>]) -> String {
    let mut message = String::new();
    for state in states {
        match state {
            NotifyState::Ready => message.push_str("READY=1"),
            NotifyState::Stopping => message.push_str("STOPPING=1"),
            NotifyState::Watchdog => message.push_str("WATCHDOG=1"),
            NotifyState::Status(text) => {
                message.push_str("STATUS=");
                message.extend(text.chars().map(|c| if c == '\n' { ' ' } else { c }));
            }
        }
        message.push('\n');
    }
    message
}

/// Sends notification datagrams to the service manager, or does nothing when there is none.
#[derive(Debug)]
pub struct Notifier {
    target: Option<Target>,
}

#[derive(Debug)]
struct Target {
    socket: UnixDatagram,
    address: SocketAddr,
    /// `NOTIFY_SOCKET` as given, for messages.
    shown: String,
}

impl Notifier {
    /// A notifier that sends nothing.
    pub const fn disabled() -> Self {
        Self { target: None }
    }

    /// The notifier systemd asked for through `NOTIFY_SOCKET`; disabled when it is unset, and
    /// disabled with a warning when it is unusable (the box runs on without notifications, and
    /// systemd's start timeout reports the missing `READY=1`).
    pub fn from_env() -> Self {
        match std::env::var_os(NOTIFY_SOCKET_ENV) {
            None => Self::disabled(),
            Some(value) => Self::connect(&value).unwrap_or_else(|error| {
                tracing::warn!("service notifications off: {error}");
                Self::disabled()
            }),
        }
    }

    /// A notifier sending to `notify_socket`, written as in `NOTIFY_SOCKET`: an absolute path, or
    /// `@name` for the abstract namespace. Nothing is sent yet.
    pub fn connect(notify_socket: &OsStr) -> Result<Self, NotifyError> {
        let shown = notify_socket.to_string_lossy().into_owned();
        let bytes = notify_socket.as_bytes();
        let io = |source| NotifyError::Io {
            address: shown.clone(),
            source,
        };
        let address = match bytes.first() {
            Some(b'/') => SocketAddr::from_pathname(notify_socket).map_err(io)?,
            Some(b'@') => abstract_address(bytes.get(1..).unwrap_or_default()).map_err(io)?,
            _ => return Err(NotifyError::UnsupportedAddress(shown)),
        };
        let socket = UnixDatagram::unbound().map_err(io)?;
        // Never block the runtime on a full queue: a lost ping is cheaper than a stalled box.
        socket.set_nonblocking(true).map_err(io)?;
        Ok(Self {
            target: Some(Target {
                socket,
                address,
                shown,
            }),
        })
    }

    /// Whether messages go anywhere.
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends one datagram with `states`; `Ok` without sending when disabled.
    pub fn notify(&self, states: &[NotifyState<'_>]) -> Result<(), NotifyError> {
        let Some(target) = &self.target else {
            return Ok(());
        };
        target
            .socket
            .send_to_addr(encode(states).as_bytes(), &target.address)
            .map(drop)
            .map_err(|source| NotifyError::Io {
                address: target.shown.clone(),
                source,
            })
    }

    /// [`Notifier::notify`], logging a failure instead of returning it: a lost notification
    /// must not stop the recorder.
    pub fn notify_or_warn(&self, states: &[NotifyState<'_>]) {
        if let Err(error) = self.notify(states) {
            tracing::warn!("{error}");
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_address(name: &[u8]) -> std::io::Result<SocketAddr> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_address(_name: &[u8]) -> std::io::Result<SocketAddr> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "abstract socket names exist only on Linux",
    ))
}

/// How often to feed the watchdog, from the values of `WATCHDOG_USEC` and `WATCHDOG_PID`: half
/// the timeout (as `sd_watchdog_enabled(3)` advises, so one late ping is not fatal). `None` when
/// there is no watchdog, it is zero, or it is meant for another process (`WATCHDOG_PID`).
pub fn watchdog_interval(
    watchdog_usec: Option<&OsStr>,
    watchdog_pid: Option<&OsStr>,
    own_pid: u32,
) -> Result<Option<Duration>, NotifyError> {
    let Some(usec) = watchdog_usec else {
        return Ok(None);
    };
    let usec: u64 = parse_number(WATCHDOG_USEC_ENV, usec)?;
    if let Some(pid) = watchdog_pid {
        let pid: u32 = parse_number(WATCHDOG_PID_ENV, pid)?;
        if pid != own_pid {
            return Ok(None);
        }
    }
    Ok((usec > 0).then(|| Duration::from_micros(usec / 2)))
}

/// [`watchdog_interval`] for this process's environment; a malformed value is logged and means
/// no watchdog.
pub fn watchdog_interval_from_env() -> Option<Duration> {
    let usec = std::env::var_os(WATCHDOG_USEC_ENV);
    let pid = std::env::var_os(WATCHDOG_PID_ENV);
    watchdog_interval(usec.as_deref(), pid.as_deref(), std::process::id()).unwrap_or_else(|error| {
        tracing::warn!("watchdog off: {error}");
        None
    })
}

fn parse_number<T: std::str::FromStr>(name: &'static str, value: &OsStr) -> Result<T, NotifyError> {
    value
        .to_str()
        .and_then(|text| text.trim().parse().ok())
        .ok_or_else(|| NotifyError::BadNumber {
            name,
            value: value.to_string_lossy().into_owned(),
        })
}

/// The service's side of its life under systemd, from "ready" on: made by [`Service::ready`],
/// which sends `READY=1` and starts the task that feeds the watchdog and sends `STOPPING=1` when
/// shutdown is requested. Dropping it stops that task, and sends `STOPPING=1` if shutdown was
/// never requested (the box is ending on its own, e.g. every camera failed).
#[derive(Debug)]
pub struct Service {
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    notifier: Notifier,
    stopping_sent: AtomicBool,
}

impl Shared {
    fn stopping(&self, status: &str) {
        if !self.stopping_sent.swap(true, Ordering::AcqRel) {
            self.notifier
                .notify_or_warn(&[NotifyState::Stopping, NotifyState::Status(status)]);
        }
    }
}

/// The status shown while the box closes its recordings.
const STOPPING_STATUS: &str = "stopping: closing recordings";

impl Service {
    /// Announces readiness with `status` through `notifier`, and, on the current tokio runtime,
    /// feeds the watchdog every `watchdog` (when given) and sends `STOPPING=1` once `shutdown` is
    /// requested. The watchdog keeps being fed while the box closes its recordings, until this
    /// value is dropped. Spawns nothing when the notifier is disabled.
    pub fn ready(
        notifier: Notifier,
        watchdog: Option<Duration>,
        status: &str,
        shutdown: Shutdown,
    ) -> Self {
        let enabled = notifier.is_enabled();
        notifier.notify_or_warn(&[NotifyState::Ready, NotifyState::Status(status)]);
        let shared = Arc::new(Shared {
            notifier,
            stopping_sent: AtomicBool::new(false),
        });
        let task = enabled.then(|| tokio::spawn(feed(shared.clone(), watchdog, shutdown)));
        if enabled {
            tracing::info!(
                watchdog_ms = watchdog.map(|w| w.as_millis()),
                "told the service manager we are ready"
            );
        }
        Self { shared, task }
    }

    /// [`Service::ready`] with the notifier and watchdog systemd set up in the environment.
    pub fn ready_from_env(status: &str, shutdown: Shutdown) -> Self {
        Self::ready(
            Notifier::from_env(),
            watchdog_interval_from_env(),
            status,
            shutdown,
        )
    }

    /// Replaces the status line `systemctl status` shows.
    pub fn status(&self, status: &str) {
        self.shared
            .notifier
            .notify_or_warn(&[NotifyState::Status(status)]);
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        if self.shared.notifier.is_enabled() {
            self.shared.stopping(STOPPING_STATUS);
        }
    }
}

async fn feed(shared: Arc<Shared>, watchdog: Option<Duration>, mut shutdown: Shutdown) {
    let Some(period) = watchdog.filter(|p| !p.is_zero()) else {
        shutdown.requested().await;
        shared.stopping(STOPPING_STATUS);
        return;
    };
    // The first ping one period after READY=1, when systemd's timer has run half its course.
    let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
    // After a stall, ping once and keep the period from there: a burst of catch-up pings would
    // tell systemd nothing more.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut stopping = false;
    loop {
        tokio::select! {
            () = shutdown.requested(), if !stopping => {
                stopping = true;
                shared.stopping(STOPPING_STATUS);
            }
            _ = ticks.tick() => shared.notifier.notify_or_warn(&[NotifyState::Watchdog]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shutdown::ShutdownTrigger;

    /// Bound on waiting for a datagram, so a broken sender fails the test instead of hanging it.
    /// Not a speed assertion: every message here is due within a few hundred milliseconds.
    const RECV_LIMIT: Duration = Duration::from_secs(10);

    /// A stand-in for systemd's notify socket: a datagram socket bound in a temp dir.
    struct FakeManager {
        socket: tokio::net::UnixDatagram,
        path: std::path::PathBuf,
        _dir: tempfile::TempDir,
    }

    impl FakeManager {
        fn bind() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("notify.sock");
            let socket = tokio::net::UnixDatagram::bind(&path).unwrap();
            Self {
                socket,
                path,
                _dir: dir,
            }
        }

        fn notifier(&self) -> Notifier {
            Notifier::connect(self.path.as_os_str()).unwrap()
        }

        async fn recv(&self) -> String {
            let mut buf = vec![0u8; 4096];
            let n = tokio::time::timeout(RECV_LIMIT, self.socket.recv(&mut buf))
                .await
                .expect("no notification arrived")
                .unwrap();
            String::from_utf8(buf[..n].to_vec()).unwrap()
        }

        fn try_recv(&self) -> Option<String> {
            let mut buf = vec![0u8; 4096];
            match self.socket.try_recv(&mut buf) {
                Ok(n) => Some(String::from_utf8(buf[..n].to_vec()).unwrap()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn messages_are_key_value_lines() {
        assert_eq!(
            encode(&[
                NotifyState::Ready,
                NotifyState::Status("recording 2 cameras")
            ]),
            "READY=1\nSTATUS=recording 2 cameras\n"
        );
        assert_eq!(encode(&[NotifyState::Watchdog]), "WATCHDOG=1\n");
        // A newline inside a status must not smuggle in another assignment.
        assert_eq!(
            encode(&[NotifyState::Status("a\nREADY=1")]),
            "STATUS=a READY=1\n"
        );
    }

    #[test]
    fn watchdog_interval_is_half_the_timeout_for_this_process_only() {
        let os = |s: &'static str| Some(OsStr::new(s));
        assert_eq!(
            watchdog_interval(os("30000000"), None, 7).unwrap(),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            watchdog_interval(os("30000000"), os("7"), 7).unwrap(),
            Some(Duration::from_secs(15))
        );
        assert_eq!(watchdog_interval(os("30000000"), os("8"), 7).unwrap(), None);
        assert_eq!(watchdog_interval(os("0"), None, 7).unwrap(), None);
        assert_eq!(watchdog_interval(None, os("7"), 7).unwrap(), None);
        let error = watchdog_interval(os("30s"), None, 7).unwrap_err();
        assert_eq!(error.to_string(), "WATCHDOG_USEC=\"30s\" is not a number");
    }

    #[test]
    fn only_absolute_paths_and_abstract_names_are_accepted() {
        for bad in ["", "notify.sock", "vsock:2:1234"] {
            let error = Notifier::connect(OsStr::new(bad)).unwrap_err();
            assert!(
                matches!(error, NotifyError::UnsupportedAddress(_)),
                "{bad}: {error}"
            );
        }
        assert!(!Notifier::disabled().is_enabled());
        assert!(Notifier::disabled().notify(&[NotifyState::Ready]).is_ok());
    }

    #[tokio::test]
    async fn a_datagram_reaches_a_socket_path() {
        let manager = FakeManager::bind();
        manager
            .notifier()
            .notify(&[NotifyState::Ready, NotifyState::Status("up")])
            .unwrap();
        assert_eq!(manager.recv().await, "READY=1\nSTATUS=up\n");
    }

    #[tokio::test]
    async fn a_datagram_reaches_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!(
            "edgenvr-notify-test-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        );
        let address = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let receiver = UnixDatagram::bind_addr(&address).unwrap();
        let notifier = Notifier::connect(OsStr::new(&format!("@{name}"))).unwrap();
        notifier.notify(&[NotifyState::Stopping]).unwrap();
        receiver.set_read_timeout(Some(RECV_LIMIT)).unwrap();
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1\n");
    }

    #[tokio::test]
    async fn a_missing_manager_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let notifier = Notifier::connect(dir.path().join("gone.sock").as_os_str()).unwrap();
        let error = notifier.notify(&[NotifyState::Ready]).unwrap_err();
        assert!(error.to_string().contains("gone.sock"), "{error}");
    }

    #[tokio::test]
    async fn ready_then_watchdog_pings_then_stopping() {
        let manager = FakeManager::bind();
        let (trigger, shutdown) = ShutdownTrigger::new();
        // 20 ms between pings: short enough to collect several quickly.
        let period = Duration::from_millis(20);
        let started = std::time::Instant::now();
        let service = Service::ready(
            manager.notifier(),
            Some(period),
            "recording 1 camera",
            shutdown,
        );
        assert_eq!(manager.recv().await, "READY=1\nSTATUS=recording 1 camera\n");
        for pings in 1..=3u32 {
            assert_eq!(manager.recv().await, "WATCHDOG=1\n");
            // Ping k is sent no earlier than k periods after READY (tokio timers never fire
            // early), so it cannot be received earlier either, however late the test thread
            // reads. Gaps between receipts prove nothing: a late read shortens the next gap.
            let since_ready = started.elapsed();
            assert!(
                since_ready >= period * pings,
                "ping {pings} arrived {since_ready:?} after READY"
            );
        }
        trigger.trigger();
        // Pings may still be in the queue; STOPPING=1 follows them.
        let stopping = loop {
            let message = manager.recv().await;
            if message != "WATCHDOG=1\n" {
                break message;
            }
        };
        assert_eq!(
            stopping,
            "STOPPING=1\nSTATUS=stopping: closing recordings\n"
        );
        // The watchdog is still fed while recordings close.
        assert_eq!(manager.recv().await, "WATCHDOG=1\n");
        drop(service);
        // Dropping after a shutdown does not announce it twice, and the pings end.
        while let Some(message) = manager.try_recv() {
            assert_eq!(message, "WATCHDOG=1\n");
        }
        tokio::time::sleep(period * 3).await;
        assert_eq!(manager.try_recv(), None);
    }

    #[tokio::test]
    async fn ending_without_a_shutdown_still_says_stopping() {
        let manager = FakeManager::bind();
        let (_trigger, shutdown) = ShutdownTrigger::new();
        let service = Service::ready(manager.notifier(), None, "recording 0 cameras", shutdown);
        assert_eq!(
            manager.recv().await,
            "READY=1\nSTATUS=recording 0 cameras\n"
        );
        service.status("camera front offline");
        assert_eq!(manager.recv().await, "STATUS=camera front offline\n");
        drop(service);
        assert_eq!(
            manager.recv().await,
            "STOPPING=1\nSTATUS=stopping: closing recordings\n"
        );
        assert_eq!(manager.try_recv(), None);
    }

    #[tokio::test]
    async fn without_a_manager_nothing_is_spawned() {
        let (_trigger, shutdown) = ShutdownTrigger::new();
        let service = Service::ready(
            Notifier::disabled(),
            Some(Duration::from_millis(1)),
            "x",
            shutdown,
        );
        assert!(service.task.is_none());
    }
}
