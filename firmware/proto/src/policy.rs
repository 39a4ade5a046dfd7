//! Report by exception: which readings of a scalar sensor are worth sending.
//!
//! Owns one sensor's reporting state. Receives readings with the time they were taken
//! ([`ScalarReporter::observe`]) and the passing of time ([`ScalarReporter::poll`]); emits the
//! values to send. Pure logic with no clock of its own: the caller passes milliseconds from any
//! monotonic clock and arms a timer for [`ScalarReporter::next_poll_ms`].
//!
//! The rules, in order:
//! - the first reading is reported;
//! - a reading is worth reporting when it leaves the deadband around the last *reported* value
//!   (measured against what the receiver shows, so slow drift is reported once it adds up);
//! - no two reports of one sensor come closer than the minimum interval; a reading held back by
//!   it is not lost: when the interval expires the latest reading is reported, whatever it is;
//! - when nothing was reported for the maximum interval, the latest reading is reported again
//!   (heartbeat), so a receiver can tell a quiet sensor from a dead one.
//!
//! Binary sensors do not pass through here: every edge of a binary sensor is a change, and two
//! edges are never merged into one, even inside one batch.

/// How far a reading may move from the last reported value without being reported.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Deadband {
    /// In the sensor's unit: report when |reading − reported| > band.
    Absolute(f32),
    /// In percent of the last reported value: report when |reading − reported| > pct/100·|reported|.
    Percent(f32),
}

/// One sensor's reporting rules.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ReportPolicy {
    /// Changes smaller than this are noise.
    pub deadband: Deadband,
    /// Least time between two reports (rate limit); 0 for none.
    pub min_interval_ms: u64,
    /// Most time between two reports (heartbeat); `None` for no heartbeat.
    pub max_interval_ms: Option<u64>,
}

impl ReportPolicy {
    /// Report every change at once, no heartbeat.
    pub const EVERY_CHANGE: ReportPolicy = ReportPolicy {
        deadband: Deadband::Absolute(0.0),
        min_interval_ms: 0,
        max_interval_ms: None,
    };
}

#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
struct Reported {
    value: f32,
    at_ms: u64,
}

/// Report-by-exception state of one scalar sensor.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ScalarReporter {
    policy: ReportPolicy,
    last_reported: Option<Reported>,
    latest: f32,
    /// A reading left the deadband inside the minimum interval: the latest reading goes out when
    /// the interval expires.
    held_back: bool,
}

impl ScalarReporter {
    /// A sensor that has reported nothing yet.
    pub fn new(policy: ReportPolicy) -> Self {
        ScalarReporter {
            policy,
            last_reported: None,
            latest: f32::NAN,
            held_back: false,
        }
    }

    /// Takes a reading made at `now_ms`; returns the value to send now, if any.
    pub fn observe(&mut self, value: f32, now_ms: u64) -> Option<f32> {
        self.latest = value;
        let Some(last) = self.last_reported else {
            return Some(self.report(now_ms));
        };
        if !self.held_back && self.outside_deadband(last.value, value) {
            if self.rate_limit_passed(last, now_ms) {
                return Some(self.report(now_ms));
            }
            self.held_back = true;
        }
        self.poll(now_ms)
    }

    /// Returns the value to send at `now_ms` without a new reading: a held-back reading whose
    /// minimum interval expired, or a heartbeat.
    pub fn poll(&mut self, now_ms: u64) -> Option<f32> {
        let last = self.last_reported?;
        let held_back_due = self.held_back && self.rate_limit_passed(last, now_ms);
        let heartbeat_due = self
            .policy
            .max_interval_ms
            .is_some_and(|max_ms| now_ms.saturating_sub(last.at_ms) >= max_ms);
        (held_back_due || heartbeat_due).then(|| self.report(now_ms))
    }

    /// When [`poll`](Self::poll) will next have a value to send, if nothing else happens.
    pub fn next_poll_ms(&self) -> Option<u64> {
        let last = self.last_reported?;
        let held_back_at = self
            .held_back
            .then(|| last.at_ms.saturating_add(self.policy.min_interval_ms));
        let heartbeat_at = self
            .policy
            .max_interval_ms
            .map(|max_ms| last.at_ms.saturating_add(max_ms));
        match (held_back_at, heartbeat_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The value the receiver shows: the last one reported.
    pub fn last_reported(&self) -> Option<f32> {
        self.last_reported.map(|reported| reported.value)
    }

    fn report(&mut self, now_ms: u64) -> f32 {
        self.held_back = false;
        self.last_reported = Some(Reported {
            value: self.latest,
            at_ms: now_ms,
        });
        self.latest
    }

    fn rate_limit_passed(&self, last: Reported, now_ms: u64) -> bool {
        now_ms.saturating_sub(last.at_ms) >= self.policy.min_interval_ms
    }

    fn outside_deadband(&self, reported: f32, reading: f32) -> bool {
        if reported.is_nan() || reading.is_nan() {
            // A sensor going to or coming back from "no reading" is always news.
            return reported.is_nan() != reading.is_nan();
        }
        let band = match self.policy.deadband {
            Deadband::Absolute(band) => band,
            Deadband::Percent(percent) => percent / 100.0 * abs(reported),
        };
        abs(reading - reported) > band
    }
}

// `f32::abs` lives in std; this is the same for the finite values it is used on.
fn abs(value: f32) -> f32 {
    if value < 0.0 {
        -value
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use std::vec::Vec;

    use super::*;

    const NOISY: ReportPolicy = ReportPolicy {
        deadband: Deadband::Absolute(0.5),
        min_interval_ms: 1_000,
        max_interval_ms: Some(60_000),
    };

    /// Feeds `(time, reading)` pairs, polling every millisecond in between as a timer would,
    /// and returns every report with its time.
    fn run(policy: ReportPolicy, readings: &[(u64, f32)], until_ms: u64) -> Vec<(u64, f32)> {
        let mut reporter = ScalarReporter::new(policy);
        let mut reports = Vec::new();
        let mut next = readings.iter().peekable();
        for now_ms in 0..=until_ms {
            while let Some((at_ms, value)) = next.next_if(|(at_ms, _)| *at_ms == now_ms) {
                reports.extend(reporter.observe(*value, *at_ms).map(|v| (now_ms, v)));
            }
            reports.extend(reporter.poll(now_ms).map(|v| (now_ms, v)));
        }
        reports
    }

    #[test]
    fn deadband_suppresses_noise() {
        let noise: Vec<(u64, f32)> = (0..100)
            .map(|n| (n * 100, 20.0 + if n % 2 == 0 { 0.2 } else { -0.2 }))
            .collect();
        // Swings of 0.4 stay inside the 0.5 deadband: one report, no heartbeat before 60 s.
        assert_eq!(run(NOISY, &noise, 9_999), [(0, 20.2)]);
    }

    #[test]
    fn deadband_is_measured_from_the_last_reported_value() {
        // A slow drift of 0.1 per reading: never 0.5 from the previous reading, but reported
        // once it is 0.5 from what the receiver shows.
        let drift: Vec<(u64, f32)> = (0..12)
            .map(|n| (n * 2_000, 20.0 + n as f32 * 0.1))
            .collect();
        let reports = run(NOISY, &drift, 30_000);
        let times: Vec<u64> = reports.iter().map(|(at, _)| *at).collect();
        assert_eq!(times, [0, 12_000]);
    }

    #[test]
    fn percent_deadband_scales_with_the_value() {
        let policy = ReportPolicy {
            deadband: Deadband::Percent(10.0),
            ..ReportPolicy::EVERY_CHANGE
        };
        let readings = [
            (0, 100.0),
            (1, 109.0),
            (2, 111.0),
            (3, 10.0),
            (4, 10.5),
            (5, 11.5),
        ];
        let values: Vec<f32> = run(policy, &readings, 10).iter().map(|r| r.1).collect();
        assert_eq!(values, [100.0, 111.0, 10.0, 11.5]);
    }

    #[test]
    fn the_final_value_is_sent_when_the_rate_limit_expires() {
        // A burst inside one minimum interval: only the first goes at once, and the last one
        // (not a middle one) goes when the interval expires.
        let burst = [(0, 10.0), (100, 20.0), (200, 30.0), (300, 25.0)];
        assert_eq!(run(NOISY, &burst, 5_000), [(0, 10.0), (1_000, 25.0)]);
    }

    #[test]
    fn the_final_value_is_sent_even_if_it_returned_inside_the_deadband() {
        let spike = [(0, 10.0), (100, 20.0), (200, 10.1)];
        assert_eq!(run(NOISY, &spike, 5_000), [(0, 10.0), (1_000, 10.1)]);
    }

    #[test]
    fn a_pending_value_is_due_at_next_poll_ms() {
        let mut reporter = ScalarReporter::new(NOISY);
        assert_eq!(reporter.observe(1.0, 5_000), Some(1.0));
        assert_eq!(reporter.next_poll_ms(), Some(65_000));
        assert_eq!(reporter.observe(9.0, 5_200), None);
        assert_eq!(reporter.next_poll_ms(), Some(6_000));
        assert_eq!(reporter.poll(5_999), None);
        assert_eq!(reporter.poll(6_000), Some(9.0));
        assert_eq!(reporter.last_reported(), Some(9.0));
    }

    #[test]
    fn heartbeats_on_time() {
        // One reading, then silence: reports at 0 and every max interval after.
        let reports = run(NOISY, &[(0, 5.0)], 185_000);
        assert_eq!(
            reports,
            [(0, 5.0), (60_000, 5.0), (120_000, 5.0), (180_000, 5.0)]
        );
    }

    #[test]
    fn a_heartbeat_carries_the_latest_reading_not_the_stale_one() {
        let reports = run(NOISY, &[(0, 5.0), (30_000, 5.3)], 61_000);
        assert_eq!(reports, [(0, 5.0), (60_000, 5.3)]);
    }

    #[test]
    fn a_sensor_losing_its_reading_is_news() {
        let readings = [(0, 5.0), (2_000, f32::NAN), (4_000, f32::NAN), (6_000, 5.0)];
        let reports = run(NOISY, &readings, 7_000);
        assert_eq!(reports.len(), 3);
        assert!(reports[1].1.is_nan());
        assert_eq!(reports[2], (6_000, 5.0));
    }
}
