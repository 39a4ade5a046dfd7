//! One session's video media time, kept running forward when the camera's RTP timestamps jump.
//!
//! Receives the media time retina computed for each video frame (90 kHz, from the camera's RTP
//! timestamps); emits the media time ingest hands on, and says when it had to rebase. A camera
//! whose timestamps leap forward (an encoder restart, a clock set mid-stream) or fall back by
//! more than [`MAX_BACKWARD_STEP_90K`] would otherwise give the recorder a GOP an hour long or
//! running backwards; here such a step is replaced by one frame interval, and every later frame
//! is shifted by the same amount, so the steps the camera sends after the jump are kept exactly.
//! Small backward steps (a frame or two out of order) are left to the GOP assembler, which fixes
//! single frames up. Pure arithmetic; no I/O, no clock.

/// The longest step forward between two video frames that can be real time passing. A session
/// that sends no frame for the stall timeout (5 s by default) is reconnected, so inside a session
/// a step of more than twice that is a timestamp fault, not a pause.
pub const MAX_FORWARD_STEP_90K: i64 = 10 * 90_000;

/// The largest step back left to the GOP assembler's single-frame fix-up: one second, far more
/// than any frame reordering; a camera whose clock falls back further has restarted its
/// timeline.
pub const MAX_BACKWARD_STEP_90K: i64 = 90_000;

/// The frame interval assumed until two frames have been seen: 25 fps, the commonest default.
const DEFAULT_STEP_90K: i64 = 3_600;

/// Rebases a session's video media time across timestamp jumps; see the module doc.
#[derive(Clone, Debug, Default)]
pub struct MediaTimeline {
    /// The last media time handed on.
    last_pts_90k: Option<i64>,
    /// What is added to the camera's media time (changed by each rebase).
    offset_90k: i64,
    /// The last ordinary step between two frames.
    last_step_90k: Option<i64>,
}

impl MediaTimeline {
    /// A timeline at the start of a session.
    pub fn new() -> Self {
        Self::default()
    }

    /// The media time to use for a frame the camera stamped `camera_pts_90k`, and the jump that
    /// was taken out (camera's step minus the step used), if this frame was rebased.
    pub fn place(&mut self, camera_pts_90k: i64) -> (i64, Option<i64>) {
        let pts_90k = camera_pts_90k.saturating_add(self.offset_90k);
        let Some(last_pts_90k) = self.last_pts_90k else {
            self.last_pts_90k = Some(pts_90k);
            return (pts_90k, None);
        };
        let step_90k = pts_90k.saturating_sub(last_pts_90k);
        if (-MAX_BACKWARD_STEP_90K..=MAX_FORWARD_STEP_90K).contains(&step_90k) {
            if step_90k > 0 {
                self.last_step_90k = Some(step_90k);
            }
            // Steps back of up to a second pass through: the GOP assembler fixes them per frame.
            self.last_pts_90k = Some(pts_90k.max(last_pts_90k));
            return (pts_90k, None);
        }
        let used_step_90k = self.last_step_90k.unwrap_or(DEFAULT_STEP_90K);
        let rebased_90k = last_pts_90k.saturating_add(used_step_90k);
        self.offset_90k = self
            .offset_90k
            .saturating_add(rebased_90k.saturating_sub(pts_90k));
        self.last_pts_90k = Some(rebased_90k);
        (rebased_90k, Some(step_90k.saturating_sub(used_step_90k)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn steady_frames_pass_unchanged() {
        let mut timeline = MediaTimeline::new();
        for n in 0..100 {
            assert_eq!(timeline.place(1_000 + n * 3_600), (1_000 + n * 3_600, None));
        }
    }

    #[test]
    fn a_jump_forward_becomes_one_frame_interval_and_later_steps_are_kept() {
        let mut timeline = MediaTimeline::new();
        timeline.place(0);
        timeline.place(3_600);
        let hour_90k = 3_600 * 90_000;
        assert_eq!(
            timeline.place(3_600 + hour_90k),
            (7_200, Some(hour_90k - 3_600))
        );
        assert_eq!(timeline.place(3_600 + hour_90k + 4_000), (11_200, None));
    }

    #[test]
    fn a_frame_just_behind_then_one_ten_seconds_ahead_passes_through() {
        // Found by the property test below: the step that counts is from the furthest point.
        let mut timeline = MediaTimeline::new();
        timeline.place(0);
        assert_eq!(timeline.place(-25_195), (-25_195, None));
        assert_eq!(timeline.place(874_806), (874_806, None));
    }

    #[test]
    fn a_jump_back_is_rebased_and_small_steps_back_pass_through() {
        let mut timeline = MediaTimeline::new();
        timeline.place(1_000_000);
        timeline.place(1_003_600);
        assert_eq!(
            timeline.place(1_003_600 - 60 * 90_000),
            (1_007_200, Some(-60 * 90_000 - 3_600))
        );
        // Half a frame back: left to the GOP assembler's fix-up; the timeline does not move.
        assert_eq!(
            timeline.place(1_003_600 - 60 * 90_000 - 1_800),
            (1_005_400, None)
        );
        assert_eq!(
            timeline.place(1_003_600 - 60 * 90_000 + 3_600),
            (1_010_800, None)
        );
    }

    /// Reference model: the output steps equal the camera's steps, except that a step outside
    /// [-1 s, 10 s] becomes the last ordinary positive step (3,600 at first), and the output
    /// never falls behind the furthest point it reached by more than a second.
    fn model(camera_steps: &[i64]) -> Vec<i64> {
        let mut out = vec![0];
        let mut furthest = 0i64;
        let mut last_step = 3_600;
        let mut now = 0i64;
        for &step in camera_steps {
            let candidate = now + step;
            let actual_step = candidate - furthest;
            if (-MAX_BACKWARD_STEP_90K..=MAX_FORWARD_STEP_90K).contains(&actual_step) {
                if actual_step > 0 {
                    last_step = actual_step;
                }
                now = candidate;
                furthest = furthest.max(now);
            } else {
                now = furthest + last_step;
                furthest = now;
            }
            out.push(now);
        }
        out
    }

    proptest! {
        #[test]
        fn matches_the_model(steps in proptest::collection::vec(
            prop_oneof![
                8 => 1i64..10_000,
                1 => -200_000i64..0,
                1 => -400_000_000i64..400_000_000,
            ],
            1..200,
        )) {
            let mut timeline = MediaTimeline::new();
            let mut camera_pts = 0i64;
            let mut out = vec![timeline.place(camera_pts).0];
            for &step in &steps {
                camera_pts += step;
                out.push(timeline.place(camera_pts).0);
            }
            prop_assert_eq!(&out, &model(&steps));
            // However the camera jumps, no frame handed on lands beyond the limits from the
            // furthest point reached before it. (Measured from the frame just before, a step can
            // exceed them: a frame half a second back, passed through for the GOP assembler to
            // fix up, then one 10 s ahead of the furthest point is 10.5 s after it.)
            let mut furthest = out[0];
            for &pts in &out[1..] {
                let step = pts - furthest;
                prop_assert!((-MAX_BACKWARD_STEP_90K..=MAX_FORWARD_STEP_90K).contains(&step));
                furthest = furthest.max(pts);
            }
        }
    }
}
