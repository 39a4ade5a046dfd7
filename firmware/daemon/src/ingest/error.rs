//! The one error type of ingest, with a kind that decides retry vs give up.
//!
//! Every message names the camera and its credential-free URL; text that came from retina is
//! scrubbed of the password before it is stored here (see [`super::CameraSource::scrub`]).

use std::time::Duration;

/// What went wrong with a camera, in a few words a machine can act on: the reason code of a
/// camera's [`super::CameraStatus`] (and, through `health`, of its state upstream). Failures end
/// the session ([`IngestError::kind`]); the last two only degrade it (the box works around them
/// and records on, [`super::CameraStatus::Degraded`]).
///
/// Only [`IngestErrorKind::Unauthorized`] changes what ingest does next (see
/// [`super::AuthFailurePolicy`]); every other failure is retried with backoff. New kinds may be
/// added: a mapping to wire codes should keep a fallback for kinds it does not know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IngestErrorKind {
    /// The camera refused the credentials (401): retrying fast will not help and may lock the
    /// account; `record` gives up, `run` retries slowly.
    Unauthorized,
    /// The stream has nothing the box can record (no H.264/H.265 video).
    Unsupported,
    /// No TCP connection to the camera (refused, no route, unknown host).
    Unreachable,
    /// The camera took the connection but did not answer DESCRIBE/SETUP/PLAY in time.
    NoAnswer,
    /// The camera answered with an RTSP error status other than 401 (404 wrong path, 454, 503).
    Refused,
    /// The camera's answer to DESCRIBE (its SDP) cannot be used.
    BadDescription,
    /// The camera sent media the box cannot use: corrupt RTP, or a frame larger than
    /// [`super::MAX_FRAME_BYTES`].
    BadMedia,
    /// The session is up but no video frame came for the stall timeout.
    Stalled,
    /// The camera closed or reset the connection (a reboot, a restarted RTSP server).
    Ended,
    /// Degraded: the camera's RTP timestamps jumped forward or back; the box rebased them so
    /// media time runs on and recording continues.
    TimestampJump,
    /// Degraded: the stream parameters (SPS/PPS) changed on a frame that is not a key frame;
    /// frames up to the next key frame cannot be decoded and are not recorded.
    ParametersWithoutKeyFrame,
    /// Anything else (a reconnect may cure it).
    Transient,
}

/// An RTSP session failed.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The camera answered 401 Unauthorized.
    #[error(
        "camera {camera}: authentication failed (401 Unauthorized) at {url}; \
         check the user name and password"
    )]
    Unauthorized {
        /// Camera name.
        camera: String,
        /// Credential-free URL.
        url: String,
    },
    /// No frame arrived for too long: the stream is dead even if the socket is open.
    #[error("camera {camera}: no video frame for {}s from {url}; treating the stream as dead", stalled_for.as_secs())]
    Stalled {
        /// Camera name.
        camera: String,
        /// Credential-free URL.
        url: String,
        /// How long it was silent.
        stalled_for: Duration,
    },
    /// Connecting (DESCRIBE/SETUP/PLAY) took too long.
    #[error("camera {camera}: no answer from {url} within {}s", waited.as_secs())]
    ConnectTimeout {
        /// Camera name.
        camera: String,
        /// Credential-free URL.
        url: String,
        /// How long the attempt waited.
        waited: Duration,
    },
    /// The server ended the stream.
    #[error("camera {camera}: {url} ended the stream")]
    Ended {
        /// Camera name.
        camera: String,
        /// Credential-free URL.
        url: String,
    },
    /// The presentation has no video the box can record.
    #[error("camera {camera}: {url} offers no H.264 or H.265 video stream ({found})")]
    NoVideo {
        /// Camera name.
        camera: String,
        /// Credential-free URL.
        url: String,
        /// What the camera does offer, e.g. `video/jpeg, audio/pcma`.
        found: String,
    },
    /// A video frame larger than any camera sends: refused before it reaches the recorder.
    #[error(
        "camera {camera}: {url} sent a video frame of {frame_bytes} bytes, over the \
         {limit_bytes}-byte limit; dropping the session"
    )]
    OversizedFrame {
        /// Camera name.
        camera: String,
        /// Credential-free URL.
        url: String,
        /// The frame's size.
        frame_bytes: usize,
        /// [`super::MAX_FRAME_BYTES`].
        limit_bytes: usize,
    },
    /// Any other RTSP/RTP failure reported by retina (password scrubbed).
    #[error("camera {camera}: {what} at {url}: {message}")]
    Rtsp {
        /// Camera name.
        camera: String,
        /// Credential-free URL.
        url: String,
        /// Which kind of failure, from where in the session it happened and what retina said.
        kind: IngestErrorKind,
        /// The kind in words, for the message.
        what: &'static str,
        /// retina's description, which locates the packet for Wireshark.
        message: String,
    },
}

impl IngestError {
    /// The kind, which decides retry vs give up.
    pub fn kind(&self) -> IngestErrorKind {
        match self {
            IngestError::Unauthorized { .. } => IngestErrorKind::Unauthorized,
            IngestError::NoVideo { .. } => IngestErrorKind::Unsupported,
            IngestError::Stalled { .. } => IngestErrorKind::Stalled,
            IngestError::ConnectTimeout { .. } => IngestErrorKind::NoAnswer,
            IngestError::Ended { .. } => IngestErrorKind::Ended,
            IngestError::OversizedFrame { .. } => IngestErrorKind::BadMedia,
            IngestError::Rtsp { kind, .. } => *kind,
        }
    }
}
