//! The pre-roll ring for `mode = "events"`: the last few seconds of GOPs kept in RAM, not on the
//! card, until an event says they are wanted.
//!
//! Receives finished GOPs; evicts the oldest while the ring holds more than its time or byte
//! budget; [`PreRoll::drain`] hands everything over, oldest first, when an event starts. The
//! newest GOP is always kept even when it alone exceeds the budget, so an event never starts
//! without its key frame. Pure data, no I/O.

use std::collections::VecDeque;

use crate::media::Gop;

/// A bounded ring of the most recent GOPs.
#[derive(Debug)]
pub struct PreRoll {
    max_duration_90k: i64,
    max_bytes: usize,
    gops: VecDeque<Gop>,
    bytes: usize,
    duration_90k: i64,
}

impl PreRoll {
    /// A ring holding `max_duration_90k` of video before the GOP in progress, within
    /// `max_bytes` of payload. A trigger comes while a GOP is still arriving, up to a GOP after
    /// the newest finished one ends (a little more when the key frame that finished it was
    /// stamped after the trigger), so the ring keeps whole GOPs covering the budget plus the
    /// newest GOP's length: with 2 s GOPs a 5 s pre-roll keeps the 4 newest (up to 8 s), and an
    /// event's recording starts at least 5 s early whenever the stream has run that long. The
    /// event takes only what it needs and leaves the rest.
    pub fn new(max_duration_90k: i64, max_bytes: usize) -> Self {
        Self {
            max_duration_90k,
            max_bytes,
            gops: VecDeque::new(),
            bytes: 0,
            duration_90k: 0,
        }
    }

    /// Adds the newest GOP and evicts the oldest ones that the budget no longer needs; returns
    /// how many it evicted (video that was never recorded).
    pub fn push(&mut self, gop: Gop) -> usize {
        let mut evicted_gops = 0;
        self.bytes += gop.payload_bytes();
        self.duration_90k += gop.duration_90k();
        self.gops.push_back(gop);
        let newest_90k = self.gops.back().map_or(0, Gop::duration_90k);
        while self.gops.len() > 1 {
            let Some(oldest) = self.gops.front() else {
                break;
            };
            let without_oldest_90k = self.duration_90k - oldest.duration_90k();
            let over_time = without_oldest_90k >= self.max_duration_90k.saturating_add(newest_90k);
            let over_bytes = self.bytes > self.max_bytes;
            if !(over_time || over_bytes) {
                break;
            }
            if let Some(evicted) = self.gops.pop_front() {
                self.bytes -= evicted.payload_bytes();
                self.duration_90k -= evicted.duration_90k();
                evicted_gops += 1;
            }
        }
        evicted_gops
    }

    /// Takes every GOP out, oldest first.
    pub fn drain(&mut self) -> Vec<Gop> {
        self.bytes = 0;
        self.duration_90k = 0;
        self.gops.drain(..).collect()
    }

    /// Payload bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Video held, in 90 kHz ticks.
    pub fn duration_90k(&self) -> i64 {
        self.duration_90k
    }

    /// GOPs held.
    pub fn len(&self) -> usize {
        self.gops.len()
    }

    /// Whether the ring is empty.
    pub fn is_empty(&self) -> bool {
        self.gops.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::gop_at;

    const SECOND_90K: i64 = 90_000;

    #[test]
    fn keeps_at_least_the_time_budget_of_whole_gops() {
        // 5 s of pre-roll from 2 s GOPs.
        let mut ring = PreRoll::new(5 * SECOND_90K, usize::MAX);
        for i in 0..10 {
            ring.push(gop_at(i * 2 * SECOND_90K, 100));
        }
        assert_eq!(ring.len(), 4);
        assert_eq!(ring.duration_90k(), 8 * SECOND_90K);
        let gops = ring.drain();
        assert_eq!(gops[0].frames[0].pts_90k, 12 * SECOND_90K);
        assert!(ring.is_empty());
        assert_eq!(ring.bytes(), 0);
    }

    #[test]
    fn the_byte_budget_wins_but_the_newest_gop_stays() {
        let mut ring = PreRoll::new(60 * SECOND_90K, 250);
        for i in 0..5 {
            ring.push(gop_at(i * 2 * SECOND_90K, 100));
        }
        assert_eq!(ring.len(), 2);
        assert!(ring.bytes() <= 250);
        let mut tiny = PreRoll::new(SECOND_90K, 10);
        tiny.push(gop_at(0, 100));
        tiny.push(gop_at(2 * SECOND_90K, 100));
        assert_eq!(tiny.len(), 1);
        assert_eq!(tiny.drain()[0].frames[0].pts_90k, 2 * SECOND_90K);
    }
}
