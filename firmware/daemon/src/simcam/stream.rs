//! The media clock of one playing session: which access unit goes next, when, and with which RTP
//! timestamp, looping the clip forever.
//!
//! Receives the clip and the session's RTP identifiers; emits RTP packets (through
//! [`H264Packetizer`]) and RTCP sender reports. Frame `n` (counted over all loops) is due at
//! `start + n × frame duration` and carries RTP timestamp `initial + n × ticks per frame`, so
//! timestamps and sequence numbers keep increasing across the loop point and never drift from
//! the wall clock. Does no I/O; the caller sleeps until [`LoopingStream::next_due`].

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::clip::Clip;
use super::fault::Fault;
use super::rtp::{self, H264Packetizer, DEFAULT_MAX_PAYLOAD_BYTES};
use super::rtsp::StreamIds;
use crate::media::TIMESCALE_90K;

/// A sender falling this far behind its schedule (a slow client, a stalled host) restarts the
/// schedule from now instead of bursting the backlog: a real camera drops frames rather than
/// sending seconds of video at once. Two seconds is two GOPs of the default clip.
const MAX_LAG: Duration = Duration::from_secs(2);

/// One session's endless pass over the clip.
#[derive(Debug)]
pub struct LoopingStream {
    clip: Arc<Clip>,
    packetizer: H264Packetizer,
    initial_rtp_timestamp: u32,
    /// Frames sent so far over all loops; the index of the next frame.
    frames_sent: u64,
    /// When frame 0 was (or would have been) due, after any restart of the schedule.
    schedule_start: Instant,
    /// The frame index the schedule was restarted at.
    schedule_start_frame: u64,
    /// What this camera gets wrong, for fault tests.
    fault: Option<Fault>,
    /// Random bytes for [`Fault::GarbageRtp`].
    rng: fastrand::Rng,
}

impl LoopingStream {
    /// A stream whose first frame is due at `start`.
    pub fn new(clip: Arc<Clip>, ids: StreamIds, start: Instant) -> Self {
        LoopingStream {
            clip,
            packetizer: H264Packetizer::new(ids.ssrc, ids.initial_seq, DEFAULT_MAX_PAYLOAD_BYTES),
            initial_rtp_timestamp: ids.initial_rtp_timestamp,
            frames_sent: 0,
            schedule_start: start,
            schedule_start_frame: 0,
            fault: None,
            rng: fastrand::Rng::new(),
        }
    }

    /// The same stream, playing `fault` (see [`Fault`]).
    pub fn with_fault(mut self, fault: Option<Fault>) -> Self {
        self.fault = fault;
        self
    }

    /// When the next frame is due.
    pub fn next_due(&self) -> Instant {
        let frames_into_schedule = self.frames_sent - self.schedule_start_frame;
        self.schedule_start + self.clip.frame_rate().elapsed_at(frames_into_schedule)
    }

    /// The RTP timestamp of the next frame.
    pub fn next_rtp_timestamp(&self) -> u32 {
        let ticks = self
            .clip
            .frame_rate()
            .ticks_at(self.frames_sent, TIMESCALE_90K);
        let shift = self
            .fault
            .map_or(0, |fault| fault.timestamp_shift_90k(self.frames_sent));
        // RTP timestamps are 32-bit and wrap (RFC 3550 5.1); the truncation is the wrap.
        self.initial_rtp_timestamp
            .wrapping_add(ticks as u32)
            .wrapping_add(shift)
    }

    /// Frames sent so far, over all loops.
    pub fn frames_sent(&self) -> u64 {
        self.frames_sent
    }

    /// Packetises the next frame and advances; `now` is the time it is being sent, used to
    /// notice when the sender has fallen behind. Returns the frame's RTP timestamp.
    pub fn send_next<E: FnMut(&[u8])>(&mut self, now: Instant, mut emit: E) -> u32 {
        if now.saturating_duration_since(self.next_due()) > MAX_LAG {
            tracing::debug!(
                frames_sent = self.frames_sent,
                "sender fell behind; restarting the schedule"
            );
            self.schedule_start = now;
            self.schedule_start_frame = self.frames_sent;
        }
        let timestamp = self.next_rtp_timestamp();
        let units = self.clip.access_units();
        // The clip always has an access unit; the modulo picks the frame of this loop.
        let index = usize::try_from(self.frames_sent % units.len().max(1) as u64).unwrap_or(0);
        if let Some(unit) = units.get(index) {
            let replaced = self
                .fault
                .and_then(|fault| fault.replace_frame(self.frames_sent, &self.clip, &unit.nals));
            let nals = replaced.as_deref().unwrap_or(&unit.nals);
            if self.fault.is_some_and(Fault::garbles_rtp) {
                let rng = &mut self.rng;
                let mut garbage = Vec::new();
                self.packetizer.packetize(nals, timestamp, |packet| {
                    garbage.clear();
                    garbage.extend((0..packet.len()).map(|_| rng.u8(..)));
                    emit(&garbage);
                });
            } else {
                self.packetizer.packetize(nals, timestamp, emit);
            }
        }
        self.frames_sent += 1;
        timestamp
    }

    /// An RTCP sender report tying the last frame sent to `wall`, the wall-clock time it was sent.
    pub fn sender_report(&self, wall: SystemTime) -> [u8; 28] {
        let last_frame = self.frames_sent.saturating_sub(1);
        let ticks = self.clip.frame_rate().ticks_at(last_frame, TIMESCALE_90K);
        rtp::sender_report(
            self.packetizer.ssrc(),
            wall,
            self.initial_rtp_timestamp.wrapping_add(ticks as u32),
            self.packetizer.packets_sent(),
            self.packetizer.payload_bytes_sent(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> StreamIds {
        StreamIds {
            ssrc: 5,
            initial_seq: 65_500,
            initial_rtp_timestamp: u32::MAX - 10_000,
        }
    }

    /// (seq, timestamp, marker) of every packet.
    fn send(stream: &mut LoopingStream, now: Instant) -> Vec<(u16, u32, bool)> {
        let mut packets = Vec::new();
        stream.send_next(now, |p| {
            packets.push((
                u16::from_be_bytes([p[2], p[3]]),
                u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
                p[1] & 0x80 != 0,
            ))
        });
        packets
    }

    #[test]
    fn timestamps_and_sequence_numbers_continue_across_the_loop_point() {
        let clip = Arc::new(Clip::embedded().unwrap().truncated(3));
        let start = Instant::now();
        let mut stream = LoopingStream::new(clip.clone(), ids(), start);
        let mut last: Option<(u16, u32)> = None;
        for frame in 0..10u32 {
            let due = stream.next_due();
            assert_eq!(due - start, Duration::from_millis(40) * frame);
            let packets = send(&mut stream, due);
            assert!(!packets.is_empty());
            assert!(packets.last().unwrap().2, "marker on the last packet");
            for &(seq, timestamp, _) in &packets {
                assert_eq!(
                    timestamp,
                    ids().initial_rtp_timestamp.wrapping_add(3600 * frame)
                );
                if let Some((last_seq, _)) = last {
                    assert_eq!(seq, last_seq.wrapping_add(1), "frame {frame}");
                }
                last = Some((seq, timestamp));
            }
        }
        assert_eq!(stream.frames_sent(), 10);
    }

    #[test]
    fn a_sender_far_behind_restarts_its_schedule_but_not_its_timestamps() {
        let clip = Arc::new(Clip::embedded().unwrap().truncated(2));
        let start = Instant::now();
        let mut stream = LoopingStream::new(clip, ids(), start);
        send(&mut stream, start);
        let late = start + Duration::from_secs(10);
        let packets = send(&mut stream, late);
        assert_eq!(packets[0].1, ids().initial_rtp_timestamp.wrapping_add(3600));
        assert_eq!(stream.next_due(), late + Duration::from_millis(40));
    }

    #[test]
    fn sender_report_names_the_last_frame_sent() {
        let clip = Arc::new(Clip::embedded().unwrap());
        let start = Instant::now();
        let mut stream = LoopingStream::new(clip, ids(), start);
        send(&mut stream, start);
        send(&mut stream, start);
        let report = stream.sender_report(SystemTime::now());
        let rtp_timestamp = u32::from_be_bytes(report[16..20].try_into().unwrap());
        assert_eq!(
            rtp_timestamp,
            ids().initial_rtp_timestamp.wrapping_add(3600)
        );
        assert_eq!(report[4..8], 5u32.to_be_bytes());
    }
}
