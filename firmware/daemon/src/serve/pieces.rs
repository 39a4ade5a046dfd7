//! Reads one stored fragment's body in pieces, checking it against the listing: the private
//! header (segment id, index, length, checksum) before the first piece, the checksum over every
//! byte after the last. A clip download holds one piece, not one fragment, whatever the
//! camera's bitrate and GOP length.
//!
//! A fragment that changes on disk while being read (the ring wrapped over it) fails
//! [`FragmentPieces::verify`]; the clip reader checks before it hands out the piece that ends a
//! fragment or a response, so a changed fragment always cuts the response short. Blocking reads
//! on the caller's thread.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use crate::store::checksum;
use crate::store::format::{
    FragmentHeader, CRC32C, FRAGMENT_HEADER_BYTES, FRAGMENT_HEADER_CHECKED_BYTES,
};
use crate::store::{FragmentInfo, SegmentInfo, StoreError};

/// Largest piece handed to the HTTP body: big enough that syscalls and per-chunk overhead do not
/// show (reads from the page cache run at hundreds of MB/s with it), small enough that a
/// download's buffers stay under the 2 MiB budget per download. A download holds a few pieces at
/// once (the one being read, the one the HTTP connection is writing, what the allocator keeps of
/// freed ones): at 256 KiB a one-hour clip peaked at 1.8-2.8 MiB above idle, at 128 KiB at
/// 1.7-2.5 MiB; 64 KiB stays below the mmap threshold of the C allocator too (README, "Clip
/// assembly", `scripts/bench-clip.sh`).
pub const PIECE_BYTES: usize = 64 << 10;

/// Bytes hashed per read when skipping over the part of a fragment a range does not send.
const SKIP_READ_BYTES: usize = 16 << 10;

/// One fragment being read.
pub struct FragmentPieces {
    file: File,
    path: PathBuf,
    fragment_offset: u64,
    body_offset: u64,
    body_len: u64,
    stored_crc: u32,
    digest: checksum::Digest,
    /// Body bytes read and hashed so far.
    hashed: u64,
}

impl std::fmt::Debug for FragmentPieces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FragmentPieces")
            .field("path", &self.path)
            .field("fragment_offset", &self.fragment_offset)
            .field("hashed", &self.hashed)
            .finish()
    }
}

impl FragmentPieces {
    /// Opens the slot file and checks the fragment's header against the listing.
    pub fn open(segment: &SegmentInfo, fragment: &FragmentInfo) -> Result<Self, StoreError> {
        let path = segment.path.clone();
        let file = File::open(&path).map_err(|e| StoreError::io(&path, "open slot", e))?;
        let mut head = [0u8; FRAGMENT_HEADER_BYTES as usize];
        file.read_exact_at(&mut head, fragment.offset)
            .map_err(|e| StoreError::io(&path, "read fragment header", e))?;
        let matches = FragmentHeader::decode(&head).is_some_and(|(header, crc)| {
            header.segment_id == segment.segment_id
                && header.index == fragment.index
                && header.body_len == fragment.body_len
                && crc == fragment.crc
        });
        let checked = head.get(8..8 + FRAGMENT_HEADER_CHECKED_BYTES);
        let (true, Some(checked)) = (matches, checked) else {
            return Err(StoreError::Overwritten {
                path,
                offset: fragment.offset,
            });
        };
        let mut digest = CRC32C.digest();
        digest.update(checked);
        Ok(FragmentPieces {
            file,
            path,
            fragment_offset: fragment.offset,
            body_offset: fragment.body_offset,
            body_len: u64::from(fragment.body_len),
            stored_crc: fragment.crc,
            digest,
            hashed: 0,
        })
    }

    /// Body bytes read so far.
    pub fn position(&self) -> u64 {
        self.hashed
    }

    /// Whether every body byte has been read.
    pub fn is_done(&self) -> bool {
        self.hashed >= self.body_len
    }

    /// Appends the next `count` body bytes (fewer at the end of the body) to `out`.
    pub fn read_piece(&mut self, count: usize, out: &mut Vec<u8>) -> Result<(), StoreError> {
        let count = (count as u64).min(self.body_len - self.hashed) as usize;
        let start = out.len();
        out.resize(start + count, 0);
        let piece = out.get_mut(start..).unwrap_or_default();
        self.file
            .read_exact_at(piece, self.body_offset + self.hashed)
            .map_err(|e| StoreError::io(&self.path, "read fragment", e))?;
        self.digest.update(piece);
        self.hashed += count as u64;
        Ok(())
    }

    /// Reads and hashes, without keeping, the body up to byte `to` (the part of the fragment
    /// before a range starts, or after it ends).
    pub fn skip_to(&mut self, to: u64) -> Result<(), StoreError> {
        let mut scratch = [0u8; SKIP_READ_BYTES];
        while self.hashed < to.min(self.body_len) {
            let count = (to.min(self.body_len) - self.hashed).min(SKIP_READ_BYTES as u64) as usize;
            let piece = scratch.get_mut(..count).unwrap_or_default();
            self.file
                .read_exact_at(piece, self.body_offset + self.hashed)
                .map_err(|e| StoreError::io(&self.path, "read fragment", e))?;
            self.digest.update(piece);
            self.hashed += count as u64;
        }
        Ok(())
    }

    /// Checks the checksum once the whole body has been read (reading the rest first).
    pub fn verify(mut self) -> Result<(), StoreError> {
        self.skip_to(self.body_len)?;
        if self.digest.finalize() == self.stored_crc {
            Ok(())
        } else {
            Err(StoreError::Overwritten {
                path: self.path,
                offset: self.fragment_offset,
            })
        }
    }
}
