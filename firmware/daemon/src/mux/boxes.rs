//! A minimal ISO BMFF box writer: big-endian fields appended to a `Vec<u8>`, with box sizes patched
//! in when the box is closed. No I/O.

use super::MuxError;

/// Appends a box of type `fourcc` whose body is written by `body`, patching its 32-bit size.
pub fn write_box<F>(buf: &mut Vec<u8>, fourcc: &[u8; 4], body: F) -> Result<(), MuxError>
where
    F: FnOnce(&mut Vec<u8>) -> Result<(), MuxError>,
{
    let start = buf.len();
    buf.extend_from_slice(&0u32.to_be_bytes());
    buf.extend_from_slice(fourcc);
    body(buf)?;
    let size = buf.len() - start;
    let size_u32 = u32::try_from(size).map_err(|_| MuxError::TooLarge {
        fourcc: String::from_utf8_lossy(fourcc).into_owned(),
        bytes: size as u64,
    })?;
    if let Some(slot) = buf.get_mut(start..start + 4) {
        slot.copy_from_slice(&size_u32.to_be_bytes());
    }
    Ok(())
}

/// Appends a full box (a box with version and 24-bit flags).
pub fn write_full_box<F>(
    buf: &mut Vec<u8>,
    fourcc: &[u8; 4],
    version: u8,
    flags: u32,
    body: F,
) -> Result<(), MuxError>
where
    F: FnOnce(&mut Vec<u8>) -> Result<(), MuxError>,
{
    write_box(buf, fourcc, |buf| {
        put_u32(buf, (u32::from(version) << 24) | (flags & 0x00ff_ffff));
        body(buf)
    })
}

/// Appends a big-endian u8.
pub fn put_u8(buf: &mut Vec<u8>, value: u8) {
    buf.push(value);
}

/// Appends a big-endian u16.
pub fn put_u16(buf: &mut Vec<u8>, value: u16) {
    buf.extend_from_slice(&value.to_be_bytes());
}

/// Appends a big-endian u32.
pub fn put_u32(buf: &mut Vec<u8>, value: u32) {
    buf.extend_from_slice(&value.to_be_bytes());
}

/// Appends a big-endian i32.
pub fn put_i32(buf: &mut Vec<u8>, value: i32) {
    buf.extend_from_slice(&value.to_be_bytes());
}

/// Appends a big-endian u64.
pub fn put_u64(buf: &mut Vec<u8>, value: u64) {
    buf.extend_from_slice(&value.to_be_bytes());
}

/// Appends `count` zero bytes.
pub fn put_zeros(buf: &mut Vec<u8>, count: usize) {
    buf.resize(buf.len() + count, 0);
}

/// The unity transformation matrix of `mvhd` and `tkhd` (16.16 and 2.30 fixed point).
pub fn put_unity_matrix(buf: &mut Vec<u8>) {
    for value in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
        put_u32(buf, value);
    }
}

/// Appends the 8-byte header of a `free` box of `size_bytes` (header included), which players
/// skip. The body is whatever already follows on disk.
pub fn put_free_box_header(buf: &mut Vec<u8>, size_bytes: u32) {
    put_u32(buf, size_bytes);
    buf.extend_from_slice(b"free");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_boxes_get_their_sizes() {
        let mut buf = Vec::new();
        write_box(&mut buf, b"moov", |buf| {
            write_full_box(buf, b"mvhd", 1, 0x0000_0003, |buf| {
                put_u16(buf, 0xabcd);
                Ok(())
            })
        })
        .unwrap();
        assert_eq!(
            buf,
            [
                0, 0, 0, 22, b'm', b'o', b'o', b'v', 0, 0, 0, 14, b'm', b'v', b'h', b'd', 1, 0, 0,
                3, 0xab, 0xcd
            ]
        );
    }
}
