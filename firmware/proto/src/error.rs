//! Errors of the wire format: why a frame was rejected, why one could not be written.
//!
//! Plain data, no I/O. Non-exhaustive so a later version can add reasons without breaking users.

use crate::frame::SensorId;

/// Why received bytes were not a frame, or a frame's content could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum FrameError {
    /// The CRC-16 over the frame did not match: bits changed on the way.
    #[error("checksum mismatch")]
    Checksum,
    /// The bytes between two delimiters are not valid COBS.
    #[error("invalid COBS encoding")]
    Cobs,
    /// Too few bytes to hold a header and the checksum.
    #[error("frame too short")]
    TooShort,
    /// More bytes than the decoder's buffer before the next delimiter.
    #[error("frame longer than {limit_bytes} bytes")]
    TooLong {
        /// The decoder's buffer size.
        limit_bytes: usize,
    },
    /// The header names a frame kind this version does not know.
    #[error("unknown frame kind {0}")]
    UnknownFrameKind(u8),
    /// The checksum matched but the named part of the body does not parse.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// A change names a sensor the receiver's catalog does not have.
    #[error("change for sensor {} which is not in the catalog", .0 .0)]
    UnknownSensor(SensorId),
}

/// Why a frame could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum EncodeError {
    /// The output buffer is too small for the frame.
    #[error("frame does not fit the output buffer")]
    BufferFull,
    /// The serializer refused a value (not expected for these frame types).
    #[error("frame could not be serialized")]
    Serialize,
}

impl From<postcard::Error> for EncodeError {
    fn from(error: postcard::Error) -> Self {
        match error {
            postcard::Error::SerializeBufferFull => EncodeError::BufferFull,
            _ => EncodeError::Serialize,
        }
    }
}
