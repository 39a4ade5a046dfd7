//! CRC-32C (Castagnoli, the iSCSI polynomial), the checksum of slot headers, init segments,
//! event records and fragments: every byte of video is hashed once when written and again when
//! a clip is read.
//!
//! Owns no state; computes with the CPU's CRC-32C instruction where it has one (SSE 4.2 on
//! x86_64, the ARMv8 CRC extension on aarch64 — every Pi from the 3 on — both detected at run
//! time by the `crc32c` crate), and a table-driven loop elsewhere (armv7 builds). The values are
//! the standard CRC-32C (`CRC_32_ISCSI`) whichever path computes them, so the on-disk format does
//! not depend on the CPU; the tests below hold the known check values and compare against an
//! independent software implementation.

/// The algorithm, as a value with the interface the store's code uses: [`Crc32c::checksum`] for
/// one slice, [`Crc32c::digest`] for data that arrives in pieces.
#[derive(Clone, Copy, Debug, Default)]
pub struct Crc32c;

/// The one instance (a `static`, so digests can be made anywhere without passing it around).
pub static CRC32C: Crc32c = Crc32c;

impl Crc32c {
    /// CRC-32C of `bytes`.
    #[inline]
    pub fn checksum(&self, bytes: &[u8]) -> u32 {
        crc32c::crc32c(bytes)
    }

    /// An empty running checksum.
    #[inline]
    pub fn digest(&self) -> Digest {
        Digest { crc: 0 }
    }
}

/// A running CRC-32C over bytes given in pieces; equal to [`Crc32c::checksum`] of the pieces
/// joined.
#[derive(Clone, Copy, Debug)]
pub struct Digest {
    crc: u32,
}

impl Digest {
    /// Adds `bytes` to the checksum.
    #[inline]
    pub fn update(&mut self, bytes: &[u8]) {
        self.crc = crc32c::crc32c_append(self.crc, bytes);
    }

    /// The checksum of everything given so far.
    #[inline]
    pub fn finalize(self) -> u32 {
        self.crc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The software CRC-32C the store used before (slice-by-16 tables), as the reference: the
    /// format must not change with the implementation.
    static REFERENCE: crc::Crc<u32, crc::Table<16>> =
        crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISCSI);

    #[test]
    fn known_check_values() {
        // The catalogue's check value for "123456789", and RFC 3720's test vectors (B.4).
        assert_eq!(CRC32C.checksum(b"123456789"), 0xE306_9283);
        assert_eq!(CRC32C.checksum(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(CRC32C.checksum(&[0xffu8; 32]), 0x62A8_AB43);
        let ascending: Vec<u8> = (0..32).collect();
        assert_eq!(CRC32C.checksum(&ascending), 0x46DD_794E);
        assert_eq!(CRC32C.checksum(b""), 0);
    }

    #[test]
    fn equals_the_software_reference_at_every_length_and_split() {
        // Lengths around the hardware path's 8-byte words and its 3-way interleaved blocks,
        // every starting alignment, and a GOP-sized buffer.
        let data: Vec<u8> = (0u32..70_000)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for start in 0..8 {
            for len in (0..300).chain([1023, 1024, 4095, 8192, 8193, 24_577, 69_000 - start]) {
                let bytes = &data[start..start + len];
                assert_eq!(
                    CRC32C.checksum(bytes),
                    REFERENCE.checksum(bytes),
                    "start {start} len {len}"
                );
            }
        }
        for split in [0, 1, 7, 8, 60, 4096, 33_333, 70_000] {
            let (a, b) = data.split_at(split);
            let mut digest = CRC32C.digest();
            digest.update(a);
            digest.update(b);
            assert_eq!(
                digest.finalize(),
                REFERENCE.checksum(&data),
                "split {split}"
            );
        }
    }
}
