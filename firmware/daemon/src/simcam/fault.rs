//! Camera faults `edgenvr sim-camera --fault MODE` plays, for the box's fault tests: what a
//! broken or hostile IP camera sends. Hidden from `--help` (a test tool, not a user feature).
//!
//! Receives the clip and the count of frames sent; emits the changes each fault makes to the
//! answer to DESCRIBE, to one frame's packets or timestamps, or to the whole connection. Pure:
//! the connection and the stream apply them.

use bytes::Bytes;

use super::clip::Clip;

/// What the simulated camera gets wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    /// Accepts the TCP connection, reads what the client sends and never answers.
    Silent,
    /// Answers RTSP normally, then sends random bytes instead of RTP packets.
    GarbageRtp,
    /// Answers DESCRIBE with a session description that is not valid SDP.
    BadSdp,
    /// After [`FAULT_AFTER_FRAMES`] frames, sends one access unit of [`OVERSIZED_FRAME_BYTES`]
    /// (one NAL unit in FU-A fragments), then carries on.
    Oversized,
    /// After [`FAULT_AFTER_FRAMES`] frames, RTP timestamps leap [`TS_JUMP_SECONDS`] forward
    /// and stay shifted.
    TsJump,
    /// After [`FAULT_AFTER_FRAMES`] frames, RTP timestamps fall [`TS_BACK_SECONDS`] back and
    /// stay shifted.
    TsBack,
    /// Frame [`FAULT_AFTER_FRAMES`] (not a key frame) carries a different SPS and PPS in band;
    /// the next key frame brings the clip's own again.
    SpsChange,
}

/// Frames sent normally before a mid-stream fault: long enough for the client to be recording
/// (the clip's key frame interval is one second, 25 frames), and not a key frame.
pub const FAULT_AFTER_FRAMES: u64 = 37;

/// Size of the [`Fault::Oversized`] access unit: 12 MiB, beyond any camera's frame.
pub const OVERSIZED_FRAME_BYTES: usize = 12 << 20;

/// [`Fault::TsJump`]: one hour.
pub const TS_JUMP_SECONDS: u32 = 3_600;

/// [`Fault::TsBack`]: one minute.
pub const TS_BACK_SECONDS: u32 = 60;

/// The [`Fault::BadSdp`] answer: an SDP whose lines do not follow `type=value`.
pub const BAD_SDP: &str = "v=0\r\nthis is not a session description\r\nm=video\r\n";

impl Fault {
    /// Added to the RTP timestamp of frame `frame_index` (counted over all loops), in 90 kHz
    /// ticks, wrapping as RTP timestamps do.
    pub fn timestamp_shift_90k(self, frame_index: u64) -> u32 {
        match self {
            _ if frame_index < FAULT_AFTER_FRAMES => 0,
            Fault::TsJump => TS_JUMP_SECONDS * 90_000,
            Fault::TsBack => (TS_BACK_SECONDS * 90_000).wrapping_neg(),
            _ => 0,
        }
    }

    /// The NAL units to send for frame `frame_index` in place of the clip's `nals`, when this
    /// fault changes them.
    pub fn replace_frame(
        self,
        frame_index: u64,
        clip: &Clip,
        nals: &[Bytes],
    ) -> Option<Vec<Bytes>> {
        if frame_index != FAULT_AFTER_FRAMES {
            return None;
        }
        match self {
            Fault::Oversized => {
                // A non-IDR slice NAL header (nal_ref_idc 2, type 1), then filler bytes.
                let mut nal = vec![0xAAu8; OVERSIZED_FRAME_BYTES];
                nal[0] = 0x41;
                Some(vec![Bytes::from(nal)])
            }
            Fault::SpsChange => {
                // The clip's SPS with another level_idc (byte 3: after the NAL header, profile
                // and constraint flags): a new stream description, same pictures.
                let mut sps = clip.sps().to_vec();
                if let Some(level_idc) = sps.get_mut(3) {
                    *level_idc = level_idc.wrapping_add(1);
                }
                let mut changed = vec![Bytes::from(sps), clip.pps().clone()];
                changed.extend(nals.iter().cloned());
                Some(changed)
            }
            _ => None,
        }
    }

    /// Whether the packets of the RTP channel are replaced by random bytes.
    pub fn garbles_rtp(self) -> bool {
        self == Fault::GarbageRtp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_shift_only_from_the_fault_on() {
        assert_eq!(Fault::TsJump.timestamp_shift_90k(FAULT_AFTER_FRAMES - 1), 0);
        assert_eq!(
            Fault::TsJump.timestamp_shift_90k(FAULT_AFTER_FRAMES),
            324_000_000
        );
        let back = Fault::TsBack.timestamp_shift_90k(FAULT_AFTER_FRAMES + 100);
        assert_eq!(
            1_000_000_000u32.wrapping_add(back),
            1_000_000_000 - 5_400_000
        );
        assert_eq!(Fault::SpsChange.timestamp_shift_90k(1_000), 0);
    }

    #[test]
    fn sps_change_prepends_another_sps_to_one_non_key_frame() {
        let clip = Clip::embedded().unwrap();
        let index = usize::try_from(FAULT_AFTER_FRAMES).unwrap();
        let unit = &clip.access_units()[index];
        assert!(!unit.is_key, "the fault frame is not a key frame");
        let changed = Fault::SpsChange
            .replace_frame(FAULT_AFTER_FRAMES, &clip, &unit.nals)
            .unwrap();
        assert_eq!(changed.len(), unit.nals.len() + 2);
        assert_ne!(changed[0], *clip.sps());
        assert_eq!(changed[0][0] & 0x1f, 7, "an SPS");
        assert_eq!(changed[1], *clip.pps());
        assert!(Fault::SpsChange
            .replace_frame(FAULT_AFTER_FRAMES + 1, &clip, &unit.nals)
            .is_none());
    }
}
