//! The one error type of ingest, with a kind that decides retry vs give up.
//!
//! Every message names the camera and its credential-free URL; text that came from retina is
//! scrubbed of the password before it is stored here (see [`super::CameraSource::scrub`]).

use std::time::Duration;

/// What kind of failure, which decides what the caller does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IngestErrorKind {
    /// The camera refused the credentials (401): retrying fast will not help and may lock the
    /// account; `record` gives up, `run` retries slowly.
    Unauthorized,
    /// The stream has nothing the box can record (no H.264/H.265 video).
    Unsupported,
    /// Anything a reconnect may cure: refused connection, reset, stall, timeout, bad packet.
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
    /// Any other RTSP/RTP failure reported by retina (password scrubbed).
    #[error("camera {camera}: RTSP failure at {url}: {message}")]
    Rtsp {
        /// Camera name.
        camera: String,
        /// Credential-free URL.
        url: String,
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
            _ => IngestErrorKind::Transient,
        }
    }
}
