//! Wall-clock time for recordings: a [`Clock`] trait (so tests can simulate a clock that jumps)
//! and [`WallAnchor`], which maps a session's media time (RTP, 90 kHz) onto Unix milliseconds.
//!
//! Receives the media time of each GOP's first frame and the clock's reading; emits the wall time
//! to stamp on the GOP. Media time is the authority for durations inside a session; the wall
//! clock only says where the session sits in real time. A Pi without an RTC boots with a wrong
//! clock and jumps when NTP sets it: when the clock and the media timeline disagree by more than
//! [`REANCHOR_THRESHOLD_MS`], the anchor moves to the clock's new reading and recording goes on,
//! so the GOPs after the jump carry the corrected time (the listing shows the jump as a
//! discontinuity). No I/O beyond reading the system clock; not shared between threads.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::media::TIMESCALE_90K;

/// How far the wall clock may drift from the media timeline before it is trusted over it.
/// Bigger than the jitter of frames arriving over a busy network (a second or two of buffering),
/// small enough that a clip searched by time starts within a few seconds of the right place. A
/// camera clock drifting 100 ppm against the box's crosses it after ~8 hours and is re-anchored
/// in one small step.
pub const REANCHOR_THRESHOLD_MS: i64 = 3_000;

/// A source of wall-clock time in Unix milliseconds.
pub trait Clock: Send + Sync {
    /// The current wall-clock time, Unix milliseconds (may jump in either direction).
    fn now_wall_ms(&self) -> i64;
}

/// The system's real-time clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_wall_ms(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since_epoch) => i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX),
            // A clock set before 1970 is as wrong as a clock can be; the anchor logic copes.
            Err(before_epoch) => {
                -i64::try_from(before_epoch.duration().as_millis()).unwrap_or(i64::MAX)
            }
        }
    }
}

/// What [`WallAnchor::wall_ms_for`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anchoring {
    /// The first GOP of a session: anchored to the clock.
    Started,
    /// The clock agrees with the media timeline.
    Steady,
    /// The clock jumped by this many milliseconds (positive: forward); re-anchored.
    Jumped {
        /// The clock's reading minus the time the media timeline predicted.
        jump_ms: i64,
    },
}

/// Maps media time of one RTSP session onto the wall clock. Create one per session: media time
/// restarts when a session does.
#[derive(Clone, Debug, Default)]
pub struct WallAnchor {
    /// `(media time, wall time)` of the anchor point, once there is one.
    anchor: Option<(i64, i64)>,
}

impl WallAnchor {
    /// A fresh anchor for a new session.
    pub fn new() -> Self {
        Self::default()
    }

    /// The wall time of media time `pts_90k`, given the clock's reading `now_wall_ms` taken when
    /// the frame arrived, and whether the anchor moved.
    pub fn wall_ms_for(&mut self, pts_90k: i64, now_wall_ms: i64) -> (i64, Anchoring) {
        let Some((anchor_pts_90k, anchor_wall_ms)) = self.anchor else {
            self.anchor = Some((pts_90k, now_wall_ms));
            return (now_wall_ms, Anchoring::Started);
        };
        let media_since_anchor_ms =
            pts_90k.saturating_sub(anchor_pts_90k) * 1000 / i64::from(TIMESCALE_90K);
        let predicted_wall_ms = anchor_wall_ms.saturating_add(media_since_anchor_ms);
        let disagreement_ms = now_wall_ms.saturating_sub(predicted_wall_ms);
        if disagreement_ms.abs() > REANCHOR_THRESHOLD_MS {
            self.anchor = Some((pts_90k, now_wall_ms));
            (
                now_wall_ms,
                Anchoring::Jumped {
                    jump_ms: disagreement_ms,
                },
            )
        } else {
            (predicted_wall_ms, Anchoring::Steady)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND_90K: i64 = TIMESCALE_90K as i64;

    #[test]
    fn follows_media_time_while_the_clock_agrees() {
        let mut anchor = WallAnchor::new();
        assert_eq!(
            anchor.wall_ms_for(0, 1_000_000),
            (1_000_000, Anchoring::Started)
        );
        // The frame arrived 400 ms late (network jitter): the media timeline wins.
        assert_eq!(
            anchor.wall_ms_for(SECOND_90K, 1_001_400),
            (1_001_000, Anchoring::Steady)
        );
        assert_eq!(
            anchor.wall_ms_for(10 * SECOND_90K, 1_009_900),
            (1_010_000, Anchoring::Steady)
        );
    }

    #[test]
    fn reanchors_when_ntp_sets_the_clock_forward_and_keeps_going() {
        let mut anchor = WallAnchor::new();
        // A Pi without an RTC boots in 1970.
        anchor.wall_ms_for(0, 5_000);
        let ntp_ms = 1_764_000_000_000;
        let (wall, how) = anchor.wall_ms_for(2 * SECOND_90K, ntp_ms);
        assert_eq!(wall, ntp_ms);
        assert_eq!(
            how,
            Anchoring::Jumped {
                jump_ms: ntp_ms - 7_000
            }
        );
        // After the jump the new anchor holds.
        assert_eq!(
            anchor.wall_ms_for(3 * SECOND_90K, ntp_ms + 1_050),
            (ntp_ms + 1_000, Anchoring::Steady)
        );
    }

    #[test]
    fn reanchors_when_the_clock_steps_back() {
        let mut anchor = WallAnchor::new();
        anchor.wall_ms_for(0, 100_000);
        let (wall, how) = anchor.wall_ms_for(SECOND_90K, 50_000);
        assert_eq!(wall, 50_000);
        assert_eq!(how, Anchoring::Jumped { jump_ms: -51_000 });
    }

    #[test]
    fn system_clock_is_after_2020() {
        // 2020-01-01 in Unix ms: any machine running these tests has a set clock.
        assert!(SystemClock.now_wall_ms() > 1_577_836_800_000);
    }
}
