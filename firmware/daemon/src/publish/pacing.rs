//! When a publisher sends the changes it holds: at once when the link has been quiet, batched
//! when it is busy.
//!
//! Owns the time of the last changes frame. Receives "changes are waiting" and "a frame went
//! out"; answers when the waiting changes are due. Pure logic on [`tokio::time::Instant`]s, no
//! I/O, so both publishers (TCP, MQTT) share it and the rule is tested on its own.
//!
//! The rule: a change goes out at once when no changes frame went out in the last
//! `min_gap`; otherwise it waits for the end of that gap, gathering every change that arrives
//! meanwhile into one frame. A lone PIR edge on a quiet box is therefore sent as soon as it
//! happens, and a busy site (200 changes/s) sends one frame per gap with ~10 changes in it,
//! which is what keeps a binary change under 4 bytes with the frame's ~12 bytes of overhead
//! shared. The link's own back-pressure adds to it: while a write is blocked (a slow link's
//! buffer is full) the publisher cannot send, and changes keep gathering.

use std::time::Duration;

use tokio::time::Instant;

/// Decides when held changes go out; see the module doc.
#[derive(Clone, Debug)]
pub struct Pacer {
    min_gap: Duration,
    last_frame: Option<Instant>,
}

impl Pacer {
    /// A pacer allowing one changes frame per `min_gap`; the first change goes at once.
    pub fn new(min_gap: Duration) -> Self {
        Pacer {
            min_gap,
            last_frame: None,
        }
    }

    /// When changes that are waiting should go out: `now` or later (`None` when nothing waits).
    pub fn due(&self, waiting: bool, now: Instant) -> Option<Instant> {
        if !waiting {
            return None;
        }
        Some(match self.last_frame {
            Some(last) => (last + self.min_gap).max(now),
            None => now,
        })
    }

    /// Whether waiting changes should go out now.
    pub fn is_due(&self, waiting: bool, now: Instant) -> bool {
        self.due(waiting, now).is_some_and(|at| at <= now)
    }

    /// A changes frame went out at `now`.
    pub fn sent(&mut self, now: Instant) {
        self.last_frame = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GAP: Duration = Duration::from_millis(50);

    /// Changes arrive at `arrivals_ms`; returns the times frames go out and how many changes
    /// each carries, stepping a simulated clock 1 ms at a time.
    fn frames(arrivals_ms: &[u64], until_ms: u64) -> Vec<(u64, usize)> {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut pacer = Pacer::new(GAP);
        let mut waiting = 0;
        let mut sent = Vec::new();
        for ms in 0..=until_ms {
            waiting += arrivals_ms.iter().filter(|a| **a == ms).count();
            if pacer.is_due(waiting > 0, at(ms)) {
                pacer.sent(at(ms));
                sent.push((ms, waiting));
                waiting = 0;
            }
        }
        sent
    }

    #[test]
    fn a_change_on_a_quiet_link_goes_at_once() {
        assert_eq!(frames(&[7], 100), [(7, 1)]);
        assert_eq!(frames(&[7, 500], 600), [(7, 1), (500, 1)]);
    }

    #[test]
    fn changes_during_the_gap_gather_into_one_frame() {
        assert_eq!(frames(&[0, 10, 20, 49], 200), [(0, 1), (50, 3)]);
    }

    #[test]
    fn a_steady_stream_sends_one_frame_per_gap() {
        // 200 changes a second, one every 5 ms, for a second.
        let arrivals: Vec<u64> = (0..200).map(|n| n * 5).collect();
        let sent = frames(&arrivals, 1_100);
        assert_eq!(sent.first(), Some(&(0, 1)));
        assert_eq!(sent.len(), 21, "{sent:?}");
        // Every 50 ms after the first: ten changes, and the nine left at the end.
        assert!(
            sent[1..20].iter().all(|(_, count)| *count == 10),
            "{sent:?}"
        );
        assert_eq!(sent.iter().map(|(_, c)| c).sum::<usize>(), 200);
    }

    #[test]
    fn nothing_waiting_is_never_due() {
        let pacer = Pacer::new(GAP);
        assert_eq!(pacer.due(false, Instant::now()), None);
    }
}
