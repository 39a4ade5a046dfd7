//! Which slot a camera's next segment goes into: the ring's wrap order. Pure logic over the
//! in-memory index; no I/O.
//!
//! The rule (design/storage.md, "Wrap order"):
//! 1. **Nothing is overwritten while there is room.** A never-used slot is always taken first,
//!    whatever the camera or mode.
//! 2. Once every slot holds video, the newest `event_share` event segments (store-wide) are
//!    **protected**; every other segment is **ageing** video that belongs to its camera.
//! 3. Each camera with an open writer has a **share** of the ageing slots: its own
//!    `share_slots`, or an equal split of `slot_count − protected` between the open writers.
//!    Cameras without an open writer have a share of zero.
//! 4. The new segment overwrites, among the slots not being written, the oldest (lowest segment
//!    id) of, in this order:
//!    (a) the camera's own ageing segments, if it holds at least its share (it wraps over
//!    itself); (b) the ageing segments of cameras that are gone (no open writer); (c) the ageing
//!    segments of a camera holding more than its share (one that filled the card before the
//!    others started); (d) the camera's own ageing segments; (e) anyone's ageing segments;
//!    (f) the oldest protected event segment — only when the ring holds nothing but protected
//!    events (and slots being written), so a recorder never stops for want of a slot.
//!
//! So a busy camera wraps within its share and cannot overwrite the others' video; events
//! beyond the protected share age with the camera's other video, oldest first; and the oldest
//! event is overwritten by continuous video only when it is no longer among the newest
//! `event_share` event segments.

use std::collections::BTreeMap;

use super::SlotState;

/// The slot `camera` should write its next segment into, or `None` when every slot is busy.
pub(super) fn choose_slot(
    slots: &[SlotState],
    writers: &BTreeMap<String, Option<u32>>,
    camera: &str,
    event_share: u32,
) -> Option<usize> {
    if let Some(index) = slots
        .iter()
        .position(|slot| !slot.busy && slot.header.is_none())
    {
        return Some(index);
    }
    let protected = protected_slots(slots, event_share);
    let ageing_slots = slots.len() - protected.iter().filter(|p| **p).count();
    let mut held: BTreeMap<&str, usize> = BTreeMap::new();
    for (slot, _) in slots.iter().zip(&protected).filter(|(_, p)| !**p) {
        if let Some(header) = &slot.header {
            *held.entry(header.camera.as_str()).or_default() += 1;
        }
    }
    let share = |owner: &str| -> usize {
        match writers.get(owner) {
            Some(Some(share)) => *share as usize,
            Some(None) => (ageing_slots / writers.len().max(1)).max(1),
            None => 0,
        }
    };
    let holds = |owner: &str| held.get(owner).copied().unwrap_or(0);
    let oldest = |protected_wanted: bool, filter: &dyn Fn(&str) -> bool| {
        slots
            .iter()
            .zip(&protected)
            .enumerate()
            .filter(|(_, (slot, protected))| !slot.busy && **protected == protected_wanted)
            .filter_map(|(index, (slot, _))| {
                let header = slot.header.as_ref()?;
                filter(&header.camera).then_some((header.segment_id, index))
            })
            .min()
            .map(|(_, index)| index)
    };

    let own = |owner: &str| owner == camera;
    if holds(camera) >= share(camera) {
        if let Some(index) = oldest(false, &own) {
            return Some(index);
        }
    }
    oldest(false, &|owner| !writers.contains_key(owner))
        .or_else(|| {
            oldest(false, &|owner| {
                owner != camera && holds(owner) > share(owner)
            })
        })
        .or_else(|| oldest(false, &own))
        .or_else(|| oldest(false, &|_| true))
        .or_else(|| oldest(true, &|_| true))
}

/// Which slots hold one of the newest `event_share` event segments.
pub(super) fn protected_slots(slots: &[SlotState], event_share: u32) -> Vec<bool> {
    let mut events: Vec<(u64, usize)> = slots
        .iter()
        .enumerate()
        .filter(|(_, slot)| slot.is_event())
        .filter_map(|(index, slot)| Some((slot.header.as_ref()?.segment_id, index)))
        .collect();
    events.sort_unstable_by(|a, b| b.cmp(a));
    let mut protected = vec![false; slots.len()];
    for (_, index) in events.into_iter().take(event_share as usize) {
        if let Some(p) = protected.get_mut(index) {
            *p = true;
        }
    }
    protected
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::VideoCodec;
    use crate::store::format::{EventInfo, EventRecord, SegmentKind, SlotHeader};

    fn slot(camera: Option<&str>, segment_id: u64) -> SlotState {
        SlotState {
            header: camera.map(|camera| SlotHeader {
                store_id: 1,
                slot_index: 0,
                segment_id,
                camera: camera.into(),
                kind: SegmentKind::Continuous,
                codec: VideoCodec::H264,
                width: 1,
                height: 1,
                has_audio: false,
                init_len: 1,
                init_crc: 0,
                start_wall_ms: 0,
                lifetime_bytes_before: 0,
                lifetime_syncs_before: 0,
                laps_before: 0,
                camera_fragments_before: 0,
                linked: true,
            }),
            ..SlotState::default()
        }
    }

    fn event_slot(camera: &str, segment_id: u64) -> SlotState {
        SlotState {
            events: vec![EventRecord {
                after_fragments: 0,
                event: EventInfo {
                    id: segment_id,
                    start_wall_ms: 0,
                    video_from_wall_ms: 0,
                    end_wall_ms: None,
                    sensors: vec!["pir".into()],
                },
            }],
            ..slot(Some(camera), segment_id)
        }
    }

    fn writers(cameras: &[&str]) -> BTreeMap<String, Option<u32>> {
        cameras.iter().map(|c| (c.to_string(), None)).collect()
    }

    fn choose(slots: &[SlotState], cameras: &[&str], camera: &str) -> Option<usize> {
        choose_slot(slots, &writers(cameras), camera, 0)
    }

    #[test]
    fn a_never_used_slot_is_taken_first_even_by_a_camera_at_its_share() {
        // "a" holds 3 slots and its share is 2 of 4 (two writers), but slot 3 was never used:
        // nothing is overwritten while there is room.
        let slots = vec![
            slot(Some("a"), 1),
            slot(Some("a"), 2),
            slot(Some("a"), 3),
            slot(None, 0),
        ];
        assert_eq!(choose(&slots, &["a", "b"], "a"), Some(3));
        let events = vec![event_slot("a", 1), event_slot("a", 2), slot(None, 0)];
        assert_eq!(choose_slot(&events, &writers(&["a"]), "a", 0), Some(2));
    }

    #[test]
    fn a_busy_camera_wraps_over_itself_not_over_others() {
        // 6 slots, two cameras: share 3 each. "a" holds 3 (ids 2, 4, 6), "b" holds 3 older ones.
        let slots = vec![
            slot(Some("b"), 1),
            slot(Some("a"), 2),
            slot(Some("b"), 3),
            slot(Some("a"), 4),
            slot(Some("b"), 5),
            slot(Some("a"), 6),
        ];
        assert_eq!(choose(&slots, &["a", "b"], "a"), Some(1));
    }

    #[test]
    fn a_camera_below_its_share_takes_from_the_one_above_it() {
        // "a" holds 5 of 6 slots (before "b" started); "b" takes a's oldest, not its own.
        let slots = vec![
            slot(Some("a"), 1),
            slot(Some("a"), 2),
            slot(Some("b"), 3),
            slot(Some("a"), 4),
            slot(Some("a"), 5),
            slot(Some("a"), 6),
        ];
        assert_eq!(choose(&slots, &["a", "b"], "b"), Some(0));
    }

    #[test]
    fn cameras_without_a_writer_go_first_and_busy_slots_are_never_taken() {
        let mut slots = vec![
            slot(Some("a"), 1),
            slot(Some("gone"), 2),
            slot(Some("a"), 3),
        ];
        assert_eq!(choose(&slots, &["a", "b"], "b"), Some(1));
        for s in &mut slots {
            s.busy = true;
        }
        assert_eq!(choose(&slots, &["a", "b"], "b"), None);
    }

    #[test]
    fn the_newest_events_are_protected_and_older_ones_age_with_the_rest() {
        // One camera, 4 slots, two of them events; share 2 protects both.
        let slots = vec![
            event_slot("a", 1),
            event_slot("a", 2),
            slot(Some("a"), 3),
            slot(Some("a"), 4),
        ];
        let writers = writers(&["a"]);
        assert_eq!(choose_slot(&slots, &writers, "a", 2), Some(2));
        // Share 1: only the newest event (2) is protected; event 1 is the oldest ageing video.
        assert_eq!(choose_slot(&slots, &writers, "a", 1), Some(0));
        // An events-only camera: every slot an event, share 1 of 4 — it wraps over its oldest.
        let all_events: Vec<SlotState> = (1..=4).map(|id| event_slot("a", id)).collect();
        assert_eq!(choose_slot(&all_events, &writers, "a", 1), Some(0));
        // Everything protected: a recorder still gets the oldest rather than stopping.
        assert_eq!(choose_slot(&all_events, &writers, "a", 4), Some(0));
    }

    #[test]
    fn a_continuous_camera_cannot_push_another_cameras_protected_events_out() {
        // "cont" records continuously, "ev" records events; 6 slots, share 2 protects ev's two
        // newest events, which are also its only ones. The 4 ageing slots split 2 + 2.
        let slots = vec![
            slot(Some("cont"), 1),
            event_slot("ev", 2),
            slot(Some("cont"), 3),
            event_slot("ev", 4),
            slot(Some("cont"), 5),
            slot(Some("cont"), 6),
        ];
        let writers = writers(&["cont", "ev"]);
        assert_eq!(choose_slot(&slots, &writers, "cont", 2), Some(0));
        // With no protection, "ev" is below its share of 3 and "cont" above it: cont still
        // wraps over itself (it holds 4 ≥ 3).
        assert_eq!(choose_slot(&slots, &writers, "cont", 0), Some(0));
        // "ev" starting a new event takes cont's oldest: cont holds more than its share.
        assert_eq!(choose_slot(&slots, &writers, "ev", 2), Some(0));
    }
}
