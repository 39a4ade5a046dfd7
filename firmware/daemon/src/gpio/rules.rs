//! Rules: `[[rule]] when = SENSOR, then = OUTPUT, for = DURATION` — the output is on while the
//! sensor is triggered and for `for` after it clears.
//!
//! [`RuleEngine`] is the pure logic: it receives sensor changes with the time (monotonic
//! milliseconds) and answers which outputs the rules want on and when that next changes by
//! itself. Several rules may drive one output: it is on while any of them wants it. A manual
//! `off` ([`RuleEngine::stand_down`]) makes the rules of an output let go until their sensor
//! triggers anew. No I/O; [`super::outputs`] drives the pins.

use std::collections::HashMap;

use crate::config::gpio::RuleConfig;

#[derive(Debug, Clone)]
struct RuleState {
    sensor: String,
    output: String,
    for_ms: u64,
    triggered: bool,
    /// After the sensor cleared: the output stays on until then.
    until_ms: Option<u64>,
    /// A manual `off` switched the output off while this rule wanted it on: the rule keeps
    /// quiet until its sensor triggers again.
    stood_down: bool,
}

impl RuleState {
    fn wants_on(&self, now_ms: u64) -> bool {
        !self.stood_down && (self.triggered || self.until_ms.is_some_and(|until| now_ms < until))
    }
}

/// The rules' state. Times are monotonic milliseconds from one clock; they must not go back.
#[derive(Debug, Clone, Default)]
pub struct RuleEngine {
    rules: Vec<RuleState>,
}

impl RuleEngine {
    /// All sensors start cleared and all outputs off.
    pub fn new(rules: &[RuleConfig]) -> Self {
        RuleEngine {
            rules: rules
                .iter()
                .map(|r| RuleState {
                    sensor: r.when.clone(),
                    output: r.then.clone(),
                    for_ms: u64::try_from(r.for_duration.as_millis()).unwrap_or(u64::MAX),
                    triggered: false,
                    until_ms: None,
                    stood_down: false,
                })
                .collect(),
        }
    }

    /// A sensor's motion state changed at `at_ms`. Unknown sensors are ignored.
    pub fn sensor_changed(&mut self, sensor: &str, triggered: bool, at_ms: u64) {
        for rule in self.rules.iter_mut().filter(|r| r.sensor == sensor) {
            if rule.triggered && !triggered {
                rule.until_ms = Some(at_ms.saturating_add(rule.for_ms));
            }
            if triggered {
                rule.until_ms = None;
                if !rule.triggered {
                    // A new trigger: the rule speaks again.
                    rule.stood_down = false;
                }
            }
            rule.triggered = triggered;
        }
    }

    /// The rules of `output` let go of it: running holds (`for` timers) end, and a rule whose
    /// sensor is triggered waits for its next trigger.
    pub fn stand_down(&mut self, output: &str) {
        for rule in self.rules.iter_mut().filter(|r| r.output == output) {
            rule.until_ms = None;
            rule.stood_down = rule.triggered;
        }
    }

    /// Whether the rules want `output` on at `now_ms` (`false` for an output no rule drives).
    pub fn wants_on(&self, output: &str, now_ms: u64) -> bool {
        self.rules
            .iter()
            .any(|r| r.output == output && r.wants_on(now_ms))
    }

    /// Whether each output named by a rule should be on at `now_ms`.
    pub fn outputs(&self, now_ms: u64) -> HashMap<&str, bool> {
        let mut wanted: HashMap<&str, bool> = HashMap::new();
        for rule in &self.rules {
            *wanted.entry(rule.output.as_str()).or_default() |= rule.wants_on(now_ms);
        }
        wanted
    }

    /// The next time after `now_ms` at which an output turns off without a sensor change.
    pub fn next_deadline_ms(&self, now_ms: u64) -> Option<u64> {
        self.rules
            .iter()
            .filter(|r| !r.stood_down)
            .filter_map(|r| r.until_ms)
            .filter(|&until| until > now_ms)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn standing_down_ends_the_hold_and_waits_for_the_next_trigger() {
        let mut engine = RuleEngine::new(&[rule("pir", "light", 600)]);
        engine.sensor_changed("pir", true, 100);
        engine.stand_down("light");
        assert!(!engine.wants_on("light", 100), "off while still triggered");
        engine.sensor_changed("pir", false, 200);
        assert!(!engine.wants_on("light", 300), "no hold after a stand-down");
        assert_eq!(engine.next_deadline_ms(300), None);
        engine.sensor_changed("pir", true, 400);
        assert!(engine.wants_on("light", 400), "a new trigger counts again");
    }

    fn rule(when: &str, then: &str, for_ms: u64) -> RuleConfig {
        RuleConfig {
            when: when.into(),
            then: then.into(),
            for_duration: Duration::from_millis(for_ms),
        }
    }

    /// Steps a simulated clock through `0..=end_ms` and records every on/off switch of `output`.
    fn switches(
        engine: &mut RuleEngine,
        output: &str,
        changes: &[(u64, &str, bool)],
        end_ms: u64,
    ) -> Vec<(u64, bool)> {
        let mut seen = Vec::new();
        let mut on = false;
        for now in 0..=end_ms {
            for (_, sensor, triggered) in changes.iter().filter(|(t, ..)| *t == now) {
                engine.sensor_changed(sensor, *triggered, now);
            }
            let wanted = engine.outputs(now).get(output).copied().unwrap_or(false);
            if wanted != on {
                seen.push((now, wanted));
                on = wanted;
            }
        }
        seen
    }

    #[test]
    fn output_is_on_while_triggered_plus_for() {
        let mut engine = RuleEngine::new(&[rule("pir", "light", 600)]);
        let seen = switches(
            &mut engine,
            "light",
            &[(100, "pir", true), (400, "pir", false)],
            2000,
        );
        assert_eq!(seen, [(100, true), (1000, false)]);
    }

    #[test]
    fn a_new_trigger_within_for_keeps_it_on_and_restarts_for() {
        let mut engine = RuleEngine::new(&[rule("pir", "light", 600)]);
        let changes = [
            (100, "pir", true),
            (200, "pir", false), // off due at 800
            (700, "pir", true),  // back before then
            (900, "pir", false), // off due at 1500
        ];
        let seen = switches(&mut engine, "light", &changes, 3000);
        assert_eq!(seen, [(100, true), (1500, false)]);
    }

    #[test]
    fn two_rules_on_one_output_keep_it_on_while_either_wants_it() {
        let mut engine = RuleEngine::new(&[rule("a", "light", 100), rule("b", "light", 1000)]);
        let changes = [
            (10, "a", true),
            (20, "b", true),
            (30, "b", false),
            (40, "a", false),
        ];
        let seen = switches(&mut engine, "light", &changes, 3000);
        assert_eq!(seen, [(10, true), (1030, false)]);
    }

    #[test]
    fn for_zero_switches_off_with_the_sensor_and_unknown_sensors_do_nothing() {
        let mut engine = RuleEngine::new(&[rule("pir", "light", 0)]);
        let changes = [(5, "other", true), (10, "pir", true), (20, "pir", false)];
        let seen = switches(&mut engine, "light", &changes, 100);
        assert_eq!(seen, [(10, true), (20, false)]);
    }

    #[test]
    fn next_deadline_is_the_earliest_pending_off_time() {
        let mut engine = RuleEngine::new(&[rule("a", "x", 100), rule("b", "y", 50)]);
        assert_eq!(engine.next_deadline_ms(0), None);
        engine.sensor_changed("a", true, 0);
        engine.sensor_changed("b", true, 0);
        assert_eq!(engine.next_deadline_ms(0), None);
        engine.sensor_changed("a", false, 10);
        engine.sensor_changed("b", false, 20);
        assert_eq!(engine.next_deadline_ms(20), Some(70));
        assert_eq!(engine.next_deadline_ms(70), Some(110));
        assert_eq!(engine.next_deadline_ms(110), None);
    }
}
