//! Reconnect delays: exponential backoff with jitter, capped.
//!
//! Receives "an attempt failed" and "a session ran well"; emits how long to wait before the next
//! attempt. Pure arithmetic plus a random source; no I/O, no timers (the caller sleeps).

use std::time::Duration;

/// Exponential backoff with "equal jitter": the n-th consecutive failure waits a random time in
/// `[d/2, d]` where `d = min(initial × 2ⁿ, cap)`. The random half keeps many boxes (or many
/// cameras of one box) that lost a shared switch from reconnecting in lockstep; the fixed half
/// keeps the delay from collapsing to zero.
#[derive(Debug)]
pub struct Backoff {
    initial: Duration,
    cap: Duration,
    consecutive_failures: u32,
    rng: fastrand::Rng,
}

impl Backoff {
    /// A backoff starting at `initial` and never waiting longer than `cap`.
    pub fn new(initial: Duration, cap: Duration) -> Self {
        Self {
            initial,
            cap,
            consecutive_failures: 0,
            rng: fastrand::Rng::new(),
        }
    }

    /// The same, with a seeded random source (tests).
    pub fn with_seed(initial: Duration, cap: Duration, seed: u64) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(seed),
            ..Self::new(initial, cap)
        }
    }

    /// Records a failed attempt and returns how long to wait before the next one.
    pub fn next_delay(&mut self) -> Duration {
        // 2^20 × any sane initial delay is far beyond any cap; stop doubling there.
        const MAX_DOUBLINGS: u32 = 20;
        let doublings = self.consecutive_failures.min(MAX_DOUBLINGS);
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let full = self.initial.saturating_mul(1u32 << doublings).min(self.cap);
        let half = full / 2;
        half + half.mul_f64(self.rng.f64())
    }

    /// Forgets past failures: the next failure waits the initial delay again.
    pub fn reset(&mut self) {
        self.consecutive_failures = 0;
    }

    /// How many attempts failed in a row.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_within_jitter_and_stays_under_the_cap() {
        let initial = Duration::from_secs(1);
        let cap = Duration::from_secs(30);
        let mut backoff = Backoff::with_seed(initial, cap, 7);
        let mut ceiling = initial;
        for _ in 0..12 {
            let delay = backoff.next_delay();
            assert!(delay >= ceiling / 2, "{delay:?} below half of {ceiling:?}");
            assert!(delay <= ceiling, "{delay:?} above {ceiling:?}");
            ceiling = (ceiling * 2).min(cap);
        }
        assert_eq!(backoff.consecutive_failures(), 12);
    }

    #[test]
    fn reset_starts_over() {
        let mut backoff = Backoff::with_seed(Duration::from_secs(1), Duration::from_secs(30), 1);
        for _ in 0..8 {
            backoff.next_delay();
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_secs(1));
    }

    #[test]
    fn jitter_spreads_delays() {
        let mut a = Backoff::with_seed(Duration::from_secs(8), Duration::from_secs(30), 1);
        let mut b = Backoff::with_seed(Duration::from_secs(8), Duration::from_secs(30), 2);
        assert_ne!(a.next_delay(), b.next_delay());
    }
}
