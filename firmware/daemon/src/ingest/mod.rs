//! Ingest: one camera's RTSP stream, kept alive. Connects with retina, hands every event to the
//! caller's [`IngestHandler`], and reconnects after any failure with exponential backoff and
//! jitter; a stream that stops delivering frames for [`IngestOptions::stall_timeout`] is treated
//! as dead and reconnected.
//!
//! Receives a [`CameraSource`] (URL without credentials + credentials), options and a shutdown
//! signal; emits [`IngestEvent`]s to the handler (synchronously, on the camera's task: the handler
//! must not block) and the camera's [`CameraStatus`] on a watch channel. A 401 is reported as
//! [`IngestErrorKind::Unauthorized`]: [`AuthFailurePolicy`] decides between giving up (`record`)
//! and retrying slowly (`run`). Passwords never reach a log line or an error: URLs here carry no
//! credentials and retina's messages are scrubbed.
//!
//! A failure's [`IngestErrorKind`] names what went wrong (no connection, no answer, a refused
//! request, an unusable SDP, corrupt media, a stall, the camera hanging up); a fault the session
//! works around (timestamps that jump, new parameters without a key frame) marks the camera
//! [`CameraStatus::Degraded`] with its kind until it has streamed cleanly for
//! [`IngestOptions::healthy_after`]. Both are logged with the camera's name.
//!
//! Layout: `source` (URL and credentials), `session` (one retina session), `packer` (where the
//! frames' bytes live), `timeline` (media time across timestamp jumps), `backoff`, `error`.

mod backoff;
mod error;
mod packer;
mod session;
mod timeline;

use std::time::{Duration, Instant};

use tokio::sync::watch;

pub use crate::config::camera_source::{
    redact_url, CameraSource, Credentials, SourceError, Transport,
};
pub use backoff::Backoff;
pub use error::{IngestError, IngestErrorKind};
pub use packer::CHUNK_BYTES;
pub use session::{IngestEvent, Session, MAX_FRAME_BYTES};
pub use timeline::{MediaTimeline, MAX_BACKWARD_STEP_90K, MAX_FORWARD_STEP_90K};

use crate::shutdown::Shutdown;

/// What to do when the camera refuses the credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthFailurePolicy {
    /// Stop and return the error (`edgenvr record`: a person is watching).
    GiveUp,
    /// Keep retrying every [`IngestOptions::unauthorized_retry`] (`edgenvr run`: someone may fix
    /// the camera's password; the camera's status says why it is not recording).
    RetrySlowly,
}

/// Timing of connects, stall detection and reconnects.
#[derive(Clone, Debug)]
pub struct IngestOptions {
    /// How long DESCRIBE + SETUP + PLAY may take.
    pub connect_timeout: Duration,
    /// How long a playing stream may go without a frame before it is declared dead.
    pub stall_timeout: Duration,
    /// The first reconnect delay (before jitter).
    pub backoff_initial: Duration,
    /// The longest reconnect delay.
    pub backoff_cap: Duration,
    /// A session that streamed this long resets the backoff: the next failure is news, not a
    /// continuation of a flapping link. Also how long a degraded camera must stream without a
    /// new fault to count as healthy again.
    pub healthy_after: Duration,
    /// What a 401 does.
    pub on_unauthorized: AuthFailurePolicy,
    /// The delay between attempts after a 401 under [`AuthFailurePolicy::RetrySlowly`].
    pub unauthorized_retry: Duration,
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            // A camera on a LAN answers in milliseconds; one on a 256 kbit/s uplink in a few
            // seconds. Ten covers both without hiding a dead host for long.
            connect_timeout: Duration::from_secs(10),
            // Cameras send every frame (≥ 1 fps even in "smart" low-rate modes), so five seconds
            // of silence is a dead stream, not a slow GOP.
            stall_timeout: Duration::from_secs(5),
            // One second, doubling to 30 s: a rebooting camera (≈ 30–60 s) is picked up within
            // one cap after it is back, and a dead one costs two connects a minute.
            backoff_initial: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(30),
            // Longer than any backoff step: a link that drops every few seconds keeps backing off.
            healthy_after: Duration::from_secs(60),
            on_unauthorized: AuthFailurePolicy::GiveUp,
            // Many cameras lock an account after a few bad logins; two minutes keeps well clear
            // of that while still noticing a fixed password soon.
            unauthorized_retry: Duration::from_secs(120),
        }
    }
}

/// What the camera is doing, for logs, health and the state bus.
///
/// For a status upstream: [`CameraStatus::is_online`] says whether video flows, and
/// [`CameraStatus::reason`] gives the [`IngestErrorKind`] of a degraded or failing camera.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CameraStatus {
    /// Connecting (first attempt or after a wait).
    Connecting,
    /// Frames are flowing.
    Streaming,
    /// Frames are flowing and being recorded, but the camera recently sent something the box
    /// had to work around (see the kind); back to [`CameraStatus::Streaming`] after
    /// [`IngestOptions::healthy_after`] without a new fault.
    Degraded {
        /// What the camera got wrong: [`IngestErrorKind::TimestampJump`] or
        /// [`IngestErrorKind::ParametersWithoutKeyFrame`].
        kind: IngestErrorKind,
        /// The latest such fault, password-free.
        reason: String,
    },
    /// The last attempt failed; waiting before the next one.
    Retrying {
        /// Why (decides how fast the retries come).
        kind: IngestErrorKind,
        /// The failure, password-free.
        reason: String,
        /// Failures in a row.
        consecutive_failures: u32,
    },
    /// Gave up or shut down.
    Stopped,
}

impl CameraStatus {
    /// Video is flowing: [`CameraStatus::Streaming`] or [`CameraStatus::Degraded`].
    pub fn is_online(&self) -> bool {
        matches!(
            self,
            CameraStatus::Streaming | CameraStatus::Degraded { .. }
        )
    }

    /// Why the camera is degraded or retrying; `None` while connecting, streaming cleanly or
    /// stopped.
    pub fn reason(&self) -> Option<IngestErrorKind> {
        match self {
            CameraStatus::Degraded { kind, .. } | CameraStatus::Retrying { kind, .. } => {
                Some(*kind)
            }
            _ => None,
        }
    }
}

/// Receives a camera's events on the camera's task. Must not block: hand heavy work to a thread.
pub trait IngestHandler {
    /// A new session is playing; media time restarts. Called before its first event.
    fn session_started(&mut self);
    /// One event of the current session.
    fn event(&mut self, event: IngestEvent);
    /// The current session ended (failure or shutdown); flush what depends on it.
    fn session_ended(&mut self);
}

/// Keeps `source` streaming into `handler` until shutdown (returns `Ok`) or a failure the policy
/// does not retry (returns it: a 401 under [`AuthFailurePolicy::GiveUp`]).
pub async fn run(
    source: &CameraSource,
    options: &IngestOptions,
    mut shutdown: Shutdown,
    status: &watch::Sender<CameraStatus>,
    handler: &mut impl IngestHandler,
) -> Result<(), IngestError> {
    let mut backoff = Backoff::new(options.backoff_initial, options.backoff_cap);
    let result = loop {
        if shutdown.is_requested() {
            break Ok(());
        }
        status.send_replace(CameraStatus::Connecting);
        let started = Instant::now();
        let error = match run_once(source, options, &mut shutdown, status, handler).await {
            Ok(()) => break Ok(()),
            Err(error) => error,
        };
        if started.elapsed() >= options.healthy_after {
            backoff.reset();
        }
        let delay = match error.kind() {
            IngestErrorKind::Unauthorized => match options.on_unauthorized {
                AuthFailurePolicy::GiveUp => break Err(error),
                AuthFailurePolicy::RetrySlowly => {
                    backoff.next_delay();
                    options.unauthorized_retry
                }
            },
            _ => backoff.next_delay(),
        };
        tracing::warn!(
            camera = %source.name,
            reason = ?error.kind(),
            retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            failures = backoff.consecutive_failures(),
            "{error}"
        );
        status.send_replace(CameraStatus::Retrying {
            kind: error.kind(),
            reason: error.to_string(),
            consecutive_failures: backoff.consecutive_failures(),
        });
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.requested() => break Ok(()),
        }
    };
    status.send_replace(CameraStatus::Stopped);
    result
}

/// One session, from connect to failure or shutdown (`Ok`).
async fn run_once(
    source: &CameraSource,
    options: &IngestOptions,
    shutdown: &mut Shutdown,
    status: &watch::Sender<CameraStatus>,
    handler: &mut impl IngestHandler,
) -> Result<(), IngestError> {
    let opened = tokio::select! {
        opened = Session::open(source, options.connect_timeout, options.stall_timeout) => opened?,
        _ = shutdown.requested() => return Ok(()),
    };
    let mut session = opened;
    tracing::info!(camera = %source.name, url = %source.url, transport = %source.transport, "playing");
    handler.session_started();
    let mut streaming = false;
    // Until when the camera counts as degraded after its latest worked-around fault.
    let mut degraded_until: Option<Instant> = None;
    let result = loop {
        tokio::select! {
            event = session.next_event() => match event {
                Ok(event) => {
                    if !streaming {
                        streaming = true;
                        status.send_replace(CameraStatus::Streaming);
                        tracing::info!(camera = %source.name, "streaming");
                    }
                    if let Some((kind, reason)) = session.take_warning() {
                        tracing::warn!(camera = %source.name, reason = ?kind, "{reason}");
                        status.send_replace(CameraStatus::Degraded { kind, reason });
                        degraded_until = Some(Instant::now() + options.healthy_after);
                    } else if degraded_until.is_some_and(|until| Instant::now() >= until) {
                        degraded_until = None;
                        status.send_replace(CameraStatus::Streaming);
                        tracing::info!(camera = %source.name, "streaming cleanly again");
                    }
                    handler.event(event);
                }
                Err(error) => break Err(error),
            },
            _ = shutdown.requested() => break Ok(()),
        }
    };
    handler.session_ended();
    result
}
