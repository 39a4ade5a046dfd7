//! Groups one session's frames into GOPs.
//!
//! Receives stream parameters, video frames and audio frames in arrival order, plus the wall time
//! to stamp on each GOP when its key frame arrives; emits a finished [`Gop`] when the next key
//! frame (or a parameter change, or the end of the session) closes it. Frames before the first
//! key frame cannot be decoded and are dropped. Pure data, no I/O, no clock.

use std::sync::Arc;

use crate::media::{AudioFrame, Gop, StreamParams, VideoFrame};

/// The frame duration assumed before two frames have been seen: 25 fps, the most common camera
/// default (only used when a session ends after a single frame).
const DEFAULT_FRAME_DURATION_90K: u32 = 3_600;

/// Builds GOPs from a session's frames.
#[derive(Debug, Default)]
pub struct GopAssembler {
    params: Option<Arc<StreamParams>>,
    current: Option<Gop>,
    /// The most recent frame-to-frame duration: the estimate for a GOP's last frame when no next
    /// frame will tell.
    last_duration_90k: Option<u32>,
    /// Frames whose media time did not advance, fixed up so the GOP stays playable.
    nonmonotonic_frames: u64,
    /// Frames in the last finished GOP: the next GOP's frame list is allocated that big once,
    /// instead of growing (and reallocating) as its frames arrive.
    last_gop_frames: usize,
}

impl GopAssembler {
    /// An empty assembler (start of a session).
    pub fn new() -> Self {
        Self::default()
    }

    /// The parameters of the frames that follow. A change closes the GOP in progress (the store
    /// starts a new segment for the new parameters).
    pub fn set_params(&mut self, params: Arc<StreamParams>) -> Option<Gop> {
        let changed = self.params.as_deref() != Some(&*params);
        self.params = Some(params);
        if changed {
            self.finish()
        } else {
            None
        }
    }

    /// Adds a video frame. A key frame closes the GOP in progress and returns it; `start_wall_ms`
    /// is called only for a key frame, to stamp the GOP it starts.
    pub fn push_video(
        &mut self,
        mut frame: VideoFrame,
        start_wall_ms: impl FnOnce(i64) -> i64,
    ) -> Option<Gop> {
        let params = self.params.clone()?;
        if let Some(previous) = self.current.as_ref().and_then(|g| g.frames.last()) {
            let step = frame.pts_90k - previous.pts_90k;
            if step <= 0 {
                // A camera bug (or B-frames, which cameras do not send): keep decode order and
                // give the frame a plausible time rather than a zero or negative duration.
                self.nonmonotonic_frames += 1;
                frame.pts_90k = previous.pts_90k
                    + i64::from(self.last_duration_90k.unwrap_or(DEFAULT_FRAME_DURATION_90K));
            } else {
                self.last_duration_90k = Some(u32::try_from(step).unwrap_or(u32::MAX));
            }
        }
        if frame.is_key {
            let finished = self.current.take().map(|mut gop| {
                self.last_gop_frames = gop.frames.len();
                if let Some(last) = gop.frames.last() {
                    let gap = frame.pts_90k - last.pts_90k;
                    if gap > 0 {
                        gop.last_frame_duration_90k = u32::try_from(gap).unwrap_or(u32::MAX);
                    }
                }
                gop
            });
            self.current = Some(Gop {
                params,
                start_wall_ms: start_wall_ms(frame.pts_90k),
                frames: {
                    // Room for a GOP as long as the last one, and a few frames more.
                    let mut frames = Vec::with_capacity(self.last_gop_frames + 4);
                    frames.push(frame);
                    frames
                },
                last_frame_duration_90k: self
                    .last_duration_90k
                    .unwrap_or(DEFAULT_FRAME_DURATION_90K),
                audio: Vec::new(),
            });
            finished
        } else {
            if let Some(gop) = self.current.as_mut() {
                gop.frames.push(frame);
                gop.last_frame_duration_90k =
                    self.last_duration_90k.unwrap_or(DEFAULT_FRAME_DURATION_90K);
            }
            None
        }
    }

    /// Adds an audio frame to the GOP in progress (dropped before the first key frame).
    pub fn push_audio(&mut self, frame: AudioFrame) {
        if let Some(gop) = self.current.as_mut() {
            gop.audio.push(frame);
        }
    }

    /// Closes the GOP in progress (end of session); its last frame gets the previous frame's
    /// duration.
    pub fn finish(&mut self) -> Option<Gop> {
        self.current.take()
    }

    /// How many frames arrived with a media time that did not advance.
    pub fn nonmonotonic_frames(&self) -> u64 {
        self.nonmonotonic_frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{VideoCodec, VideoParams};
    use bytes::Bytes;

    fn params(width: u16) -> Arc<StreamParams> {
        Arc::new(StreamParams {
            video: VideoParams {
                codec: VideoCodec::H264,
                width,
                height: 240,
                rfc6381_codec: "avc1.64000d".into(),
                decoder_config: Bytes::from_static(b"avcC"),
            },
            audio: None,
        })
    }

    fn frame(pts_90k: i64, is_key: bool) -> VideoFrame {
        VideoFrame {
            pts_90k,
            is_key,
            data: Bytes::from_static(&[0, 0, 0, 1, 0x65]),
        }
    }

    #[test]
    fn key_frames_close_gops_with_exact_last_duration() {
        let mut a = GopAssembler::new();
        assert!(a.set_params(params(320)).is_none());
        // Frames before the first key frame are dropped.
        assert!(a.push_video(frame(0, false), |_| 0).is_none());
        assert!(a.push_video(frame(3_000, true), |pts| pts * 10).is_none());
        assert!(a
            .push_video(frame(6_000, false), |_| unreachable!())
            .is_none());
        assert!(a
            .push_video(frame(9_000, false), |_| unreachable!())
            .is_none());
        // The next key frame arrives 4000 ticks after the last frame: that is its duration.
        let gop = a.push_video(frame(13_000, true), |_| 7).unwrap();
        assert_eq!(gop.frames.len(), 3);
        assert_eq!(gop.start_wall_ms, 30_000);
        assert_eq!(gop.last_frame_duration_90k, 4_000);
        assert_eq!(gop.duration_90k(), 10_000);
        let tail = a.finish().unwrap();
        assert_eq!(tail.start_wall_ms, 7);
        assert_eq!(tail.frames.len(), 1);
        // A lone frame's duration is the last one seen.
        assert_eq!(tail.last_frame_duration_90k, 4_000);
    }

    #[test]
    fn a_parameter_change_closes_the_gop_and_tags_the_next() {
        let mut a = GopAssembler::new();
        a.set_params(params(320));
        a.push_video(frame(0, true), |_| 0);
        a.push_video(frame(3_600, false), |_| 0);
        assert!(a.set_params(params(320)).is_none(), "same params: no split");
        let closed = a.set_params(params(640)).unwrap();
        assert_eq!(closed.params.video.width, 320);
        assert_eq!(closed.frames.len(), 2);
        a.push_video(frame(7_200, true), |_| 0);
        assert_eq!(a.finish().unwrap().params.video.width, 640);
    }

    #[test]
    fn nonmonotonic_times_are_fixed_up() {
        let mut a = GopAssembler::new();
        a.set_params(params(320));
        a.push_video(frame(0, true), |_| 0);
        a.push_video(frame(3_600, false), |_| 0);
        a.push_video(frame(3_600, false), |_| 0);
        let gop = a.finish().unwrap();
        let times: Vec<i64> = gop.frames.iter().map(|f| f.pts_90k).collect();
        assert_eq!(times, vec![0, 3_600, 7_200]);
        assert_eq!(a.nonmonotonic_frames(), 1);
    }

    #[test]
    fn audio_joins_the_gop_in_progress() {
        let mut a = GopAssembler::new();
        a.set_params(params(320));
        a.push_audio(AudioFrame {
            pts: 0,
            data: Bytes::from_static(b"early"),
        });
        a.push_video(frame(0, true), |_| 0);
        a.push_audio(AudioFrame {
            pts: 1024,
            data: Bytes::from_static(b"aac"),
        });
        let gop = a.finish().unwrap();
        assert_eq!(gop.audio.len(), 1);
        assert_eq!(gop.payload_bytes(), 5 + 3);
    }
}
