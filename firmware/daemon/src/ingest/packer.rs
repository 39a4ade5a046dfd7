//! Where a session's media bytes live: frames (video and audio) packed one after another into
//! shared chunks.
//!
//! Receives each frame's bytes as retina hands them over (one `Vec` per frame, of every size from
//! a few hundred bytes to a key frame's hundreds of KB); emits [`Bytes`] that share one
//! [`CHUNK_BYTES`] allocation with the frames around them. A chunk is freed when the last frame
//! in it is dropped: a GOP's frames live and die together (written, or evicted from the
//! pre-roll), so chunks are freed whole.
//!
//! Why: the soak (16 cameras, one PIR event a minute) showed the box's live heap flat but its
//! resident memory climbing about 27 KiB a minute. Every frame was its own heap block, hundreds
//! a second, freed on another thread seconds later, and the once-a-minute release of eight
//! pre-rolls left holes that glibc's heap never gave back. A chunk is at least the allocator's
//! mmap threshold (fixed at start by [`crate::malloc::tune`]), so each is its own mapping:
//! video never sits in the heap, and a freed chunk goes straight back to the kernel. One copy
//! per frame (a few KB, already in cache) is the price.

use bytes::{Bytes, BytesMut};

/// The size of one chunk: twice glibc's default mmap threshold (128 KiB), a few seconds of a
/// 1 Mbit/s stream, a fraction of a GOP at 4 Mbit/s. A frame bigger than a chunk gets a chunk of
/// its own size.
pub const CHUNK_BYTES: usize = 256 << 10;

/// Packs frames into chunks of [`CHUNK_BYTES`].
#[derive(Debug, Default)]
pub struct FramePacker {
    /// The free tail of the chunk being filled; the frames before it are out, frozen.
    tail: BytesMut,
}

impl FramePacker {
    /// A packer with no chunk yet (the first frame allocates one).
    pub fn new() -> Self {
        Self::default()
    }

    /// The frame's bytes, copied into the current chunk (a new one when they do not fit).
    pub fn pack(&mut self, frame: &[u8]) -> Bytes {
        // `capacity` of the tail is what is left of the chunk; the check keeps `extend` from
        // ever reallocating, which would copy the chunk while frames still point into it.
        if self.tail.capacity() < frame.len() {
            self.tail = BytesMut::with_capacity(CHUNK_BYTES.max(frame.len()));
        }
        self.tail.extend_from_slice(frame);
        self.tail.split().freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: usize, fill: u8) -> Vec<u8> {
        vec![fill; len]
    }

    #[test]
    fn frames_come_back_unchanged_and_side_by_side_in_one_chunk() {
        let mut packer = FramePacker::new();
        let a = packer.pack(&frame(1000, 1));
        let b = packer.pack(&frame(3000, 2));
        let c = packer.pack(&frame(10, 3));
        assert_eq!(&a[..], &frame(1000, 1)[..]);
        assert_eq!(&b[..], &frame(3000, 2)[..]);
        assert_eq!(&c[..], &frame(10, 3)[..]);
        // One allocation: each frame starts where the one before ended.
        assert_eq!(b.as_ptr(), a.as_ptr().wrapping_add(a.len()));
        assert_eq!(c.as_ptr(), b.as_ptr().wrapping_add(b.len()));
    }

    #[test]
    fn a_frame_that_does_not_fit_starts_a_new_chunk_and_the_old_frames_stay_valid() {
        let mut packer = FramePacker::new();
        let first = packer.pack(&frame(CHUNK_BYTES - 100, 7));
        let second = packer.pack(&frame(200, 8));
        assert_ne!(second.as_ptr(), first.as_ptr().wrapping_add(first.len()));
        assert!(first.iter().all(|&b| b == 7));
        assert!(second.iter().all(|&b| b == 8));
        // The new chunk is a full one: the next frame goes beside the second.
        let third = packer.pack(&frame(50, 9));
        assert_eq!(third.as_ptr(), second.as_ptr().wrapping_add(second.len()));
    }

    #[test]
    fn a_frame_bigger_than_a_chunk_gets_its_own() {
        let mut packer = FramePacker::new();
        let small = packer.pack(&frame(10, 1));
        let big = packer.pack(&frame(CHUNK_BYTES * 3, 2));
        assert_eq!(big.len(), CHUNK_BYTES * 3);
        assert!(big.iter().all(|&b| b == 2));
        assert_eq!(&small[..], &frame(10, 1)[..]);
        let empty = packer.pack(&[]);
        assert!(empty.is_empty());
    }
}
