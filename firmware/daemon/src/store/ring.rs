//! Which slot a camera's next segment goes into: the ring's allocation policy with per-camera
//! shares. Pure logic over the in-memory index; no I/O.
//!
//! Each camera with an open writer has a share of the slots (its own `share_slots`, or an equal
//! split of the store between the open writers). When a camera needs a slot:
//! 1. if it already holds its share, it reuses its own oldest slot (it wraps over itself);
//! 2. otherwise it takes a never-used slot;
//! 3. otherwise the oldest slot of a camera holding more than its share (cameras without an open
//!    writer have a share of zero, so their old video goes first);
//! 4. otherwise the oldest slot not being written.
//!
//! So a busy camera wraps within its share and cannot overwrite the others' video.

use std::collections::BTreeMap;

use super::SlotState;

/// A camera's share: its own request, or the slots split equally between open writers (at least
/// two, one being written and one finished).
pub(super) fn share_of(
    writers: &BTreeMap<String, Option<u32>>,
    slot_count: u32,
    camera: &str,
) -> u32 {
    match writers.get(camera) {
        Some(Some(share)) => *share,
        Some(None) => (slot_count / writers.len().max(1) as u32).max(2),
        None => 0,
    }
}

/// What kind of segment a slot is wanted for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Purpose {
    /// Continuous recording.
    Continuous,
    /// Event video.
    Event,
}

fn is_event(slot: &SlotState) -> bool {
    slot.event.is_some()
        || slot
            .header
            .as_ref()
            .is_some_and(|h| h.kind == super::SegmentKind::Event)
}

/// The slot `camera` should write its next segment into, or `None` when every slot is busy.
///
/// Event segments form a protected share of `event_share` slots: while there are no more than
/// that, nothing wraps over them except, as a last resort, a recorder that would otherwise stop.
/// Event video beyond the share wraps over the oldest event segment. Event slots do not count
/// towards a camera's share of continuous recording.
pub(super) fn choose_slot(
    slots: &[SlotState],
    writers: &BTreeMap<String, Option<u32>>,
    camera: &str,
    event_share: u32,
    purpose: Purpose,
) -> Option<usize> {
    let slot_count = slots.len() as u32;
    let event_count = slots.iter().filter(|s| is_event(s)).count() as u32;
    let protected = |slot: &SlotState| is_event(slot) && event_count <= event_share;
    let mut held: BTreeMap<&str, u32> = BTreeMap::new();
    for slot in slots.iter().filter(|s| !is_event(s)) {
        if let Some(header) = &slot.header {
            *held.entry(header.camera.as_str()).or_default() += 1;
        }
    }
    let oldest = |filter: &dyn Fn(&SlotState, &str) -> bool| {
        slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| !slot.busy)
            .filter_map(|(index, slot)| {
                let header = slot.header.as_ref()?;
                filter(slot, &header.camera).then_some((header.segment_id, index))
            })
            .min()
            .map(|(_, index)| index)
    };

    if purpose == Purpose::Event && event_count >= event_share {
        if let Some(index) = oldest(&|slot, _| is_event(slot)) {
            return Some(index);
        }
    }
    let own_share = share_of(writers, slot_count, camera);
    if held.get(camera).copied().unwrap_or(0) >= own_share {
        if let Some(index) = oldest(&|slot, owner| owner == camera && !protected(slot)) {
            return Some(index);
        }
    }
    if let Some(index) = slots
        .iter()
        .position(|slot| !slot.busy && slot.header.is_none())
    {
        return Some(index);
    }
    let over_share =
        |owner: &str| held.get(owner).copied().unwrap_or(0) > share_of(writers, slot_count, owner);
    oldest(&|slot, owner| owner != camera && !protected(slot) && over_share(owner))
        .or_else(|| oldest(&|slot, _| !protected(slot)))
        .or_else(|| oldest(&|_, _| true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::VideoCodec;
    use crate::store::format::{SegmentKind, SlotHeader};

    fn event_slot(camera: &str, segment_id: u64) -> SlotState {
        SlotState {
            event: Some(crate::store::EventInfo {
                start_wall_ms: 0,
                end_wall_ms: None,
                sensors: vec!["pir".into()],
            }),
            ..slot(Some(camera), segment_id)
        }
    }

    fn choose(slots: &[SlotState], cameras: &[&str], camera: &str) -> Option<usize> {
        choose_slot(slots, &writers(cameras), camera, 2, Purpose::Continuous)
    }

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
            }),
            ..SlotState::default()
        }
    }

    fn writers(cameras: &[&str]) -> BTreeMap<String, Option<u32>> {
        cameras.iter().map(|c| (c.to_string(), None)).collect()
    }

    #[test]
    fn takes_free_slots_until_the_share_is_reached() {
        let slots = vec![
            slot(Some("a"), 1),
            slot(None, 0),
            slot(None, 0),
            slot(None, 0),
        ];
        assert_eq!(choose(&slots, &["a"], "a"), Some(1));
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
    fn continuous_recording_does_not_wrap_over_protected_events() {
        // One camera, share 4 of 4 slots; its two oldest segments are event video (share 2).
        let slots = vec![
            event_slot("a", 1),
            event_slot("a", 2),
            slot(Some("a"), 3),
            slot(Some("a"), 4),
        ];
        let writers = writers(&["a"]);
        assert_eq!(
            choose_slot(&slots, &writers, "a", 2, Purpose::Continuous),
            Some(2)
        );
        // More events than the share: the oldest event is no longer protected.
        assert_eq!(
            choose_slot(&slots, &writers, "a", 1, Purpose::Continuous),
            Some(0)
        );
        // An event with the share full wraps over the oldest event, not continuous video.
        assert_eq!(
            choose_slot(&slots, &writers, "a", 2, Purpose::Event),
            Some(0)
        );
        // All slots protected events: a recorder still gets the oldest rather than stopping.
        let all_events = vec![event_slot("a", 1), event_slot("a", 2)];
        assert_eq!(
            choose_slot(&all_events, &writers, "a", 2, Purpose::Continuous),
            Some(0)
        );
    }
}
