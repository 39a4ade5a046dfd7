//! The PIR input driver: turns raw pin readings into "motion started" / "motion ended" changes.
//!
//! Receives a pin (by value) and, on each [`Pir::poll`], the current monotonic time in
//! milliseconds; emits a [`PirChange`] when the debounced, held, warm-up-filtered motion state
//! changes. Three filters apply in order:
//!
//! 1. **Polarity and debounce.** The pin level is mapped to "active" (`active_low` inverts it); an
//!    active/inactive level counts only once it has stayed the same for `debounce_ms`. Any number
//!    of edges within that time (a chattering input) change nothing.
//! 2. **Warm-up.** Until `warmup_ms` after the driver was created, activity is ignored: modules such
//!    as the HC-SR501 fire falsely for about a minute after power-on. After warm-up, motion is only
//!    counted once the input has been seen inactive, so a false trigger that is still being held
//!    by the module when warm-up ends does not count either.
//! 3. **Hold/retrigger.** Motion stays on while the input is active and for `hold_ms` after its
//!    inactive level counts (so `debounce_ms + hold_ms` after the last activity); activity within
//!    the hold time extends it (no new change is emitted).
//!
//! The driver never blocks or sleeps; [`Pir::next_deadline_ms`] says when a poll is next due
//! without an edge (debounce settling, hold expiry, warm-up end).

use embedded_hal::digital::InputPin;

use crate::Error;

/// Settings of one PIR input. All times are in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PirConfig {
    /// The input is active when the pin is low (e.g. an open-collector output with a pull-up).
    pub active_low: bool,
    /// How long a level must stay unchanged before it counts.
    pub debounce_ms: u64,
    /// How long motion stays on after the input goes inactive; activity within it extends it.
    pub hold_ms: u64,
    /// How long after creation activity is ignored (power-on settling of the module).
    pub warmup_ms: u64,
}

/// A change of the motion state reported by [`Pir::poll`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PirChange {
    /// Motion started: the input became active (debounced, after warm-up).
    Triggered,
    /// Motion ended: the input has been inactive for the hold time.
    Cleared,
}

/// A PIR motion input on pin `P`. See the module documentation for the filters it applies.
#[derive(Debug)]
pub struct Pir<P> {
    pin: P,
    config: PirConfig,
    /// End of the warm-up window.
    warm_at_ms: u64,
    /// The most recent reading (after polarity) and when it began.
    candidate_active: bool,
    candidate_since_ms: u64,
    /// The debounced level.
    stable_active: bool,
    /// Set once the input has been seen (debounced) inactive after warm-up.
    armed: bool,
    /// While motion is on and the input is inactive again: when motion ends.
    hold_until_ms: Option<u64>,
    /// The reported motion state.
    triggered: bool,
}

impl<P: InputPin> Pir<P> {
    /// Takes the pin. `now_ms` is the power-on time of the module, from which warm-up counts.
    /// The input is assumed inactive until a poll reads it.
    pub fn new(pin: P, config: PirConfig, now_ms: u64) -> Self {
        Pir {
            pin,
            config,
            warm_at_ms: now_ms.saturating_add(config.warmup_ms),
            candidate_active: false,
            candidate_since_ms: now_ms,
            stable_active: false,
            armed: false,
            hold_until_ms: None,
            triggered: false,
        }
    }

    /// Reads the pin once at time `now_ms` and returns the motion change this causes, if any.
    /// Call it on every edge of the pin and at [`Pir::next_deadline_ms`]; polling more often is
    /// harmless. Times must not go backwards.
    pub fn poll(&mut self, now_ms: u64) -> Result<Option<PirChange>, Error<P::Error>> {
        let level_high = self.pin.is_high().map_err(Error::Pin)?;
        Ok(self.update(level_high != self.config.active_low, now_ms))
    }

    /// The filter logic, separated from the pin read.
    fn update(&mut self, active: bool, now_ms: u64) -> Option<PirChange> {
        if active != self.candidate_active {
            self.candidate_active = active;
            self.candidate_since_ms = now_ms;
        }
        let settled_at_ms = self
            .candidate_since_ms
            .saturating_add(self.config.debounce_ms);
        if self.candidate_active != self.stable_active && now_ms >= settled_at_ms {
            self.stable_active = self.candidate_active;
            if !self.stable_active && self.triggered {
                self.hold_until_ms = Some(now_ms.saturating_add(self.config.hold_ms));
            }
        }
        let warm = now_ms >= self.warm_at_ms;
        if warm && !self.stable_active {
            self.armed = true;
        }
        if self.stable_active && self.armed {
            self.hold_until_ms = None;
            return self.report(true);
        }
        match self.hold_until_ms {
            Some(until_ms) if now_ms < until_ms => None,
            _ => {
                self.hold_until_ms = None;
                self.report(false)
            }
        }
    }

    fn report(&mut self, triggered: bool) -> Option<PirChange> {
        if triggered == self.triggered {
            return None;
        }
        self.triggered = triggered;
        Some(if triggered {
            PirChange::Triggered
        } else {
            PirChange::Cleared
        })
    }

    /// The current motion state (as last reported by [`Pir::poll`]).
    pub fn is_triggered(&self) -> bool {
        self.triggered
    }

    /// The time at which [`Pir::poll`] must be called even if the pin does not move: a pending
    /// debounce settling, the end of a hold, or the end of warm-up. `None` when only an edge can
    /// change anything.
    pub fn next_deadline_ms(&self, now_ms: u64) -> Option<u64> {
        let settling = (self.candidate_active != self.stable_active).then(|| {
            self.candidate_since_ms
                .saturating_add(self.config.debounce_ms)
        });
        let warming = (now_ms < self.warm_at_ms).then_some(self.warm_at_ms);
        [settling, self.hold_until_ms, warming]
            .into_iter()
            .flatten()
            .min()
    }

    /// The pin, e.g. to wait on it with a HAL-specific API.
    pub fn pin_mut(&mut self) -> &mut P {
        &mut self.pin
    }

    /// Gives the pin back.
    pub fn release(self) -> P {
        self.pin
    }
}

impl<P: InputPin + embedded_hal_async::digital::Wait> Pir<P> {
    /// Waits until the pin changes level (any edge). Then call [`Pir::poll`]. Race this against a
    /// timer for [`Pir::next_deadline_ms`]. Cancel-safe if the pin's `wait_for_any_edge` is.
    pub async fn wait_for_edge(&mut self) -> Result<(), Error<P::Error>> {
        self.pin.wait_for_any_edge().await.map_err(Error::Pin)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use embedded_hal_mock::eh1::digital::{Mock, State, Transaction};
    use embedded_hal_mock::eh1::MockError;

    use super::*;

    const QUIET: PirConfig = PirConfig {
        active_low: false,
        debounce_ms: 50,
        hold_ms: 0,
        warmup_ms: 0,
    };

    /// Builds a PIR on a mock pin that will be read at the given levels, polls it at the given
    /// times and returns every change with its time; the mock checks that each read happened.
    fn run(config: PirConfig, reads: &[(u64, State)]) -> Vec<(u64, PirChange)> {
        let expectations: Vec<Transaction> =
            reads.iter().map(|(_, s)| Transaction::get(*s)).collect();
        let mut pir = Pir::new(Mock::new(&expectations), config, 0);
        let mut changes = Vec::new();
        for (t, _) in reads {
            if let Some(c) = pir.poll(*t).unwrap() {
                changes.push((*t, c));
            }
        }
        pir.release().done();
        changes
    }

    use PirChange::{Cleared, Triggered};
    use State::{High, Low};

    #[test]
    fn a_level_counts_only_after_the_debounce_time() {
        let changes = run(
            QUIET,
            &[(0, Low), (100, High), (120, High), (149, High), (150, High)],
        );
        assert_eq!(changes, [(150, Triggered)]);
    }

    #[test]
    fn a_short_pulse_below_debounce_is_ignored() {
        let changes = run(QUIET, &[(0, High), (30, Low), (200, Low), (1000, Low)]);
        assert_eq!(changes, []);
    }

    #[test]
    fn chattering_input_gives_one_trigger_and_one_clear() {
        let mut reads = Vec::new();
        // 40 edges, 1 ms apart: far inside the 50 ms debounce time.
        for i in 0..40u64 {
            reads.push((100 + i, if i % 2 == 0 { High } else { Low }));
        }
        reads.push((140, High));
        reads.push((190, High));
        reads.push((500, High));
        // Chatter on the way down too.
        for i in 0..40u64 {
            reads.push((600 + i, if i % 2 == 0 { Low } else { High }));
        }
        reads.push((640, Low));
        reads.push((690, Low));
        reads.push((2000, Low));
        let changes = run(QUIET, &reads);
        assert_eq!(changes, [(190, Triggered), (690, Cleared)]);
    }

    #[test]
    fn active_low_inverts_the_level() {
        let config = PirConfig {
            active_low: true,
            ..QUIET
        };
        let changes = run(config, &[(0, High), (100, High), (200, Low), (250, Low)]);
        assert_eq!(changes, [(250, Triggered)]);
        let changes = run(config, &[(0, High), (200, High), (300, High)]);
        assert_eq!(changes, []);
    }

    #[test]
    fn hold_keeps_motion_on_and_retrigger_extends_it() {
        let config = PirConfig {
            hold_ms: 1000,
            ..QUIET
        };
        let changes = run(
            config,
            &[
                (0, High),
                (50, High),  // triggered
                (100, Low),  // inactive from 100
                (150, Low),  // debounced inactive: hold until 1150
                (900, High), // activity within the hold
                (950, High), // debounced active again: hold cancelled
                (1200, Low), // would have cleared at 1150 without the retrigger
                (1250, Low), // debounced inactive: hold until 2250
                (2249, Low), // still held
                (2250, Low), // cleared
            ],
        );
        assert_eq!(changes, [(50, Triggered), (2250, Cleared)]);
    }

    #[test]
    fn warmup_ignores_activity_and_needs_a_quiet_input_afterwards() {
        let config = PirConfig {
            warmup_ms: 60_000,
            ..QUIET
        };
        let changes = run(
            config,
            &[
                (1000, High),   // false trigger during warm-up
                (1050, High),   // debounced active, ignored
                (59_000, High), // the module still holds it when warm-up ends
                (61_000, High), // still ignored: not seen quiet since warm-up
                (62_000, Low),
                (62_050, Low), // quiet: armed
                (70_000, High),
                (70_050, High), // real motion
            ],
        );
        assert_eq!(changes, [(70_050, Triggered)]);
    }

    #[test]
    fn next_deadline_names_the_settling_hold_and_warmup_times() {
        let config = PirConfig {
            hold_ms: 1000,
            warmup_ms: 10,
            ..QUIET
        };
        let mut pir = Pir::new(
            Mock::new(&[
                Transaction::get(High),
                Transaction::get(High),
                Transaction::get(Low),
                Transaction::get(Low),
                Transaction::get(Low),
            ]),
            config,
            0,
        );
        assert_eq!(pir.next_deadline_ms(0), Some(10));
        assert_eq!(pir.poll(20).unwrap(), None);
        assert_eq!(pir.next_deadline_ms(20), Some(70));
        assert_eq!(pir.poll(70).unwrap(), Some(Triggered));
        assert_eq!(pir.next_deadline_ms(70), None);
        assert_eq!(pir.poll(100).unwrap(), None);
        assert_eq!(pir.next_deadline_ms(100), Some(150));
        assert_eq!(pir.poll(150).unwrap(), None);
        assert_eq!(pir.next_deadline_ms(150), Some(1150));
        assert_eq!(pir.poll(1150).unwrap(), Some(Cleared));
        assert_eq!(pir.next_deadline_ms(1150), None);
        assert!(!pir.is_triggered());
        pir.release().done();
    }

    /// Runs a future that is ready at once (the mock pin's waits are), without an executor.
    fn ready<F: core::future::Future>(future: F) -> F::Output {
        let mut future = core::pin::pin!(future);
        let mut context = core::task::Context::from_waker(core::task::Waker::noop());
        match future.as_mut().poll(&mut context) {
            core::task::Poll::Ready(output) => output,
            core::task::Poll::Pending => panic!("the mock pin's wait should be ready"),
        }
    }

    #[test]
    fn an_async_loop_waits_for_edges_and_polls_at_the_deadline() {
        use embedded_hal_mock::eh1::digital::Edge;
        let pin = Mock::new(&[
            Transaction::get(Low),
            Transaction::wait_for_edge(Edge::Any),
            Transaction::get(High),
            // No edge before the debounce deadline: the caller's timer fires and it polls.
            Transaction::get(High),
        ]);
        let mut pir = Pir::new(pin, QUIET, 0);
        assert_eq!(pir.poll(0).unwrap(), None);
        assert_eq!(
            pir.next_deadline_ms(0),
            None,
            "nothing pending: only an edge can help"
        );
        ready(pir.wait_for_edge()).unwrap();
        assert_eq!(pir.poll(500).unwrap(), None);
        assert_eq!(pir.next_deadline_ms(500), Some(550));
        assert_eq!(pir.poll(550).unwrap(), Some(Triggered));
        pir.release().done();
    }

    #[test]
    fn a_pin_error_is_wrapped() {
        let err = MockError::Io(std::io::ErrorKind::NotConnected);
        let mut pir = Pir::new(
            Mock::new(&[Transaction::get(High).with_error(err.clone())]),
            QUIET,
            0,
        );
        assert_eq!(pir.poll(0), Err(Error::Pin(err)));
        pir.release().done();
    }
}
