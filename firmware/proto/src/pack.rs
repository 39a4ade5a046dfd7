//! The compressed catalog of version 2 (feature `pack`): a whole catalog, or the entries that
//! follow ones the receiver already has, as one byte string that travels in
//! [`crate::CatalogPackPart`] frames.
//!
//! Pure functions of bytes, no I/O; needs an allocator. Layout of a pack, before compression:
//!
//! ```text
//! varint format       0
//! varint base         entries the receiver must already have (0: a whole catalog)
//! varint count        entries in this pack
//! count entries, in id order:
//!   varint id_gap     id − (previous id + 1); the first entry's gap counts from `base`
//!   varint shared     bytes of the name shared with the previous name (0 for the first)
//!   string suffix     the rest of the name (varint length, bytes)
//!   kind, role        as in a catalog frame (postcard enums)
//! ```
//!
//! then compressed with raw DEFLATE (RFC 1951, no zlib header). Sensor names at a site are
//! long and repetitive ("b07_f12_pir_0421"): front coding turns each into its few differing
//! characters, and DEFLATE squeezes the regular rest (ids, kinds, roles). Measured on the
//! 60,000-sensor benchmark catalog by `pack_shrinks_a_site_catalog` below.

use alloc::string::String;
use alloc::vec::Vec;

use postcard::ser_flavors::Flavor;
use serde::Serializer as _;

use crate::frame::{CatalogEntry, Kind, Role, SensorId};

/// The only format this version writes and reads.
const FORMAT: u32 = 0;

/// DEFLATE level: 9 costs about twice the CPU of the default 6 for a few percent less; a pack
/// is made once per catalog, so the smaller one is worth it.
const LEVEL: u8 = 9;

/// Why a pack could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PackError {
    /// The compressed bytes are not valid DEFLATE, or inflate past the limit.
    #[error("catalog pack does not inflate: {0}")]
    Inflate(&'static str),
    /// The inflated bytes do not follow the layout.
    #[error("malformed catalog pack: {0}")]
    Malformed(&'static str),
    /// A format this version does not know.
    #[error("catalog pack format {0} is not known to this version")]
    Format(u32),
}

/// The pack of `entries` (sorted by id), for a receiver that already has the first `base`
/// entries of the catalog.
pub fn encode_catalog_pack(base: u32, entries: &[CatalogEntry<'_>]) -> Vec<u8> {
    let mut ser = postcard::Serializer {
        output: postcard::ser_flavors::AllocVec::new(),
    };
    // AllocVec and these types cannot fail to serialise.
    let _ = write_payload(&mut ser, base, entries);
    let payload = ser.output.finalize().unwrap_or_default();
    miniz_oxide::deflate::compress_to_vec(&payload, LEVEL)
}

fn write_payload<F: Flavor>(
    ser: &mut postcard::Serializer<F>,
    base: u32,
    entries: &[CatalogEntry<'_>],
) -> postcard::Result<()> {
    use serde::Serialize as _;
    ser.serialize_u32(FORMAT)?;
    ser.serialize_u32(base)?;
    ser.serialize_u32(u32::try_from(entries.len()).unwrap_or(u32::MAX))?;
    let mut next_id = base;
    let mut previous_name: &str = "";
    for entry in entries {
        ser.serialize_u32(entry.id.0.wrapping_sub(next_id))?;
        next_id = entry.id.0.wrapping_add(1);
        let shared = shared_prefix(previous_name, entry.name);
        ser.serialize_u32(shared as u32)?;
        ser.serialize_str(entry.name.get(shared..).unwrap_or_default())?;
        entry.kind.serialize(&mut *ser)?;
        entry.role.serialize(&mut *ser)?;
        previous_name = entry.name;
    }
    Ok(())
}

/// Bytes two names share at the start, cut back to a character boundary.
fn shared_prefix(a: &str, b: &str) -> usize {
    let mut shared = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    while !b.is_char_boundary(shared) {
        shared -= 1;
    }
    shared
}

/// Reads a pack, inflating at most `max_inflated_bytes` (a pack is data from the network: the
/// limit stops a small one from inflating into all the receiver's memory). Calls `entry` for
/// each entry in order and returns `base`, the entries the receiver must already have.
pub fn decode_catalog_pack(
    pack: &[u8],
    max_inflated_bytes: usize,
    mut entry: impl FnMut(CatalogEntry<'_>),
) -> Result<u32, PackError> {
    let payload = miniz_oxide::inflate::decompress_to_vec_with_limit(pack, max_inflated_bytes)
        .map_err(|error| {
            PackError::Inflate(match error.status {
                miniz_oxide::inflate::TINFLStatus::HasMoreOutput => "larger than the limit",
                _ => "invalid DEFLATE data",
            })
        })?;
    let malformed = PackError::Malformed;
    let (format, rest) = take::<u32>(&payload).map_err(|_| malformed("format"))?;
    if format != FORMAT {
        return Err(PackError::Format(format));
    }
    let (base, rest) = take::<u32>(rest).map_err(|_| malformed("base"))?;
    let (count, mut rest) = take::<u32>(rest).map_err(|_| malformed("count"))?;
    let mut next_id = base;
    let mut name = String::new();
    for _ in 0..count {
        let (gap, after) = take::<u32>(rest).map_err(|_| malformed("id"))?;
        let id = next_id.checked_add(gap).ok_or(malformed("id beyond u32"))?;
        let (shared, after) = take::<u32>(after).map_err(|_| malformed("name"))?;
        let (suffix, after) = take::<&str>(after).map_err(|_| malformed("name"))?;
        if shared as usize > name.len() || !name.is_char_boundary(shared as usize) {
            return Err(malformed("shared name prefix"));
        }
        name.truncate(shared as usize);
        name.push_str(suffix);
        let (kind, after) = take::<Kind<'_>>(after).map_err(|_| malformed("kind"))?;
        let (role, after) = take::<Role>(after).map_err(|_| malformed("role"))?;
        entry(CatalogEntry {
            id: SensorId(id),
            name: &name,
            kind,
            role,
        });
        next_id = id.saturating_add(1);
        rest = after;
    }
    if !rest.is_empty() {
        return Err(malformed("bytes after the last entry"));
    }
    Ok(base)
}

fn take<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> postcard::Result<(T, &'a [u8])> {
    postcard::take_from_bytes::<T>(bytes)
}

#[cfg(test)]
mod tests {
    use std::format;
    use std::string::ToString;
    use std::vec;
    use std::{println, vec::Vec};

    use proptest::prelude::*;

    use super::*;
    use crate::frame::{CameraRole, CatalogHasher};

    /// The names of the benchmark site (firmware/daemon/examples/state_site.rs).
    fn site_entries() -> Vec<(u32, String, bool)> {
        let mut entries = Vec::new();
        for index in 0..60_000u32 {
            let kind = if index % 4 == 3 { "door" } else { "pir" };
            let name = format!(
                "b{:02}_f{:02}_{kind}_{:04}",
                index / 5000,
                (index / 250) % 20,
                index % 250
            );
            entries.push((index, name, true));
        }
        for index in 0..2_000u32 {
            let name = format!(
                "b{:02}_f{:02}_temp_{:03}",
                index / 200,
                (index / 10) % 20,
                index % 10
            );
            entries.push((60_000 + index, name, false));
        }
        entries
    }

    fn borrowed(entries: &[(u32, String, bool)]) -> Vec<CatalogEntry<'_>> {
        entries
            .iter()
            .map(|(id, name, binary)| CatalogEntry {
                id: SensorId(*id),
                name,
                kind: if *binary {
                    Kind::Binary
                } else {
                    Kind::Scalar { unit: "°C" }
                },
                role: Role::Sensor,
            })
            .collect()
    }

    fn decoded(pack: &[u8]) -> (u32, Vec<(u32, String, Kind<'static>, Role)>) {
        let mut out = Vec::new();
        let base = decode_catalog_pack(pack, 64 << 20, |entry| {
            let kind = match entry.kind {
                Kind::Binary => Kind::Binary,
                Kind::Scalar { .. } => Kind::Scalar { unit: "°C" },
                Kind::Complex => Kind::Complex,
                Kind::Unsigned { .. } => Kind::Unsigned { unit: "" },
            };
            out.push((entry.id.0, entry.name.to_string(), kind, entry.role));
        })
        .expect("decodes");
        (base, out)
    }

    #[test]
    fn pack_shrinks_a_site_catalog() {
        let owned = site_entries();
        let entries = borrowed(&owned);
        let plain: usize = entries
            .iter()
            .map(|e| postcard::to_allocvec(e).unwrap().len())
            .sum();
        let deflate_only =
            miniz_oxide::deflate::compress_to_vec(&postcard::to_allocvec(&entries).unwrap(), LEVEL)
                .len();
        let pack = encode_catalog_pack(0, &entries);
        println!(
            "60,000 binary + 2,000 scalar entries: catalog frames' entries {plain} B, DEFLATE alone {deflate_only} B, front-coded + DEFLATE {} B ({:.1}x)",
            pack.len(),
            plain as f64 / pack.len() as f64
        );
        let (base, back) = decoded(&pack);
        assert_eq!(base, 0);
        assert_eq!(back.len(), entries.len());
        for (entry, (id, name, _, role)) in entries.iter().zip(&back) {
            assert_eq!(
                (entry.id.0, entry.name, entry.role),
                (*id, name.as_str(), *role)
            );
        }
        // The point of the pack: at 256 kbit/s (32,000 B/s) it must cross in seconds.
        assert!(pack.len() * 20 < plain, "{} of {plain}", pack.len());
    }

    #[test]
    fn a_tail_pack_starts_after_the_base() {
        let owned = site_entries();
        let entries = borrowed(&owned);
        let pack = encode_catalog_pack(61_990, &entries[61_990..]);
        let (base, back) = decoded(&pack);
        assert_eq!(base, 61_990);
        assert_eq!(back.first().map(|e| e.0), Some(61_990));
        assert_eq!(back.len(), 10);
    }

    #[test]
    fn sparse_ids_unicode_names_and_every_kind_round_trip() {
        let entries = vec![
            CatalogEntry {
                id: SensorId(3),
                name: "küche_temp",
                kind: Kind::Scalar { unit: "°C" },
                role: Role::Health,
            },
            CatalogEntry {
                id: SensorId(4),
                name: "küche_tür",
                kind: Kind::Binary,
                role: Role::Sensor,
            },
            CatalogEntry {
                id: SensorId(1_000_000),
                name: "front_status",
                kind: Kind::Unsigned { unit: "" },
                role: Role::Camera(CameraRole::Status),
            },
            CatalogEntry {
                id: SensorId(u32::MAX),
                name: "plate",
                kind: Kind::Complex,
                role: Role::Counter,
            },
        ];
        let (_, back) = decoded(&encode_catalog_pack(0, &entries));
        let names: Vec<&str> = back.iter().map(|e| e.1.as_str()).collect();
        assert_eq!(names, ["küche_temp", "küche_tür", "front_status", "plate"]);
        assert_eq!(back[2].0, 1_000_000);
        assert_eq!(back[3].0, u32::MAX);
        assert_eq!(back[2].3, Role::Camera(CameraRole::Status));
        // The hash is over the entries, not the pack: both ends compute the same id.
        let mut hasher = CatalogHasher::new();
        entries.iter().for_each(|e| hasher.add(e));
        assert_eq!(hasher.finish().entries, 4);
    }

    #[test]
    fn a_pack_inflating_past_the_limit_is_refused() {
        let owned = site_entries();
        let pack = encode_catalog_pack(0, &borrowed(&owned));
        assert_eq!(
            decode_catalog_pack(&pack, 100_000, |_| {}),
            Err(PackError::Inflate("larger than the limit"))
        );
        // A bomb: megabytes of zeros in a few kilobytes.
        let bomb = miniz_oxide::deflate::compress_to_vec(&vec![0u8; 8 << 20], LEVEL);
        assert!(bomb.len() < 64 << 10);
        assert!(decode_catalog_pack(&bomb, 1 << 20, |_| {}).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let _ = decode_catalog_pack(&bytes, 1 << 20, |_| {});
        }

        #[test]
        fn random_payloads_never_panic(payload in proptest::collection::vec(prop_oneof![4 => 0u8..8, 1 => any::<u8>()], 0..400)) {
            // Valid DEFLATE around an arbitrary payload reaches the layout parser.
            let pack = miniz_oxide::deflate::compress_to_vec(&payload, 1);
            let _ = decode_catalog_pack(&pack, 1 << 20, |_| {});
        }
    }
}
