//! Event recording (`mode = "events"`): when a camera's GOPs go to the card and when they stay in
//! the RAM pre-roll.
//!
//! [`EventMachine`] is the state machine, pure and clock-free: it receives finished GOPs
//! ([`EventMachine::gop`]), trigger changes of the camera's sensors ([`EventMachine::trigger`]),
//! and the time now and then ([`EventMachine::tick`]); it emits [`EventOp`]s, which the caller
//! hands to the camera's [`super::GopWriter`]. Idle, it emits nothing at all: GOPs only enter the
//! [`PreRoll`] ring, so the store sees no write, sync or index update.
//!
//! Timing, all on the wall clock (Unix ms, the GOPs' `start_wall_ms` and the triggers' time):
//! - a trigger starts an event: its pre-roll is the ring trimmed to the fewest whole GOPs that
//!   start at or before `trigger - pre_roll`, so the video starts at least `pre_roll` early and
//!   at most one GOP more (when the stream has run that long);
//! - triggers while an event runs extend it (and add their sensor to it);
//! - when every trigger has cleared, the event ends `post_roll` after the last clear: the first
//!   GOP that starts at or after that moment is not written (it goes to the ring), so the video
//!   ends within one GOP after `clear + post_roll`. A trigger before then cancels the end;
//! - if GOPs stop coming (camera offline), [`EventMachine::tick`] ends the event
//!   [`STALLED_END_GRACE_MS`] after its due time.

use std::collections::BTreeSet;

use super::PreRoll;
use crate::media::{Gop, TIMESCALE_90K};
use crate::store::EventInfo;

/// How long after its due end an event whose camera sends no more GOPs is closed anyway. Ten
/// seconds: longer than two GOPs of any camera (the normal, GOP-driven end comes within one GOP
/// plus the GOP in progress), short enough that an offline camera's event closes promptly.
pub const STALLED_END_GRACE_MS: i64 = 10_000;

/// Pre-roll RAM per camera at most. 32 MiB holds a minute of a 4 Mbit/s stream; on a 512 MB
/// Pi Zero 2 W a few cameras still fit beside the OS. A longer `pre_roll` at a high bit rate is
/// cut to this (whole GOPs, newest kept).
pub const MAX_PRE_ROLL_BYTES: usize = 32 << 20;

/// What the writer must do, in order.
#[derive(Debug)]
pub enum EventOp {
    /// An event begins: mark it, then write these GOPs (oldest first).
    Begin {
        /// The event as known now.
        event: EventInfo,
        /// The pre-roll.
        pre_roll: Vec<Gop>,
    },
    /// Another sensor joined the running event: re-mark it with the longer sensor list.
    Update(EventInfo),
    /// Write this GOP (event video).
    Gop(Gop),
    /// The event ended at this time: record it and close the segment.
    End {
        /// The event's end, Unix ms.
        end_wall_ms: i64,
    },
}

#[derive(Debug)]
struct ActiveEvent {
    info: EventInfo,
    /// Sensors whose trigger is on now.
    triggered: BTreeSet<String>,
    /// When the last trigger cleared (`None` while any is on).
    cleared_at_ms: Option<i64>,
}

/// One camera's event state: idle (pre-roll only) or recording an event.
#[derive(Debug)]
pub struct EventMachine {
    pre_roll_ms: i64,
    post_roll_ms: i64,
    ring: PreRoll,
    active: Option<ActiveEvent>,
    /// GOPs that left the RAM pre-roll without being handed on: evicted, older than an
    /// event's pre-roll, or still in it at [`EventMachine::finish`].
    not_recorded_gops: u64,
}

impl EventMachine {
    /// A machine keeping `pre_roll_ms` (and at most `max_pre_roll_bytes`) in RAM and recording
    /// until `post_roll_ms` after the last trigger.
    pub fn new(pre_roll_ms: i64, post_roll_ms: i64, max_pre_roll_bytes: usize) -> Self {
        let pre_roll_90k = pre_roll_ms.saturating_mul(i64::from(TIMESCALE_90K)) / 1000;
        EventMachine {
            pre_roll_ms,
            post_roll_ms,
            ring: PreRoll::new(pre_roll_90k, max_pre_roll_bytes),
            active: None,
            not_recorded_gops: 0,
        }
    }

    /// GOPs this machine let go without handing them on (see the field): with the GOPs it
    /// emitted, every GOP it was given.
    pub fn not_recorded_gops(&self) -> u64 {
        self.not_recorded_gops
    }

    fn keep_in_ram(&mut self, gop: Gop) {
        self.not_recorded_gops += self.ring.push(gop) as u64;
    }

    /// Whether an event is being recorded.
    pub fn is_recording(&self) -> bool {
        self.active.is_some()
    }

    /// The GOPs held in RAM.
    pub fn pre_roll(&self) -> &PreRoll {
        &self.ring
    }

    /// A finished GOP.
    pub fn gop(&mut self, gop: Gop, out: &mut Vec<EventOp>) {
        let Some(active) = &self.active else {
            self.keep_in_ram(gop);
            return;
        };
        match active.cleared_at_ms {
            Some(cleared) if gop.start_wall_ms >= cleared.saturating_add(self.post_roll_ms) => {
                self.end(out);
                self.keep_in_ram(gop);
            }
            _ => out.push(EventOp::Gop(gop)),
        }
    }

    /// `sensor` (one of this camera's triggers) turned on or off at `at_wall_ms`.
    pub fn trigger(
        &mut self,
        sensor: &str,
        triggered: bool,
        at_wall_ms: i64,
        out: &mut Vec<EventOp>,
    ) {
        match (&mut self.active, triggered) {
            (None, true) => {
                let video_from_wall_ms = at_wall_ms.saturating_sub(self.pre_roll_ms);
                let event = EventInfo {
                    // The store's writer numbers events.
                    id: 0,
                    start_wall_ms: at_wall_ms,
                    video_from_wall_ms,
                    end_wall_ms: None,
                    sensors: vec![sensor.to_owned()],
                };
                let pre_roll = self.take_pre_roll(video_from_wall_ms);
                out.push(EventOp::Begin {
                    event: event.clone(),
                    pre_roll,
                });
                self.active = Some(ActiveEvent {
                    info: event,
                    triggered: BTreeSet::from([sensor.to_owned()]),
                    cleared_at_ms: None,
                });
            }
            (Some(active), true) => {
                active.triggered.insert(sensor.to_owned());
                active.cleared_at_ms = None;
                if !active.info.sensors.iter().any(|s| s == sensor) {
                    active.info.sensors.push(sensor.to_owned());
                    out.push(EventOp::Update(active.info.clone()));
                }
            }
            (Some(active), false) => {
                if active.triggered.remove(sensor) && active.triggered.is_empty() {
                    active.cleared_at_ms = Some(at_wall_ms);
                }
            }
            // A clear without a trigger we saw (it began before we listened): nothing to end.
            (None, false) => {}
        }
    }

    /// The time now: ends an event whose GOPs stopped coming long after it was due.
    pub fn tick(&mut self, now_wall_ms: i64, out: &mut Vec<EventOp>) {
        if let Some(due) = self.due_end_ms() {
            if now_wall_ms >= due.saturating_add(STALLED_END_GRACE_MS) {
                self.end(out);
            }
        }
    }

    /// Stopping (shutdown): ends a running event at `now_wall_ms` or its due end if earlier;
    /// the pre-roll in RAM is let go.
    pub fn finish(&mut self, now_wall_ms: i64, out: &mut Vec<EventOp>) {
        self.not_recorded_gops += self.ring.drain().len() as u64;
        let due = self.due_end_ms();
        let post_roll_ms = self.post_roll_ms;
        if let Some(active) = &mut self.active {
            let end = due.map_or(now_wall_ms, |due| due.min(now_wall_ms));
            active.cleared_at_ms = Some(end.saturating_sub(post_roll_ms));
            self.end(out);
        }
    }

    /// When the running event ends if no trigger comes: `post_roll` after the last clear.
    fn due_end_ms(&self) -> Option<i64> {
        let cleared = self.active.as_ref()?.cleared_at_ms?;
        Some(cleared.saturating_add(self.post_roll_ms))
    }

    fn end(&mut self, out: &mut Vec<EventOp>) {
        if let Some(end_wall_ms) = self.due_end_ms() {
            out.push(EventOp::End { end_wall_ms });
            self.active = None;
        }
    }

    /// The ring's GOPs from the newest one starting at or before `from_wall_ms` on (all of them
    /// if none starts that early: the stream has not run for a whole pre-roll yet).
    fn take_pre_roll(&mut self, from_wall_ms: i64) -> Vec<Gop> {
        let mut gops = self.ring.drain();
        let skip = gops
            .iter()
            .rposition(|gop| gop.start_wall_ms <= from_wall_ms)
            .unwrap_or(0);
        gops.drain(..skip);
        self.not_recorded_gops += skip as u64;
        gops
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::gop_at;

    /// A 1 s GOP starting at `start_ms` on the wall clock (media time follows it).
    fn gop_ms(start_ms: i64) -> Gop {
        let mut gop = gop_at(start_ms * 90, 1_000);
        gop.start_wall_ms = start_ms;
        gop.last_frame_duration_90k = 90_000;
        gop
    }

    /// What a run of ops means to the store: (begin count, written GOP starts, end times).
    #[derive(Default, Debug)]
    struct Written {
        begins: Vec<EventInfo>,
        gop_starts_ms: Vec<i64>,
        ends_ms: Vec<i64>,
    }

    impl Written {
        fn take(&mut self, ops: &mut Vec<EventOp>) {
            for op in ops.drain(..) {
                match op {
                    EventOp::Begin { event, pre_roll } => {
                        self.begins.push(event);
                        self.gop_starts_ms
                            .extend(pre_roll.iter().map(|g| g.start_wall_ms));
                    }
                    EventOp::Update(event) => {
                        if let Some(last) = self.begins.last_mut() {
                            *last = event;
                        }
                    }
                    EventOp::Gop(gop) => self.gop_starts_ms.push(gop.start_wall_ms),
                    EventOp::End { end_wall_ms } => self.ends_ms.push(end_wall_ms),
                }
            }
        }
    }

    /// Feeds 1 s GOPs for the seconds `from..to` (GOP n starts at n s, finishes at n+1 s) and
    /// calls `at(second, machine, ops)` after each GOP is handed over.
    fn run_gops(
        machine: &mut EventMachine,
        written: &mut Written,
        seconds: std::ops::Range<i64>,
        mut at: impl FnMut(i64, &mut EventMachine, &mut Vec<EventOp>),
    ) {
        let mut ops = Vec::new();
        for second in seconds {
            // The GOP that started a second ago is finished now.
            machine.gop(gop_ms((second - 1) * 1000), &mut ops);
            at(second, machine, &mut ops);
            written.take(&mut ops);
        }
    }

    #[test]
    fn idle_emits_nothing_and_keeps_a_bounded_pre_roll() {
        let mut machine = EventMachine::new(2_000, 3_000, usize::MAX);
        let mut written = Written::default();
        run_gops(&mut machine, &mut written, 1..60, |_, _, _| {});
        assert!(written.gop_starts_ms.is_empty() && written.begins.is_empty());
        assert!(
            machine.pre_roll().len() <= 3,
            "{}",
            machine.pre_roll().len()
        );
        assert!(!machine.is_recording());
    }

    #[test]
    fn pre_roll_starts_within_one_gop_before_the_pre_roll_and_post_roll_ends_it() {
        // pre_roll 2 s, post_roll 3 s; trigger on at 20.5 s, off at 22.3 s.
        let mut machine = EventMachine::new(2_000, 3_000, usize::MAX);
        let mut written = Written::default();
        run_gops(&mut machine, &mut written, 1..40, |second, m, ops| {
            // GOP (second-1) is done at `second`; the trigger lands half-way through GOP 20.
            if second == 20 {
                m.trigger("pir", true, 20_500, ops);
            }
            if second == 23 {
                m.trigger("pir", false, 22_300, ops);
            }
        });
        assert_eq!(written.begins.len(), 1);
        assert_eq!(written.begins[0].start_wall_ms, 20_500);
        assert_eq!(written.begins[0].sensors, vec!["pir".to_owned()]);
        let first = written.gop_starts_ms[0];
        assert!(first <= 20_500 - 2_000, "video starts {first}");
        assert!(
            first > 20_500 - 2_000 - 1_000,
            "more than one GOP early: {first}"
        );
        // Due end 25.3 s: the GOP starting at 25 s is written, the one at 26 s is not.
        assert_eq!(written.ends_ms, vec![25_300]);
        assert_eq!(*written.gop_starts_ms.last().unwrap(), 25_000);
        let expected: Vec<i64> = (18..=25).map(|s| s * 1000).collect();
        assert_eq!(written.gop_starts_ms, expected, "contiguous, no GOP twice");
        assert!(!machine.is_recording());
    }

    /// Regression (found by the four-event end-to-end test): a trigger processed just after a
    /// key frame finished the previous GOP, but stamped a few ms before that key frame, found
    /// the ring trimmed to exactly the pre-roll of finished video and got 12 ms too little.
    #[test]
    fn a_trigger_stamped_just_before_the_gop_that_finished_still_gets_its_whole_pre_roll() {
        let mut machine = EventMachine::new(2_000, 3_000, usize::MAX);
        let mut written = Written::default();
        run_gops(&mut machine, &mut written, 1..30, |second, m, ops| {
            // GOP 20 (20..21 s) is finished at `second` 21; the trigger says 20.99 s.
            if second == 21 {
                m.trigger("pir", true, 20_990, ops);
                m.trigger("pir", false, 20_995, ops);
            }
        });
        assert_eq!(written.begins.len(), 1);
        // 20.99 − 2 s = 18.99 s lies in GOP 18.
        assert_eq!(written.gop_starts_ms.first(), Some(&18_000));
    }

    #[test]
    fn a_trigger_during_post_roll_extends_the_event() {
        let mut machine = EventMachine::new(2_000, 3_000, usize::MAX);
        let mut written = Written::default();
        run_gops(
            &mut machine,
            &mut written,
            1..50,
            |second, m, ops| match second {
                10 => m.trigger("pir", true, 10_000, ops),
                11 => m.trigger("pir", false, 11_000, ops),
                // 2 s into the 3 s post-roll: again.
                13 => m.trigger("pir", true, 13_000, ops),
                14 => m.trigger("pir", false, 14_000, ops),
                _ => {}
            },
        );
        assert_eq!(written.begins.len(), 1);
        assert_eq!(written.ends_ms, vec![17_000]);
        assert_eq!(*written.gop_starts_ms.last().unwrap(), 16_000);
    }

    #[test]
    fn overlapping_triggers_make_one_event_that_lasts_until_the_last_clears() {
        let mut machine = EventMachine::new(2_000, 2_000, usize::MAX);
        let mut written = Written::default();
        run_gops(
            &mut machine,
            &mut written,
            1..50,
            |second, m, ops| match second {
                10 => m.trigger("pir-a", true, 10_000, ops),
                12 => m.trigger("pir-b", true, 12_000, ops),
                14 => m.trigger("pir-a", false, 14_000, ops),
                // pir-a's clear alone must not start the post-roll: pir-b is still on at 17 s.
                20 => m.trigger("pir-b", false, 20_000, ops),
                _ => {}
            },
        );
        assert_eq!(written.begins.len(), 1);
        assert_eq!(
            written.begins[0].sensors,
            vec!["pir-a".to_owned(), "pir-b".to_owned()]
        );
        assert_eq!(written.ends_ms, vec![22_000]);
    }

    #[test]
    fn a_chattering_input_makes_one_event() {
        let mut machine = EventMachine::new(2_000, 2_000, usize::MAX);
        let mut written = Written::default();
        run_gops(&mut machine, &mut written, 1..40, |second, m, ops| {
            if (10..15).contains(&second) {
                // Four edges in every second, each clear far shorter than the post-roll.
                for quarter in 0..4 {
                    let at = second * 1000 + quarter * 250;
                    m.trigger("pir", quarter % 2 == 0, at, ops);
                }
            }
        });
        assert_eq!(written.begins.len(), 1);
        assert_eq!(written.ends_ms.len(), 1);
        assert_eq!(written.ends_ms[0], 14_750 + 2_000);
    }

    #[test]
    fn a_camera_that_stops_sending_still_ends_its_event() {
        let mut machine = EventMachine::new(2_000, 2_000, usize::MAX);
        let mut ops = Vec::new();
        machine.gop(gop_ms(0), &mut ops);
        machine.trigger("pir", true, 1_500, &mut ops);
        machine.trigger("pir", false, 2_000, &mut ops);
        machine.tick(4_000 + STALLED_END_GRACE_MS - 1, &mut ops);
        assert!(machine.is_recording());
        machine.tick(4_000 + STALLED_END_GRACE_MS, &mut ops);
        assert!(!machine.is_recording());
        assert!(matches!(
            ops.last(),
            Some(EventOp::End { end_wall_ms: 4_000 })
        ));
    }

    #[test]
    fn shutdown_ends_a_running_event_at_the_earlier_of_now_and_its_due_end() {
        let mut machine = EventMachine::new(2_000, 2_000, usize::MAX);
        let mut ops = Vec::new();
        machine.trigger("pir", true, 1_000, &mut ops);
        machine.finish(5_000, &mut ops);
        assert!(matches!(
            ops.last(),
            Some(EventOp::End { end_wall_ms: 5_000 })
        ));
        ops.clear();
        machine.trigger("pir", true, 6_000, &mut ops);
        machine.trigger("pir", false, 7_000, &mut ops);
        machine.finish(60_000, &mut ops);
        assert!(matches!(
            ops.last(),
            Some(EventOp::End { end_wall_ms: 9_000 })
        ));
        // Idle: nothing.
        ops.clear();
        machine.finish(70_000, &mut ops);
        assert!(ops.is_empty());
    }
}
