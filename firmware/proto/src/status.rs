//! Status codes: what an [`ValueKind::Unsigned`](crate::ValueKind) value means for the roles
//! that carry a state rather than a count (a camera's status, the store's status).
//!
//! Plain data, no I/O. A camera's status is one varint `reason << 3 | state`: one byte on the
//! wire for every reason below 16. Receivers show codes they do not know as numbers, so a later
//! version can add reasons (and up to three more states) without breaking older receivers.

/// Bits of a camera status code that hold the [`CameraState`].
const STATE_BITS: u32 = 3;

/// What a camera is doing, as `<camera>_status` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum CameraState {
    /// Frames arrive and reach the store.
    Online,
    /// Connecting (first attempt, or again after a wait).
    Connecting,
    /// Not connected; the reason says why, and the box retries.
    Offline,
    /// Frames arrive but something is wrong with them or with where they go (the reason says what).
    Degraded,
    /// The box stopped this camera (shutdown, or it gave up).
    Stopped,
}

/// Why a camera is in its [`CameraState`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum CameraReason {
    /// Nothing to report.
    None,
    /// The camera does not answer, refuses the connection, or the connection broke.
    Unreachable,
    /// The camera refused the credentials.
    AuthFailed,
    /// Connected, but no frames arrive.
    NoData,
    /// The stream is malformed (garbage or broken RTP, an unusable SDP).
    BadStream,
    /// The stream's timestamps jump or run backwards.
    Timestamps,
    /// The camera's video is not being written (the store refuses it).
    Storage,
    /// The camera offers no video the box can record (no H.264/H.265).
    Unsupported,
    /// The camera answered with an RTSP error (a wrong path, 454, 503).
    Refused,
}

/// The store's health, as `storage_status` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum StoreState {
    /// Writes succeed.
    Ok,
    /// The disk is full: writes fail for lack of space.
    Full,
    /// The store's directory or disk vanished (an unplugged USB disk).
    Missing,
    /// Writes fail with an I/O error.
    IoError,
    /// The file system is read-only (the kernel remounts a failing card read-only).
    ReadOnly,
}

macro_rules! coded {
    ($type:ident { $($variant:ident = $code:literal => $name:literal),* $(,)? }) => {
        impl $type {
            /// The number on the wire.
            pub const fn code(self) -> u8 {
                match self { $($type::$variant => $code),* }
            }

            /// The variant with this number, if this version knows it.
            pub const fn from_code(code: u64) -> Option<Self> {
                match code { $($code => Some($type::$variant),)* _ => None }
            }

            /// The word receivers show (`snake_case`, stable: scripts match on it).
            pub const fn name(self) -> &'static str {
                match self { $($type::$variant => $name),* }
            }
        }
    };
}

coded!(CameraState {
    Online = 0 => "online",
    Connecting = 1 => "connecting",
    Offline = 2 => "offline",
    Degraded = 3 => "degraded",
    Stopped = 4 => "stopped",
});

coded!(CameraReason {
    None = 0 => "none",
    Unreachable = 1 => "unreachable",
    AuthFailed = 2 => "auth_failed",
    NoData = 3 => "no_data",
    BadStream = 4 => "bad_stream",
    Timestamps = 5 => "timestamps",
    Storage = 6 => "storage",
    Unsupported = 7 => "unsupported",
    Refused = 8 => "refused",
});

coded!(StoreState {
    Ok = 0 => "ok",
    Full = 1 => "full",
    Missing = 2 => "missing",
    IoError = 3 => "io_error",
    ReadOnly = 4 => "read_only",
});

/// A camera status value: `reason << 3 | state`.
pub const fn camera_status_code(state: CameraState, reason: CameraReason) -> u64 {
    ((reason.code() as u64) << STATE_BITS) | state.code() as u64
}

/// The raw state and reason numbers of a camera status value (a receiver shows numbers it has
/// no name for as numbers).
pub const fn split_camera_status(code: u64) -> (u64, u64) {
    (code & ((1 << STATE_BITS) - 1), code >> STATE_BITS)
}

/// A camera status code in words, as receivers show it: `online`, `offline: auth_failed`; a state
/// or reason this version has no name for as its number (`state 6: reason 9`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CameraStatusWords(pub u64);

impl core::fmt::Display for CameraStatusWords {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (state, reason) = split_camera_status(self.0);
        match CameraState::from_code(state) {
            Some(state) => f.write_str(state.name())?,
            None => write!(f, "state {state}")?,
        }
        match CameraReason::from_code(reason) {
            Some(CameraReason::None) => Ok(()),
            Some(reason) => write!(f, ": {}", reason.name()),
            None => write!(f, ": reason {reason}"),
        }
    }
}

/// A store status code in words: `ok`, `read_only`; one this version has no name for as
/// `state N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreStatusWords(pub u64);

impl core::fmt::Display for StoreStatusWords {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match StoreState::from_code(self.0) {
            Some(state) => f.write_str(state.name()),
            None => write!(f, "state {}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camera_status_codes_round_trip_in_one_byte() {
        let states = [
            CameraState::Online,
            CameraState::Connecting,
            CameraState::Offline,
            CameraState::Degraded,
            CameraState::Stopped,
        ];
        for state in states {
            for reason_code in 0..9 {
                let reason = CameraReason::from_code(reason_code).unwrap();
                let code = camera_status_code(state, reason);
                // One varint byte holds 7 bits: reasons below 16.
                assert!(code < 128, "{code}");
                let (s, r) = split_camera_status(code);
                assert_eq!(CameraState::from_code(s), Some(state));
                assert_eq!(CameraReason::from_code(r), Some(reason));
            }
        }
        assert_eq!(
            camera_status_code(CameraState::Degraded, CameraReason::Storage),
            6 << 3 | 3
        );
        assert_eq!(CameraReason::from_code(9), None);
        assert_eq!(StoreState::from_code(4), Some(StoreState::ReadOnly));
        assert_eq!(StoreState::ReadOnly.name(), "read_only");
    }

    /// The words (tests have std).
    fn words(value: impl core::fmt::Display) -> std::string::String {
        std::format!("{value}")
    }

    #[test]
    fn status_codes_in_words_and_unknown_ones_as_numbers() {
        let code = camera_status_code(CameraState::Offline, CameraReason::AuthFailed);
        assert_eq!(words(CameraStatusWords(code)), "offline: auth_failed");
        let online = camera_status_code(CameraState::Online, CameraReason::None);
        assert_eq!(words(CameraStatusWords(online)), "online");
        assert_eq!(words(CameraStatusWords(9 << 3 | 6)), "state 6: reason 9");
        assert_eq!(words(StoreStatusWords(4)), "read_only");
        assert_eq!(words(StoreStatusWords(42)), "state 42");
    }
}
