//! Power-cut exactness of recovery, against a reference model of what must survive.
//!
//! A power cut leaves, in the slots whose writes were not yet synced (a camera's newest two
//! segments, design/storage.md "Recovery"), any prefix of what the writer wrote followed by
//! anything: zeroes (a file cut short, blocks never written), a torn fragment whose tail is
//! missing or holds stale bytes, or the previous lap's bytes. The model needs no knowledge of
//! the scan: from the bytes every version of the slot had when its writer left it, it says what
//! must be listed — the newest version whose slot header and init segment are intact, with every
//! chain entry (fragment or event record) that lies wholly before the first byte that differs
//! from that version. The property: `Store::open` lists exactly that, every listed fragment
//! reads back, nothing else changes, and a second open finds nothing left to repair.
//!
//! 48 cases by default (12 in the emulated ARM runs); `EDGENVR_RECOVERY_CASES=N` runs more.

use std::path::Path;

use proptest::prelude::*;

use super::format::slot_path;
use super::tests::{event, gop, new_store, options, params, SLOT_BYTES};
use super::*;

/// Slots in the ring: few, so the ring wraps and slots hold previous laps' bytes.
const SLOTS: u32 = 3;

/// One segment as the test writes it.
#[derive(Clone, Debug)]
struct SegmentPlan {
    gops: usize,
    /// The event begins before this GOP (and ends before `event_end`, if that comes first).
    event_begin: Option<usize>,
    event_end: Option<usize>,
}

fn segment_plan() -> impl Strategy<Value = SegmentPlan> {
    (
        2..8usize,
        proptest::option::of(0..8usize),
        proptest::option::of(0..9usize),
    )
        .prop_map(|(gops, event_begin, event_end)| SegmentPlan {
            gops,
            event_begin,
            event_end,
        })
}

/// What the power cut left in the damaged slot.
#[derive(Clone, Debug)]
enum Damage {
    /// The file cut short at this share (per mille) of the chain (`fsck` refills it).
    Truncate(u32),
    /// Zeroes from this point on.
    ZeroFrom(u32),
    /// Fragment n (modulo the count) torn from this share of it on: its tail is missing
    /// (zeroes) or holds stale bytes (the previous version's).
    Torn {
        fragment: usize,
        at: u32,
        stale: bool,
    },
    /// The previous lap's bytes from this point on: the newest lap's last writes never
    /// reached the card.
    OlderLapFrom(u32),
}

fn damage() -> impl Strategy<Value = Damage> {
    let share = 0..1100u32;
    prop_oneof![
        share.clone().prop_map(Damage::Truncate),
        share.clone().prop_map(Damage::ZeroFrom),
        (0..8usize, 0..1000u32, any::<bool>()).prop_map(|(fragment, at, stale)| Damage::Torn {
            fragment,
            at,
            stale
        }),
        share.prop_map(Damage::OlderLapFrom),
    ]
}

/// A chain entry as the writer wrote it: where it lies, and what it is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Entry {
    Fragment(FragmentInfo),
    Record { end: u64, record: EventRecord },
}

impl Entry {
    fn end(&self) -> u64 {
        match self {
            Entry::Fragment(f) => f.end_offset(),
            Entry::Record { end, .. } => *end,
        }
    }
}

/// A slot as its writer left it.
#[derive(Clone, Debug)]
struct Version {
    bytes: Vec<u8>,
    segment_id: u64,
    init_end: u64,
    entries: Vec<Entry>,
}

/// The chain of `segment` in write order: records sit before the fragment they precede.
fn chain(segment: &SegmentInfo) -> Vec<Entry> {
    let mut cursor = SLOT_HEADER_BYTES + u64::from(segment.init_len);
    let mut entries = Vec::new();
    let mut records = segment.events.iter().peekable();
    for position in 0..=segment.fragments.len() {
        while let Some(record) = records.next_if(|r| r.after_fragments as usize == position) {
            cursor += record.encoded_len();
            entries.push(Entry::Record {
                end: cursor,
                record: record.clone(),
            });
        }
        if let Some(fragment) = segment.fragments.get(position) {
            assert_eq!(fragment.offset, cursor, "the chain has no holes");
            cursor = fragment.end_offset();
            entries.push(Entry::Fragment(fragment.clone()));
        }
    }
    entries
}

/// What the model says slot must list: the segment id and its surviving entries, or nothing.
fn expected(damaged: &[u8], versions: &[Version]) -> Option<(u64, Vec<Entry>)> {
    versions.iter().rev().find_map(|version| {
        let differs_at = damaged
            .iter()
            .zip(&version.bytes)
            .position(|(a, b)| a != b)
            .map_or(damaged.len() as u64, |p| p as u64);
        (differs_at >= version.init_end).then(|| {
            let kept = version
                .entries
                .iter()
                .take_while(|e| e.end() <= differs_at)
                .cloned()
                .collect();
            (version.segment_id, kept)
        })
    })
}

/// The listing of one slot: segment id, fragments and event records.
fn listed(store: &Store, slot: u32) -> Option<(u64, Vec<FragmentInfo>, Vec<EventRecord>)> {
    store
        .segments()
        .into_iter()
        .find(|s| s.slot == slot)
        .map(|s| (s.segment_id, s.fragments, s.events))
}

/// Writes the planned segments one writer each; returns every version each slot went through.
fn record(store: &Store, plans: &[SegmentPlan]) -> Vec<Vec<Version>> {
    let p = params(320);
    let mut versions = vec![Vec::new(); SLOTS as usize];
    let mut n = 0;
    for plan in plans {
        let mut writer = store.camera_writer("front", options(3600)).unwrap();
        for g in 0..plan.gops {
            if plan.event_begin == Some(g) {
                writer
                    .begin_event(event(1_000_000 + n * 1000, 0, "pir"))
                    .unwrap();
            }
            if plan.event_end == Some(g) && writer.current_event().is_some() {
                writer.end_event(1_000_000 + n * 1000).unwrap();
            }
            writer.append(&gop(&p, n)).unwrap();
            n += 1;
        }
        writer.close().unwrap();
        let newest = store.segments().into_iter().max_by_key(|s| s.segment_id);
        let newest = newest.unwrap();
        versions[newest.slot as usize].push(Version {
            bytes: std::fs::read(&newest.path).unwrap(),
            segment_id: newest.segment_id,
            init_end: SLOT_HEADER_BYTES + u64::from(newest.init_len),
            entries: chain(&newest),
        });
    }
    versions
}

/// Applies `damage` to the slot whose newest version is `current` (previous: the version before
/// it, or a never-written slot); returns the damaged bytes as they must read after recovery's
/// refill (a cut-short file reads as zeroes past its end once `fsck` refilled it).
fn damaged_bytes(damage: &Damage, current: &Version, previous: Option<&Version>) -> Vec<u8> {
    let end = current.entries.last().map_or(current.init_end, Entry::end);
    let at = |share: u32| (end * u64::from(share) / 1000).min(SLOT_BYTES) as usize;
    let zeroes = vec![0u8; SLOT_BYTES as usize];
    let older = previous.map_or(&zeroes, |v| &v.bytes);
    let mut bytes = current.bytes.clone();
    match damage {
        Damage::Truncate(share) | Damage::ZeroFrom(share) => bytes[at(*share)..].fill(0),
        Damage::OlderLapFrom(share) => {
            let from = at(*share);
            bytes[from..].copy_from_slice(&older[from..]);
        }
        Damage::Torn {
            fragment,
            at: share,
            stale,
        } => {
            let fragments: Vec<&FragmentInfo> = current
                .entries
                .iter()
                .filter_map(|e| match e {
                    Entry::Fragment(f) => Some(f),
                    Entry::Record { .. } => None,
                })
                .collect();
            let f = fragments[fragment % fragments.len()];
            let from = (f.offset + (f.end_offset() - f.offset) * u64::from(*share) / 1000) as usize;
            let to = f.end_offset() as usize;
            if *stale {
                bytes[from..to].copy_from_slice(&older[from..to]);
            } else {
                bytes[from..to].fill(0);
            }
        }
    }
    bytes
}

fn run_case(
    dir: &Path,
    plans: &[SegmentPlan],
    second_newest: bool,
    damage: &Damage,
) -> Result<(), TestCaseError> {
    new_store(dir, SLOTS);
    let store = Store::open(dir).unwrap();
    let versions = record(&store, plans);
    let before: Vec<_> = (0..SLOTS).map(|slot| listed(&store, slot)).collect();
    drop(store);

    // The damaged slot holds the camera's newest (or second newest) segment.
    let mut newest: Vec<(u64, u32)> = versions
        .iter()
        .enumerate()
        .filter_map(|(slot, v)| v.last().map(|v| (v.segment_id, slot as u32)))
        .collect();
    newest.sort_unstable_by(|a, b| b.cmp(a));
    let slot = newest[usize::from(second_newest).min(newest.len() - 1)].1;
    let history = &versions[slot as usize];
    let current = &history[history.len() - 1];
    let previous = history.len().checked_sub(2).map(|i| &history[i]);
    let bytes = damaged_bytes(damage, current, previous);
    let path = slot_path(dir, slot);
    match damage {
        Damage::Truncate(_) => {
            let end = bytes.iter().rposition(|b| *b != 0).map_or(0, |p| p + 1);
            std::fs::write(&path, &bytes[..end]).unwrap();
            // A short slot file is refused by open; fsck refills it with zeroes.
            prop_assert!(Store::open(dir).is_err() || end == bytes.len());
            fsck(dir).unwrap();
        }
        _ => std::fs::write(&path, &bytes).unwrap(),
    }

    let model = expected(&bytes, history);
    let store = Store::open(dir).unwrap();
    for other in (0..SLOTS).filter(|s| *s != slot) {
        prop_assert_eq!(&listed(&store, other), &before[other as usize]);
    }
    let got = listed(&store, slot);
    let want = model.and_then(|(segment_id, entries)| {
        let fragments: Vec<FragmentInfo> = entries
            .iter()
            .filter_map(|e| match e {
                Entry::Fragment(f) => Some(f.clone()),
                Entry::Record { .. } => None,
            })
            .collect();
        let records = entries
            .into_iter()
            .filter_map(|e| match e {
                Entry::Record { record, .. } => Some(record),
                Entry::Fragment(_) => None,
            })
            .collect();
        (!fragments.is_empty()).then_some((segment_id, fragments, records))
    });
    prop_assert_eq!(&got, &want, "damage {:?} to slot {}", damage, slot);
    // Never a previous lap's video listed as newer than what the slot held.
    if let Some((segment_id, _, _)) = &got {
        prop_assert!(*segment_id <= current.segment_id);
    }
    for segment in store.segments() {
        for fragment in &segment.fragments {
            prop_assert!(store.read_fragment(&segment, fragment).is_ok());
        }
    }
    drop(store);
    // Recovery repaired what it found: the next open has nothing left to repair (a slot header
    // beyond use stays reported until the ring reuses the slot) and lists the same.
    let store = Store::open(dir).unwrap();
    prop_assert!(
        store.recovery_findings().iter().all(|f| f.repair.is_none()),
        "{:?}",
        store.recovery_findings()
    );
    prop_assert_eq!(listed(&store, slot), got);
    Ok(())
}

fn cases() -> u32 {
    std::env::var("EDGENVR_RECOVERY_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        // The ARM runs are emulated and check portability, not coverage: fewer cases there.
        .unwrap_or(if cfg!(target_arch = "x86_64") { 48 } else { 12 })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn recovery_keeps_exactly_the_intact_prefix_after_random_power_cut_damage(
        plans in proptest::collection::vec(segment_plan(), 2..7),
        second_newest in any::<bool>(),
        damage in damage(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        run_case(dir.path(), &plans, second_newest, &damage)?;
    }
}

/// A power cut lost a new segment's header, so after the restart the same segment id is
/// written into the same slot again. A second power cut then leaves the first write's later
/// fragments (same segment id, next index, valid checksum, same offsets since every GOP has the
/// same size) behind the second write's: they must not be listed as its continuation.
#[test]
fn a_segment_id_written_again_after_a_power_cut_never_continues_with_the_first_write() {
    let dir = tempfile::tempdir().unwrap();
    new_store(dir.path(), SLOTS);
    let slot0 = slot_path(dir.path(), 0);
    let store = Store::open(dir.path()).unwrap();
    let p = params(320);
    let write = |store: &Store, gops: std::ops::Range<i64>| {
        let mut writer = store.camera_writer("front", options(3600)).unwrap();
        for n in gops {
            writer.append(&gop(&p, n)).unwrap();
        }
        writer.close().unwrap();
    };
    write(&store, 0..4);
    write(&store, 4..8);
    write(&store, 8..12);
    let lap1 = std::fs::read(&slot0).unwrap();
    write(&store, 12..18);
    let first_write = std::fs::read(&slot0).unwrap();
    let first = store.segments().pop().unwrap();
    assert_eq!((first.slot, first.segment_id), (0, 4));
    drop(store);

    // Power cut 1: the new header and first three fragments never reached the card.
    let cut = first.fragments[3].offset as usize;
    let mut image = lap1.clone();
    image[cut..].copy_from_slice(&first_write[cut..]);
    std::fs::write(&slot0, &image).unwrap();
    let store = Store::open(dir.path()).unwrap();
    // The restart writes segment id 4 into slot 0 again: three GOPs, ten seconds later.
    write(&store, 30..33);
    let second = store.segments().pop().unwrap();
    assert_eq!((second.slot, second.segment_id), (0, 4));
    assert_eq!(second.fragments[2].end_offset(), first.fragments[3].offset);
    let second_write = std::fs::read(&slot0).unwrap();
    drop(store);

    // Power cut 2: the cover behind the third fragment was lost; the first write's fragments
    // 3 to 5 follow.
    let end = second.fragments[2].end_offset() as usize;
    let mut image = second_write;
    image[end..].copy_from_slice(&first_write[end..]);
    std::fs::write(&slot0, &image).unwrap();
    let store = Store::open(dir.path()).unwrap();
    let listed = store.segments().pop().unwrap();
    let walls: Vec<i64> = listed.fragments.iter().map(|f| f.wall_ms).collect();
    assert_eq!(walls, vec![1_030_000, 1_031_000, 1_032_000]);
    let findings = store.recovery_findings();
    assert!(
        findings[0]
            .problem
            .contains("earlier write of this segment"),
        "{findings:?}"
    );
}
