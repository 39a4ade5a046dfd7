//! Framing: a frame's body plus CRC-16, COBS-encoded, ended by a `0x00` delimiter.
//!
//! Owns the bytes between frames. [`encode`] writes one frame into a caller's buffer through
//! postcard's own flavors (CRC, then COBS, into a slice), so it needs no allocator.
//! [`FrameDecoder`] takes bytes as they arrive from a socket or UART, in any chunking, and hands
//! back whole frames; a frame whose checksum or encoding is wrong is reported with its position
//! and length and skipped, and decoding resumes after the next delimiter. No I/O, no clock.

use postcard::ser_flavors::{crc::CrcModifier, Cobs, Flavor, Size, Slice};
use postcard::Serializer;

use crate::error::{EncodeError, FrameError};
use crate::frame::{change_key, decode_body, CatalogEntry, Change, Frame, Value};

/// Largest encoded frame, delimiter included, that a sender may emit and a decoder must accept.
/// 1 KiB fits the RAM of a Cortex-M0 sensor node, and on a 256 kbit/s uplink one frame holds the
/// line for at most 32 ms, so a large snapshot part cannot delay a change by much. Senders split
/// catalogs and snapshots into parts that fit ([`changes_fitting`], [`catalog_entries_fitting`]).
pub const MAX_FRAME_BYTES: usize = 1024;

/// The frame delimiter.
pub const DELIMITER: u8 = 0;

/// CRC-16/IBM-SDLC (the X.25/HDLC frame check): catches every error of up to 3 bits and every
/// burst up to 16 bits in frames of this size, for 2 bytes a frame. A link that is already
/// checksummed (TCP) makes this a second line; on a UART it is the only one.
const FRAME_CRC: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_IBM_SDLC);

/// Bytes of checksum at the end of every (COBS-decoded) frame.
const CHECKSUM_BYTES: usize = 2;

/// Writes `frame` into `buf` as it goes on the wire (COBS, checksum, delimiter) and returns the
/// written part of `buf`.
pub fn encode<'b>(frame: &Frame<'_>, buf: &'b mut [u8]) -> Result<&'b mut [u8], EncodeError> {
    let cobs = Cobs::try_new(Slice::new(buf))?;
    let mut ser = Serializer {
        output: CrcModifier::new(cobs, FRAME_CRC.digest()),
    };
    frame.write(&mut ser)?;
    Ok(ser.output.finalize()?)
}

/// Wire bytes of a frame whose body is `body_bytes` long, in the worst case of COBS overhead.
fn worst_wire_bytes(body_bytes: usize) -> usize {
    let checked = body_bytes + CHECKSUM_BYTES;
    // COBS adds one byte per started run of 254 bytes; then the delimiter.
    checked + checked / 254 + 1 + 1
}

/// Length of postcard's varint of `value`: 7 bits a byte.
fn varint_bytes(value: u64) -> usize {
    let significant_bits = (u64::BITS - value.leading_zeros()).max(1) as usize;
    significant_bits.div_ceil(7)
}

// Worst case of what precedes a batch's changes: header varint (`u32` seq << 3, 5 bytes),
// the snapshot's last-part flag (1 byte), and the time varint.
fn batch_prefix_bytes(time_ms: u64) -> usize {
    5 + 1 + varint_bytes(time_ms)
}

/// How many of the leading `changes` fit, with the time `time_ms`, in one changes frame or
/// snapshot part of at most `max_wire_bytes` (at least one, so a sender always makes progress;
/// only a complex value larger than a frame can then exceed the limit).
pub fn changes_fitting(changes: &[Change<'_>], time_ms: u64, max_wire_bytes: usize) -> usize {
    let mut body_bytes = batch_prefix_bytes(time_ms);
    let mut previous_id = 0;
    for (count, change) in changes.iter().enumerate() {
        body_bytes += varint_bytes(change_key(previous_id, change));
        body_bytes += match change.value {
            Value::Binary(_) => 0,
            Value::Scalar(_) => core::mem::size_of::<f32>(),
            Value::Complex(bytes) => varint_bytes(bytes.len() as u64) + bytes.len(),
            Value::Unsigned(number) => varint_bytes(number),
        };
        if count > 0 && worst_wire_bytes(body_bytes) > max_wire_bytes {
            return count;
        }
        previous_id = change.id.0;
    }
    changes.len()
}

/// Bytes a non-binary value takes in a packed snapshot (a binary value takes a bit).
fn packed_value_bytes(value: &Value<'_>) -> usize {
    match value {
        Value::Binary(_) => 0,
        Value::Scalar(_) => core::mem::size_of::<f32>(),
        Value::Complex(bytes) => varint_bytes(bytes.len() as u64) + bytes.len(),
        Value::Unsigned(number) => varint_bytes(*number),
    }
}

/// How many of the leading `changes` (sorted by id, one per id) fit, with the time `time_ms`,
/// in one [`crate::PackedSnapshot`] part of at most `max_wire_bytes` (at least one).
pub fn packed_snapshot_fitting(
    changes: &[Change<'_>],
    time_ms: u64,
    max_wire_bytes: usize,
) -> usize {
    let Some(first) = changes.first() else {
        return 0;
    };
    // Header (5, worst case), flags, time, first id, span (5, worst case).
    let prefix = 5 + 1 + varint_bytes(time_ms) + varint_bytes(u64::from(first.id.0)) + 5;
    let (mut binaries, mut value_bytes) = (0usize, 0usize);
    for (count, change) in changes.iter().enumerate() {
        if matches!(change.value, Value::Binary(_)) {
            binaries += 1;
        } else {
            value_bytes += packed_value_bytes(&change.value);
        }
        let span = change.id.0.saturating_sub(first.id.0) as usize + 1;
        let presence = if span == count + 1 {
            0
        } else {
            span.div_ceil(8)
        };
        let body_bytes = prefix + presence + binaries.div_ceil(8) + value_bytes;
        if count > 0 && worst_wire_bytes(body_bytes) > max_wire_bytes {
            return count;
        }
    }
    changes.len()
}

/// Most pack bytes one [`crate::CatalogPackPart`] of at most `max_wire_bytes` can carry.
pub fn catalog_pack_part_capacity(max_wire_bytes: usize) -> usize {
    // Header (5, worst case) and the last-part flag; then the largest data that still fits.
    let mut data = max_wire_bytes;
    while data > 0 && worst_wire_bytes(5 + 1 + data) > max_wire_bytes {
        data -= 1;
    }
    data.max(1)
}

/// How many of the leading `entries` fit in one catalog frame of at most `max_wire_bytes` (at
/// least one).
pub fn catalog_entries_fitting(entries: &[CatalogEntry<'_>], max_wire_bytes: usize) -> usize {
    // Header varint, worst case for a `u32` sequence number.
    let mut body_bytes = 5;
    for (count, entry) in entries.iter().enumerate() {
        body_bytes += postcard::serialize_with_flavor(entry, Size::default()).unwrap_or(usize::MAX);
        if count > 0 && worst_wire_bytes(body_bytes) > max_wire_bytes {
            return count;
        }
    }
    entries.len()
}

/// Streaming decoder: feed it bytes as they arrive, get whole, checksum-verified frames.
///
/// `N` is the largest encoded frame it accepts (delimiter excluded); longer runs are skipped to
/// the next delimiter and reported as [`FrameError::TooLong`]. Offsets count bytes fed since
/// the decoder was made. Holds one frame's bytes; never allocates.
pub struct FrameDecoder<const N: usize = MAX_FRAME_BYTES> {
    buf: [u8; N],
    len: usize,
    /// The current frame outgrew `buf`: its bytes are being dropped up to the next delimiter.
    overflowed: bool,
    frame_start: u64,
    consumed: u64,
}

/// What [`FrameDecoder::feed`] found.
#[derive(Debug)]
pub enum Feed<'d, 'i> {
    /// All input was taken; no frame is complete yet.
    NeedMore,
    /// A frame whose checksum and header checked out.
    Frame {
        /// The frame; it borrows the decoder until dropped.
        frame: Frame<'d>,
        /// Stream offset of the frame's first byte.
        offset: u64,
        /// Input after the frame's delimiter: feed it next.
        rest: &'i [u8],
    },
    /// Bytes up to and including a delimiter were dropped; decoding resumes after it.
    Rejected {
        /// Why.
        error: FrameError,
        /// Stream offset of the first dropped byte.
        offset: u64,
        /// How many bytes were dropped, delimiter included; `offset + skipped_bytes` is where
        /// decoding resynchronised.
        skipped_bytes: u64,
        /// Input after the delimiter: feed it next.
        rest: &'i [u8],
    },
}

impl<const N: usize> Default for FrameDecoder<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> FrameDecoder<N> {
    /// A decoder at the start of a stream.
    pub const fn new() -> Self {
        FrameDecoder {
            buf: [0; N],
            len: 0,
            overflowed: false,
            frame_start: 0,
            consumed: 0,
        }
    }

    /// Bytes fed so far that belong to a frame not yet complete (at the end of a stream: the
    /// length of a truncated last frame).
    pub fn pending_bytes(&self) -> u64 {
        self.consumed - self.frame_start
    }

    /// Takes bytes from `input` up to the end of the next frame, and says what it found. Call
    /// again with the returned `rest` until it answers [`Feed::NeedMore`].
    pub fn feed<'d, 'i>(&'d mut self, input: &'i [u8]) -> Feed<'d, 'i> {
        let mut input = input;
        if self.len == 0 && !self.overflowed {
            // Delimiters between frames (or a sender flushing a line) are not frames.
            let empty_frames = input.iter().take_while(|byte| **byte == DELIMITER).count();
            input = input.get(empty_frames..).unwrap_or_default();
            self.consumed += empty_frames as u64;
            self.frame_start = self.consumed;
        }
        let Some(end) = input.iter().position(|byte| *byte == DELIMITER) else {
            self.take_partial(input);
            return Feed::NeedMore;
        };
        let (part, rest) = input.split_at(end);
        let rest = rest.get(1..).unwrap_or_default();
        self.take_partial(part);
        self.consumed += 1;
        let offset = self.frame_start;
        let skipped_bytes = self.consumed - self.frame_start;
        self.frame_start = self.consumed;
        let encoded_len = core::mem::take(&mut self.len);
        let rejected = |error| Feed::Rejected {
            error,
            offset,
            skipped_bytes,
            rest,
        };
        if core::mem::take(&mut self.overflowed) {
            return rejected(FrameError::TooLong { limit_bytes: N });
        }
        match self.verify(encoded_len) {
            Ok(frame) => Feed::Frame {
                frame,
                offset,
                rest,
            },
            Err(error) => rejected(error),
        }
    }

    fn take_partial(&mut self, part: &[u8]) {
        self.consumed += part.len() as u64;
        if self.overflowed {
            return;
        }
        match self.buf.get_mut(self.len..self.len + part.len()) {
            Some(space) => {
                space.copy_from_slice(part);
                self.len += part.len();
            }
            None => {
                self.overflowed = true;
                self.len = 0;
            }
        }
    }

    fn verify(&mut self, encoded_len: usize) -> Result<Frame<'_>, FrameError> {
        let encoded = self
            .buf
            .get_mut(..encoded_len)
            .ok_or(FrameError::TooShort)?;
        let decoded_len = cobs::decode_in_place(encoded).map_err(|_| FrameError::Cobs)?;
        let decoded = self.buf.get(..decoded_len).ok_or(FrameError::Cobs)?;
        let body_len = decoded_len
            .checked_sub(CHECKSUM_BYTES)
            .filter(|len| *len > 0)
            .ok_or(FrameError::TooShort)?;
        let (body, checksum) = decoded.split_at(body_len);
        let received = <[u8; CHECKSUM_BYTES]>::try_from(checksum)
            .map(u16::from_le_bytes)
            .map_err(|_| FrameError::TooShort)?;
        if FRAME_CRC.checksum(body) != received {
            return Err(FrameError::Checksum);
        }
        decode_body(body)
    }
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
