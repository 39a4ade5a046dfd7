//! The decision of `mode = "events"`: which GOPs leave RAM for the store.
//!
//! Receives finished GOPs and triggers (an event at a wall-clock time); emits the GOPs to write.
//! Between events GOPs wait in a [`PreRoll`] ring (bounded by time and bytes) and fall out of it
//! unwritten; a trigger releases the ring (the pre-roll) and opens the gate until `post_roll`
//! after the latest trigger, so a retrigger extends the recording. Pure data: no I/O, no clock.
//! The sensors work wires triggers to it through [`super::EventTrigger`].

use std::time::Duration;

use super::PreRoll;
use crate::media::{Gop, TIMESCALE_90K};

/// Routes GOPs between the pre-roll ring and the store.
#[derive(Debug)]
pub struct EventGate {
    pre_roll: PreRoll,
    post_roll_ms: i64,
    recording_until_wall_ms: Option<i64>,
}

impl EventGate {
    /// A gate keeping `pre_roll` of video (at most `pre_roll_max_bytes`) and recording until
    /// `post_roll` after the last trigger.
    pub fn new(pre_roll: Duration, pre_roll_max_bytes: usize, post_roll: Duration) -> Self {
        let pre_roll_90k = i64::try_from(pre_roll.as_millis())
            .unwrap_or(i64::MAX / i64::from(TIMESCALE_90K))
            .saturating_mul(i64::from(TIMESCALE_90K))
            / 1000;
        Self {
            pre_roll: PreRoll::new(pre_roll_90k, pre_roll_max_bytes),
            post_roll_ms: i64::try_from(post_roll.as_millis()).unwrap_or(i64::MAX),
            recording_until_wall_ms: None,
        }
    }

    /// An event at `now_wall_ms`: returns the pre-roll to write now, oldest first, and records
    /// every GOP that starts up to `post_roll` later.
    pub fn trigger(&mut self, now_wall_ms: i64) -> Vec<Gop> {
        let until = now_wall_ms.saturating_add(self.post_roll_ms);
        self.recording_until_wall_ms =
            Some(self.recording_until_wall_ms.map_or(until, |u| u.max(until)));
        self.pre_roll.drain()
    }

    /// A finished GOP: `Some` to write it now, `None` when it went into the pre-roll ring.
    pub fn admit(&mut self, gop: Gop) -> Option<Gop> {
        match self.recording_until_wall_ms {
            Some(until) if gop.start_wall_ms <= until => Some(gop),
            _ => {
                self.recording_until_wall_ms = None;
                self.pre_roll.push(gop);
                None
            }
        }
    }

    /// Whether an event is being recorded.
    pub fn is_recording(&self) -> bool {
        self.recording_until_wall_ms.is_some()
    }

    /// The pre-roll ring (for its size and duration in health reports).
    pub fn pre_roll(&self) -> &PreRoll {
        &self.pre_roll
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::gop_at;

    /// Two-second GOPs starting at wall time 2 s × n.
    fn gop(n: i64) -> Gop {
        let mut gop = gop_at(n * 180_000, 100);
        gop.start_wall_ms = n * 2_000;
        gop
    }

    #[test]
    fn pre_roll_event_and_post_roll() {
        let mut gate = EventGate::new(Duration::from_secs(4), usize::MAX, Duration::from_secs(3));
        for n in 0..5 {
            assert!(
                gate.admit(gop(n)).is_none(),
                "no event yet: GOPs stay in RAM"
            );
        }
        // An event at 10.5 s: the last 4 s of pre-roll (GOPs at 6 s and 8 s) are written.
        let pre: Vec<i64> = gate
            .trigger(10_500)
            .iter()
            .map(|g| g.start_wall_ms)
            .collect();
        assert_eq!(pre, vec![6_000, 8_000]);
        assert!(gate.is_recording());
        // Recording until 13.5 s: GOPs starting at 10 s and 12 s.
        assert!(gate.admit(gop(5)).is_some());
        assert!(gate.admit(gop(6)).is_some());
        assert!(gate.admit(gop(7)).is_none(), "14 s is past the post-roll");
        assert!(!gate.is_recording());
        assert_eq!(gate.pre_roll().len(), 1);
    }

    #[test]
    fn a_retrigger_extends_the_recording() {
        let mut gate = EventGate::new(Duration::from_secs(2), usize::MAX, Duration::from_secs(3));
        gate.trigger(0);
        assert!(gate.admit(gop(1)).is_some());
        gate.trigger(2_500);
        // An older trigger's deadline does not shorten the newer one.
        gate.trigger(1_000);
        assert!(gate.admit(gop(2)).is_some());
        assert!(gate.admit(gop(3)).is_none(), "6 s is past 5.5 s");
    }
}
