//! Model-based test of the ring: proptest drives random sequences of operations — cameras
//! opening and closing in continuous or events mode, GOPs, jumps in media time, events beginning
//! and ending, restarts of the whole store — against the real store in a temporary directory,
//! on tiny and larger rings, and checks after every step:
//!
//! - the slot the real code chose for each new segment is the one a small reference model of
//!   the wrap order (written from design/storage.md, independently of `ring.rs`) chooses;
//! - nothing listed disappears while a never-used slot exists;
//! - per camera, the GOPs the test appended since the last open (counted by the test) equal
//!   the store's count, and `written == listed + overwritten`;
//! - the newest `event_share` event segments are never overwritten while anything else could be;
//! - every event listed is one the test began, with its own id, never two with the same id;
//! - a restart lists exactly what was listed before it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::media::{synthetic, Gop, StreamParams};

const SLOT_BYTES: u64 = 64 << 10;
const CAMERAS: [&str; 3] = ["a", "b", "c"];

#[derive(Clone, Debug)]
enum Op {
    /// Open camera n's writer (continuous or events mode) if it is closed.
    Open(usize, bool),
    /// Close camera n's writer.
    Close(usize),
    /// Append this many GOPs of camera n.
    Gops(usize, u8),
    /// Camera n's media time jumps (a reconnect, or the quiet between events).
    Jump(usize),
    /// Begin an event on camera n (or extend the running one with another sensor).
    Begin(usize),
    /// End camera n's event.
    End(usize),
    /// Close everything, reopen the store, reopen the writers.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..CAMERAS.len(), any::<bool>()).prop_map(|(c, e)| Op::Open(c, e)),
        1 => (0..CAMERAS.len()).prop_map(Op::Close),
        8 => (0..CAMERAS.len(), 1..12u8).prop_map(|(c, n)| Op::Gops(c, n)),
        1 => (0..CAMERAS.len()).prop_map(Op::Jump),
        2 => (0..CAMERAS.len()).prop_map(Op::Begin),
        2 => (0..CAMERAS.len()).prop_map(Op::End),
        1 => Just(Op::Restart),
    ]
}

/// One camera as the test drives it.
struct Camera {
    writer: Option<CameraWriter>,
    events_mode: bool,
    /// The next GOP's number (media and wall time follow it).
    next_gop: i64,
    appended: u64,
    /// GOPs appended since the store was last opened.
    appended_since_open: u64,
    event_start_ms: Option<i64>,
}

/// A slot as the reference model sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SlotView {
    camera: Option<String>,
    segment_id: u64,
    is_event: bool,
    busy: bool,
    fragments: usize,
}

fn view(store: &Store) -> (Vec<SlotView>, BTreeMap<String, Option<u32>>, u32, u64) {
    let ring = store.ring();
    let slots = ring
        .slots
        .iter()
        .map(|s| SlotView {
            camera: s.header.as_ref().map(|h| h.camera.clone()),
            segment_id: s.header.as_ref().map_or(0, |h| h.segment_id),
            is_event: s.is_event(),
            busy: s.busy,
            fragments: s.fragments.len(),
        })
        .collect();
    (
        slots,
        ring.writers.clone(),
        ring.event_share,
        ring.next_segment_id,
    )
}

/// The wrap order of design/storage.md, restated plainly: a never-used slot; else, among slots
/// not being written, the oldest of the camera's own ageing slots if it holds its share; else of
/// a gone camera; else of a camera over its share; else its own; else anyone's ageing; else the
/// oldest protected event.
fn reference_choice(
    slots: &[SlotView],
    writers: &BTreeMap<String, Option<u32>>,
    camera: &str,
    event_share: u32,
) -> Option<usize> {
    if let Some(free) = slots.iter().position(|s| s.camera.is_none() && !s.busy) {
        return Some(free);
    }
    let mut events: Vec<&SlotView> = slots.iter().filter(|s| s.is_event).collect();
    events.sort_by_key(|s| std::cmp::Reverse(s.segment_id));
    let protected: BTreeSet<u64> = events
        .iter()
        .take(event_share as usize)
        .map(|s| s.segment_id)
        .collect();
    let ageing = |s: &SlotView| !protected.contains(&s.segment_id);
    let count_ageing = slots.iter().filter(|s| ageing(s)).count();
    let held = |owner: &str| {
        slots
            .iter()
            .filter(|s| ageing(s) && s.camera.as_deref() == Some(owner))
            .count()
    };
    let share = |owner: &str| match writers.get(owner) {
        Some(Some(n)) => *n as usize,
        Some(None) => (count_ageing / writers.len()).max(1),
        None => 0,
    };
    let pick = |want: &dyn Fn(&SlotView) -> bool| {
        slots
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.busy && s.camera.is_some() && want(s))
            .min_by_key(|(_, s)| s.segment_id)
            .map(|(i, _)| i)
    };
    let owner_is = |s: &SlotView, name: &str| s.camera.as_deref() == Some(name);
    if held(camera) >= share(camera) {
        if let Some(i) = pick(&|s| ageing(s) && owner_is(s, camera)) {
            return Some(i);
        }
    }
    pick(&|s| ageing(s) && s.camera.as_ref().is_some_and(|c| !writers.contains_key(c)))
        .or_else(|| {
            pick(&|s| {
                ageing(s)
                    && s.camera
                        .as_deref()
                        .is_some_and(|c| c != camera && held(c) > share(c))
            })
        })
        .or_else(|| pick(&|s| ageing(s) && owner_is(s, camera)))
        .or_else(|| pick(&|s| ageing(s)))
        .or_else(|| pick(&|s| !ageing(s)))
}

fn gop(params: &Arc<StreamParams>, n: i64) -> Gop {
    let frame = Bytes::from([&[0, 0, 0, 96][..], &[n as u8; 96]].concat());
    synthetic::gop(
        params,
        1_000_000 + n * 1000,
        n * 90_000,
        3600,
        (0..25).map(|_| frame.clone()),
    )
}

fn options(events_mode: bool) -> WriterOptions {
    WriterOptions {
        // Continuous segments of two GOPs; events fill their slot.
        segment_90k: (!events_mode).then_some(2 * 90_000),
        // Synced when segments end and at close; nothing in between (the test is about slots).
        sync_interval: Duration::from_secs(3600),
        share_slots: None,
    }
}

/// The listing as (segment id, camera, fragments), for comparing across a restart.
fn listing(store: &Store) -> Vec<(u64, String, usize)> {
    store
        .segments()
        .iter()
        .map(|s| (s.segment_id, s.camera.clone(), s.fragments.len()))
        .collect()
}

fn run_ops(dir: &Path, slots: u32, event_share: u32, ops: &[Op]) -> Result<(), TestCaseError> {
    init_store(
        dir,
        &InitOptions {
            size_bytes: SLOT_BYTES * u64::from(slots),
            slot_bytes: Some(SLOT_BYTES),
            slot_count: None,
        },
        &mut |_| {},
    )
    .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut store = Store::open(dir).map_err(|e| TestCaseError::fail(e.to_string()))?;
    store.set_event_share_slots(event_share);
    let params = synthetic::h264_params(320, 240);
    let mut cameras: Vec<Camera> = CAMERAS
        .iter()
        .map(|_| Camera {
            writer: None,
            events_mode: false,
            next_gop: 0,
            appended: 0,
            appended_since_open: 0,
            event_start_ms: None,
        })
        .collect();
    let mut begun_ids: BTreeSet<u64> = BTreeSet::new();

    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Open(n, events_mode) => {
                let camera = &mut cameras[*n];
                if camera.writer.is_none() {
                    camera.events_mode = *events_mode;
                    camera.writer = Some(
                        store
                            .camera_writer(CAMERAS[*n], options(*events_mode))
                            .map_err(|e| TestCaseError::fail(e.to_string()))?,
                    );
                }
            }
            Op::Close(n) => {
                if let Some(writer) = cameras[*n].writer.take() {
                    writer
                        .close()
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    cameras[*n].event_start_ms = None;
                }
            }
            Op::Gops(n, count) => {
                let camera = &mut cameras[*n];
                if let Some(writer) = camera.writer.as_mut() {
                    // Events mode writes only during events.
                    if !camera.events_mode || camera.event_start_ms.is_some() {
                        for _ in 0..*count {
                            let (snapshot, writers_now, share_now, next_before) = view(&store);
                            let listed_before = listing(&store);
                            match writer.append(&gop(&params, camera.next_gop)) {
                                Ok(()) => {
                                    camera.appended += 1;
                                    camera.appended_since_open += 1;
                                }
                                // More cameras than slots: every slot is being written. The
                                // GOP is refused (the recorder counts it failed), never placed
                                // over a slot another camera is writing.
                                Err(StoreError::Full { .. }) => {
                                    let (now, _, _, _) = view(&store);
                                    prop_assert!(
                                        now.iter().filter(|s| s.busy).count() == now.len(),
                                        "step {}: Full while a slot was not busy",
                                        step
                                    );
                                }
                                Err(e) => return Err(TestCaseError::fail(e.to_string())),
                            }
                            camera.next_gop += 1;
                            nothing_lost_while_room(&store, &snapshot, &listed_before, step)?;
                            check_choice(
                                &store,
                                &snapshot,
                                &writers_now,
                                share_now,
                                next_before,
                                CAMERAS[*n],
                                step,
                            )?;
                        }
                    }
                }
            }
            Op::Jump(n) => cameras[*n].next_gop += 100,
            Op::Begin(n) => {
                let camera = &mut cameras[*n];
                if let Some(writer) = camera.writer.as_mut() {
                    let start = *camera
                        .event_start_ms
                        .get_or_insert(1_000_000 + camera.next_gop * 1000);
                    let id = writer
                        .begin_event(EventInfo {
                            id: 0,
                            start_wall_ms: start,
                            video_from_wall_ms: start - 2_000,
                            end_wall_ms: None,
                            sensors: vec![format!("pir-{step}")],
                        })
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    begun_ids.insert(id);
                }
            }
            Op::End(n) => {
                let camera = &mut cameras[*n];
                if let (Some(writer), Some(_)) =
                    (camera.writer.as_mut(), camera.event_start_ms.take())
                {
                    writer
                        .end_event(1_000_000 + camera.next_gop * 1000)
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                }
            }
            Op::Restart => {
                let mut was_open = Vec::new();
                for camera in &mut cameras {
                    was_open.push(camera.writer.is_some());
                    if let Some(writer) = camera.writer.take() {
                        writer
                            .close()
                            .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    }
                    camera.event_start_ms = None;
                }
                let listed = listing(&store);
                let recordings = store.recordings();
                drop(store);
                store = Store::open(dir).map_err(|e| TestCaseError::fail(e.to_string()))?;
                store.set_event_share_slots(event_share);
                prop_assert_eq!(&listing(&store), &listed, "step {}: restart", step);
                prop_assert_eq!(&store.recordings(), &recordings, "step {}: restart", step);
                prop_assert!(store.recovery_findings().is_empty());
                for camera in &mut cameras {
                    camera.appended_since_open = 0;
                }
                for (n, camera) in cameras.iter_mut().enumerate() {
                    if was_open[n] {
                        camera.writer = Some(
                            store
                                .camera_writer(CAMERAS[n], options(camera.events_mode))
                                .map_err(|e| TestCaseError::fail(e.to_string()))?,
                        );
                    }
                }
            }
        }

        // Every GOP accounted for, per camera, against the test's own count.
        for totals in store.camera_totals() {
            let n = CAMERAS
                .iter()
                .position(|c| *c == totals.camera)
                .ok_or_else(|| TestCaseError::fail("unknown camera"))?;
            // Exact within a run; across restarts the running count can only have lost what
            // is no longer listed (see CameraTotals).
            prop_assert_eq!(totals.written_since_open, cameras[n].appended_since_open);
            prop_assert!(totals.fragments_written <= cameras[n].appended);
            prop_assert!(totals.fragments_written >= totals.fragments_listed);
            prop_assert_eq!(
                totals.fragments_listed + totals.fragments_overwritten,
                totals.fragments_written,
                "step {}: {:?}",
                step,
                totals
            );
        }
        // Events listed are events begun, each id once.
        let mut seen = BTreeSet::new();
        for camera in store.recordings() {
            for event in camera.events {
                prop_assert!(begun_ids.contains(&event.id), "unknown event {}", event.id);
                prop_assert!(seen.insert(event.id), "event {} listed twice", event.id);
            }
        }
    }
    Ok(())
}

/// After one append: nothing listed disappeared if a never-used slot existed before it.
fn nothing_lost_while_room(
    store: &Store,
    before: &[SlotView],
    listed_before: &[(u64, String, usize)],
    step: usize,
) -> Result<(), TestCaseError> {
    if !before.iter().any(|s| s.camera.is_none() && !s.busy) {
        return Ok(());
    }
    let listed_after = listing(store);
    for (segment_id, camera, fragments) in listed_before {
        let still = listed_after
            .iter()
            .find(|(id, _, _)| id == segment_id)
            .map(|(_, _, f)| *f);
        prop_assert!(
            still.is_some_and(|f| f >= *fragments),
            "step {}: segment {} of {} overwritten while a slot was free",
            step,
            segment_id,
            camera
        );
    }
    Ok(())
}

/// After one append: if it started a segment, the slot it took is the reference model's choice
/// from the ring as it was just before.
fn check_choice(
    store: &Store,
    before: &[SlotView],
    writers: &BTreeMap<String, Option<u32>>,
    event_share: u32,
    next_segment_id: u64,
    camera: &str,
    step: usize,
) -> Result<(), TestCaseError> {
    let (after, _, _, _) = view(store);
    let Some(chosen) = after
        .iter()
        .position(|s| s.segment_id == next_segment_id && s.camera.is_some())
    else {
        return Ok(());
    };
    // The writer released its previous slot before choosing: the model sees it not busy.
    let mut released: Vec<SlotView> = before.to_vec();
    for slot in &mut released {
        if slot.busy && slot.camera.as_deref() == Some(camera) {
            slot.busy = false;
        }
    }
    let expected = reference_choice(&released, writers, camera, event_share);
    prop_assert_eq!(
        Some(chosen),
        expected,
        "step {}: camera {} took slot {} of {:?}",
        step,
        camera,
        chosen,
        released
    );
    // A protected event was overwritten only when nothing else was there to take.
    if let Some(old) = released.get(chosen) {
        let mut events: Vec<&SlotView> = released.iter().filter(|s| s.is_event).collect();
        events.sort_by_key(|s| std::cmp::Reverse(s.segment_id));
        let protected = events
            .iter()
            .take(event_share as usize)
            .any(|s| s.segment_id == old.segment_id && old.camera.is_some());
        if protected {
            let is_protected = |s: &SlotView| {
                events
                    .iter()
                    .take(event_share as usize)
                    .any(|e| e.segment_id == s.segment_id)
            };
            let others = released
                .iter()
                .any(|s| !s.busy && s.camera.is_some() && !is_protected(s));
            prop_assert!(!others, "step {}: a protected event went first", step);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn the_ring_follows_its_wrap_order_and_loses_nothing_silently(
        slots in prop_oneof![Just(2u32), Just(3), Just(5), Just(16)],
        event_share in 0..4u32,
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        run_ops(dir.path(), slots, event_share, &ops)?;
    }
}
