//! Writes the seed inputs of the fuzz corpus (`fuzz/corpus/TARGET/seed-*`): valid inputs each
//! target's fuzzer starts from. Usage: `fuzz-seeds CORPUS_DIR` (run from the repository root:
//! `cargo run -p edgenvr-tests --bin fuzz-seeds -- fuzz/corpus`).
//!
//! - `state_frames`: a box session as the wire carries it, encoded by `edgenvr_proto::encode`:
//!   protocol version 2 (hello naming the catalog, catalog pack, packed snapshot, changes,
//!   heartbeat) fed whole and byte by byte, and once with a damaged frame in the middle; and a
//!   version 1 session (hello, catalog, snapshot, changes, heartbeat);
//! - `config`: the shipped configs (`examples/config.toml`, `packaging/config.toml`) and the
//!   smallest usable one;
//! - `range_header`: the Range headers players and `nvrctl pull` send, against clip lengths;
//! - `slot_scan`: real slot files written by the store's own writer (synthetic H.264 GOPs): the
//!   slot header, init segment and a chain of fragments, cut after the last fragment and closed
//!   with a tail cover.

use std::path::Path;

use anyhow::Context as _;
use bytes::Bytes;
use edgenvr::media::synthetic;
use edgenvr::store::scan::{scan_slot, Verify};
use edgenvr::store::{Store, WriterOptions};
use edgenvr_proto::{
    encode, Batch, Body, CameraRole, Catalog, CatalogEntry, CatalogHasher, CatalogPackPart, Change,
    Frame, Hello, Kind, PackedSnapshot, Role, SensorId, Snapshot, Value, PROTOCOL_VERSION,
};
use edgenvr_tests::test_store::{init_store_of_1mib_slots, WALL_START_MS};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, corpus] = args.as_slice() else {
        anyhow::bail!("usage: fuzz-seeds CORPUS_DIR");
    };
    let corpus = Path::new(corpus);
    let write = |target: &str, name: &str, bytes: &[u8]| -> anyhow::Result<()> {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("seed-{name}")), bytes)?;
        Ok(())
    };

    let session = state_session(true)?;
    write(
        "state_frames",
        "session-v1",
        &[[0u8].as_slice(), &state_session(false)?].concat(),
    )?;
    write(
        "state_frames",
        "session",
        &[[0u8].as_slice(), &session].concat(),
    )?;
    write(
        "state_frames",
        "session-bytewise",
        &[[1u8].as_slice(), &session].concat(),
    )?;
    let mut damaged = session.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x10;
    write(
        "state_frames",
        "session-damaged",
        &[[5u8].as_slice(), &damaged].concat(),
    )?;

    for (name, path) in [
        ("examples", "examples/config.toml"),
        ("packaging", "packaging/config.toml"),
    ] {
        let text =
            std::fs::read(path).with_context(|| format!("{path} (run from the repo root)"))?;
        write("config", name, &text)?;
    }
    write(
        "config",
        "minimal",
        b"[storage]\ndir = \"/srv/edgenvr/store\"\n",
    )?;

    for (name, total_len, header) in [
        ("first-bytes", 1_000u64, "bytes=0-99"),
        ("open-end", 1_000, "bytes=500-"),
        ("suffix", 1_000, "bytes=-100"),
        ("resume-1h-clip", 1_800_000_000, "bytes=1048576-"),
        ("past-end", 1_000, "bytes=1000-"),
        ("two-ranges", 1_000, "bytes=0-1,5-6"),
    ] {
        write(
            "range_header",
            name,
            &[&total_len.to_le_bytes(), header.as_bytes()].concat(),
        )?;
    }

    let work = tempfile::tempdir()?;
    for (name, image) in slot_images(work.path())? {
        write("slot_scan", &name, &image)?;
    }
    Ok(())
}

/// The frames a box with a PIR, a light and one camera sends after a client connects: as
/// protocol version 2 sends them (`v2`), or version 1.
fn state_session(v2: bool) -> anyhow::Result<Vec<u8>> {
    let entries = [
        CatalogEntry {
            id: SensorId(0),
            name: "pir-hall",
            kind: Kind::Binary,
            role: Role::Sensor,
        },
        CatalogEntry {
            id: SensorId(1),
            name: "storage_used",
            kind: Kind::Scalar { unit: "%" },
            role: Role::Health,
        },
        CatalogEntry {
            id: SensorId(2),
            name: "front_online",
            kind: Kind::Binary,
            role: Role::Camera(CameraRole::Online),
        },
        CatalogEntry {
            id: SensorId(4),
            name: "light-porch",
            kind: Kind::Binary,
            role: Role::Output,
        },
    ];
    let values = [
        Change {
            id: SensorId(0),
            value: Value::Binary(false),
        },
        Change {
            id: SensorId(1),
            value: Value::Scalar(12.5),
        },
        Change {
            id: SensorId(2),
            value: Value::Binary(true),
        },
    ];
    let changes = [
        Change {
            id: SensorId(0),
            value: Value::Binary(true),
        },
        Change {
            id: SensorId(4),
            value: Value::Binary(true),
        },
    ];
    let time_ms = 1_767_225_600_000u64;
    let mut hasher = CatalogHasher::new();
    entries.iter().for_each(|e| hasher.add(e));
    let pack = edgenvr_proto::pack::encode_catalog_pack(0, &entries);
    let frames: Vec<Body<'_>> = if v2 {
        vec![
            Body::Hello(Hello {
                version: PROTOCOL_VERSION,
                box_name: "garage",
                catalog: Some(hasher.finish()),
            }),
            Body::CatalogPack(CatalogPackPart {
                last_part: true,
                bytes: &pack,
            }),
            Body::PackedSnapshot(PackedSnapshot::new(true, time_ms, &values)),
            Body::Changes(Batch::new(time_ms + 50, &changes)),
            Body::Heartbeat {
                time_ms: time_ms + 5_000,
            },
        ]
    } else {
        vec![
            Body::Hello(Hello {
                version: 1,
                box_name: "garage",
                catalog: None,
            }),
            Body::Catalog(Catalog::new(&entries)),
            Body::Snapshot(Snapshot {
                last_part: true,
                batch: Batch::new(time_ms, &values),
            }),
            Body::Changes(Batch::new(time_ms + 50, &changes)),
            Body::Heartbeat {
                time_ms: time_ms + 5_000,
            },
        ]
    };
    let mut wire = Vec::new();
    for (seq, body) in frames.into_iter().enumerate() {
        let mut buf = [0u8; edgenvr_proto::MAX_FRAME_BYTES];
        let frame = Frame {
            seq: u32::try_from(seq)?,
            body,
        };
        let encoded =
            encode(&frame, &mut buf).map_err(|e| anyhow::anyhow!("encode frame {seq}: {e:?}"))?;
        wire.extend_from_slice(encoded);
    }
    Ok(wire)
}

/// Slot files the store's writer filled with three GOPs of five small frames: each is the
/// scan's 12-byte prefix (store id, slot index), then the slot cut just after its last fragment
/// and closed by an 8-byte tail cover, so the scan ends where the writer's would.
fn slot_images(dir: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    init_store_of_1mib_slots(dir, 4 << 20)?;
    let store = Store::open(dir)?;
    let params = synthetic::h264_params(320, 240);
    let mut writer = store.camera_writer("front", WriterOptions::default())?;
    for n in 0..3i64 {
        let payloads = (0..5u8).map(|i| Bytes::from(vec![i; 120]));
        let gop = synthetic::gop(
            &params,
            WALL_START_MS + n * 200,
            n * 18_000,
            3_600,
            payloads,
        );
        writer.append(&gop)?;
    }
    writer.close()?;
    drop(store);

    let marker: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("edgenvr-store.json"))?)?;
    let store_id = marker["store_id"]
        .as_u64()
        .context("the marker has a store_id")?;
    let mut images = Vec::new();
    for entry in std::fs::read_dir(dir.join("slots"))? {
        let path = entry?.path();
        let index: u32 = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.strip_prefix("slot-"))
            .context("slot file name")?
            .parse()?;
        let file = std::fs::File::open(&path)?;
        let slot_bytes = file.metadata()?.len();
        let scan = scan_slot(&file, slot_bytes, store_id, index, Verify::Checksums)?;
        if scan.fragments.is_empty() {
            continue;
        }
        let mut image = std::fs::read(&path)?;
        image.truncate(usize::try_from(scan.end_offset)?);
        image.extend_from_slice(&[0, 0, 0, 8]);
        image.extend_from_slice(b"free");
        let prefix = [store_id.to_be_bytes().as_slice(), &index.to_be_bytes()].concat();
        images.push((
            format!("h264-{}-fragments", scan.fragments.len()),
            [prefix, image].concat(),
        ));
    }
    anyhow::ensure!(!images.is_empty(), "the writer filled no slot");
    Ok(images)
}
