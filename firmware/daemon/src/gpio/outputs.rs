//! Outputs: who decides whether each output is on — its rules, or a manual command from
//! upstream (MQTT, the HTTP API) — and the task that drives the pins and announces each switch.
//!
//! [`OutputPlanner`] is the pure logic (no clock, no pins): rules from [`RuleEngine`], and
//! per output a manual override. How a command and a rule's timer interact:
//!
//! | command | the output | afterwards |
//! | --- | --- | --- |
//! | `on` | on now | stays on until `off`: rules and their timers cannot switch it off |
//! | `on --for D` | on now | after D the rules decide again (a running hold or a triggered sensor keeps it on) |
//! | `off` | off now | rules of this output let go: a running hold ends, a sensor still triggered is ignored until it triggers anew; the next trigger switches it on as usual |
//! | `off --for D` | off now | for D nothing switches it on; then the rules decide again |
//!
//! A newer command replaces an older one. [`spawn_outputs`] runs the planner in a tokio task:
//! it receives [`SensorEvent`]s and [`OutputCommand`]s (through an [`OutputControl`] handle),
//! drives the [`Output`] drivers (a pin is written only on change) and emits one
//! [`OutputEvent`] per switch, and the initial state of every output at start.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use edgenvr_sensors::Output;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::pins::OutputBackend;
use super::rules::RuleEngine;
use super::sensor_task::SensorEvent;
use super::GpioClock;
use crate::config::gpio::RuleConfig;

/// Switch on or off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputAction {
    /// Switch on.
    On,
    /// Switch off.
    Off,
}

/// A manual command for one output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputCommand {
    /// The output's configured name.
    pub output: String,
    /// On or off.
    pub action: OutputAction,
    /// For how long the command holds (see the module doc); `None`: `on` until `off`, `off`
    /// until the next trigger.
    pub duration: Option<Duration>,
}

/// An output's state after a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputReport {
    /// The output's name.
    pub output: String,
    /// Whether it is on now.
    pub on: bool,
    /// When a timed command ends (wall clock), if one holds.
    pub manual_until: Option<SystemTime>,
}

/// Why a command was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CommandError {
    /// No `[[output]]` of that name is running.
    #[error("no output named {0:?} (outputs whose pin could not be opened are not running)")]
    UnknownOutput(String),
    /// The pin refused the level.
    #[error("output {output:?}: switching failed: {reason}")]
    Pin {
        /// The output.
        output: String,
        /// The driver's error.
        reason: String,
    },
    /// The outputs task has stopped (the box is shutting down).
    #[error("the outputs are shutting down")]
    Stopped,
}

/// Why an output switched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwitchCause {
    /// Its state at start (off).
    Start,
    /// A rule.
    Rule,
    /// A manual command.
    Manual,
}

/// An output switched (or, with [`SwitchCause::Start`], its state at start).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputEvent {
    /// The output's configured name.
    pub name: Arc<str>,
    /// On now.
    pub on: bool,
    /// What switched it.
    pub cause: SwitchCause,
    /// When, on the wall clock.
    pub at_wall: SystemTime,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Manual {
    On { until_ms: Option<u64> },
    Off { until_ms: u64 },
}

/// Rules plus manual overrides; see the module doc. Times are monotonic milliseconds.
#[derive(Debug, Clone, Default)]
pub struct OutputPlanner {
    rules: RuleEngine,
    manual: HashMap<String, Manual>,
}

impl OutputPlanner {
    /// No command given, all sensors cleared.
    pub fn new(rules: &[RuleConfig]) -> Self {
        OutputPlanner {
            rules: RuleEngine::new(rules),
            manual: HashMap::new(),
        }
    }

    /// A sensor changed at `at_ms`.
    pub fn sensor_changed(&mut self, sensor: &str, triggered: bool, at_ms: u64) {
        self.rules.sensor_changed(sensor, triggered, at_ms);
    }

    /// A manual command at `now_ms`.
    pub fn command(
        &mut self,
        output: &str,
        action: OutputAction,
        duration_ms: Option<u64>,
        now_ms: u64,
    ) {
        let until_ms = duration_ms.map(|d| now_ms.saturating_add(d));
        match (action, until_ms) {
            (OutputAction::On, until_ms) => {
                self.manual
                    .insert(output.to_owned(), Manual::On { until_ms });
            }
            (OutputAction::Off, Some(until_ms)) => {
                self.manual
                    .insert(output.to_owned(), Manual::Off { until_ms });
            }
            (OutputAction::Off, None) => {
                self.manual.remove(output);
                self.rules.stand_down(output);
            }
        }
    }

    fn active_manual(&self, output: &str, now_ms: u64) -> Option<Manual> {
        let manual = *self.manual.get(output)?;
        let expired = match manual {
            Manual::On { until_ms } => until_ms.is_some_and(|until| now_ms >= until),
            Manual::Off { until_ms } => now_ms >= until_ms,
        };
        (!expired).then_some(manual)
    }

    /// Whether `output` should be on at `now_ms`.
    pub fn wants_on(&self, output: &str, now_ms: u64) -> bool {
        match self.active_manual(output, now_ms) {
            Some(Manual::On { .. }) => true,
            Some(Manual::Off { .. }) => false,
            None => self.rules.wants_on(output, now_ms),
        }
    }

    /// When a running timed command on `output` ends, if one holds at `now_ms`.
    pub fn manual_until_ms(&self, output: &str, now_ms: u64) -> Option<u64> {
        match self.active_manual(output, now_ms)? {
            Manual::On { until_ms } => until_ms,
            Manual::Off { until_ms } => Some(until_ms),
        }
    }

    /// The next time after `now_ms` at which some output may switch without an input.
    pub fn next_deadline_ms(&self, now_ms: u64) -> Option<u64> {
        let manual = self.manual.values().filter_map(|m| match m {
            Manual::On { until_ms } => *until_ms,
            Manual::Off { until_ms } => Some(*until_ms),
        });
        manual
            .filter(|until| *until > now_ms)
            .chain(self.rules.next_deadline_ms(now_ms))
            .min()
    }

    /// Forgets commands that have run out (keeps the map small on a long-running box).
    fn expire(&mut self, now_ms: u64) {
        self.manual.retain(|_, manual| match manual {
            Manual::On { until_ms } => until_ms.is_none_or(|until| now_ms < until),
            Manual::Off { until_ms } => now_ms < *until_ms,
        });
    }
}

/// Commands queued for the outputs task before senders wait: commands come from people and
/// automations, a few a minute.
const COMMAND_QUEUE: usize = 16;

type Request = (
    OutputCommand,
    oneshot::Sender<Result<OutputReport, CommandError>>,
);

/// Sends commands to the outputs task; clone freely.
#[derive(Clone, Debug)]
pub struct OutputControl {
    requests: mpsc::Sender<Request>,
    names: Arc<[String]>,
}

impl OutputControl {
    /// The outputs that take commands (those whose pin opened), in config order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Applies `command` and returns the output's state after it.
    pub async fn command(&self, command: OutputCommand) -> Result<OutputReport, CommandError> {
        if !self.names.contains(&command.output) {
            return Err(CommandError::UnknownOutput(command.output));
        }
        let (reply, answer) = oneshot::channel();
        self.requests
            .send((command, reply))
            .await
            .map_err(|_| CommandError::Stopped)?;
        answer.await.map_err(|_| CommandError::Stopped)?
    }
}

/// Starts the outputs task for the opened `outputs` (by name) under `rules`. Returns the task
/// and the handle for commands. The task ends when both the sensor events and every
/// [`OutputControl`] are gone.
pub fn spawn_outputs(
    rules: &[RuleConfig],
    outputs: HashMap<String, Output<OutputBackend>>,
    order: &[String],
    clock: GpioClock,
    sensor_events: broadcast::Receiver<SensorEvent>,
    output_events: broadcast::Sender<OutputEvent>,
) -> (JoinHandle<()>, OutputControl) {
    let names: Arc<[String]> = order
        .iter()
        .filter(|name| outputs.contains_key(*name))
        .cloned()
        .collect();
    let (requests, commands) = mpsc::channel(COMMAND_QUEUE);
    let task = OutputTask {
        planner: OutputPlanner::new(rules),
        outputs,
        names: names.clone(),
        clock,
        output_events,
    };
    let handle = tokio::spawn(task.run(sensor_events, commands));
    (handle, OutputControl { requests, names })
}

struct OutputTask {
    planner: OutputPlanner,
    outputs: HashMap<String, Output<OutputBackend>>,
    names: Arc<[String]>,
    clock: GpioClock,
    output_events: broadcast::Sender<OutputEvent>,
}

impl OutputTask {
    async fn run(
        mut self,
        mut sensor_events: broadcast::Receiver<SensorEvent>,
        mut commands: mpsc::Receiver<Request>,
    ) {
        for name in self.names.iter() {
            let on = self.outputs.get(name).is_some_and(Output::is_on);
            self.announce(name, on, SwitchCause::Start);
        }
        let (mut sensors_open, mut commands_open) = (true, true);
        while sensors_open || commands_open {
            let now_ms = self.clock.now_ms();
            let deadline = self
                .planner
                .next_deadline_ms(now_ms)
                .map(|ms| self.clock.instant_at(ms));
            tokio::select! {
                received = sensor_events.recv(), if sensors_open => match received {
                    Ok(event) => {
                        self.planner.sensor_changed(&event.name, event.triggered, self.clock.ms_at(event.at));
                        self.apply(SwitchCause::Rule);
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "outputs fell behind the sensor events; some changes were skipped");
                    }
                    Err(broadcast::error::RecvError::Closed) => sensors_open = false,
                },
                request = commands.recv(), if commands_open => match request {
                    Some((command, reply)) => {
                        let result = self.command(&command);
                        let _ = reply.send(result);
                    }
                    None => commands_open = false,
                },
                () = async {
                    match deadline {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {
                    self.apply(SwitchCause::Rule);
                    self.planner.expire(self.clock.now_ms());
                }
            }
        }
    }

    fn command(&mut self, command: &OutputCommand) -> Result<OutputReport, CommandError> {
        if !self.outputs.contains_key(&command.output) {
            return Err(CommandError::UnknownOutput(command.output.clone()));
        }
        let now_ms = self.clock.now_ms();
        let duration_ms = command
            .duration
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.planner
            .command(&command.output, command.action, duration_ms, now_ms);
        tracing::info!(
            output = %command.output,
            action = ?command.action,
            duration = ?command.duration,
            "output command"
        );
        self.apply(SwitchCause::Manual);
        let output = self
            .outputs
            .get(&command.output)
            .ok_or_else(|| CommandError::UnknownOutput(command.output.clone()))?;
        let wanted = self.planner.wants_on(&command.output, now_ms);
        if output.is_on() != wanted {
            return Err(CommandError::Pin {
                output: command.output.clone(),
                reason: "the pin did not take the level (see the log)".into(),
            });
        }
        let manual_until = self
            .planner
            .manual_until_ms(&command.output, now_ms)
            .map(|until| SystemTime::now() + Duration::from_millis(until.saturating_sub(now_ms)));
        Ok(OutputReport {
            output: command.output.clone(),
            on: output.is_on(),
            manual_until,
        })
    }

    /// Switches every output to what the planner wants now.
    fn apply(&mut self, cause: SwitchCause) {
        let now_ms = self.clock.now_ms();
        let names = self.names.clone();
        for name in names.iter() {
            let wanted = self.planner.wants_on(name, now_ms);
            let Some(output) = self.outputs.get_mut(name) else {
                continue;
            };
            if output.is_on() == wanted {
                continue;
            }
            let switched = if wanted {
                output.switch_on()
            } else {
                output.switch_off()
            };
            match switched {
                Ok(()) => {
                    tracing::info!(output = %name, on = wanted, ?cause, "output switched");
                    self.announce(name, wanted, cause);
                }
                Err(e) => {
                    tracing::warn!(output = %name, on = wanted, error = %e, "switching the output failed")
                }
            }
        }
    }

    fn announce(&self, name: &str, on: bool, cause: SwitchCause) {
        // No subscriber is not an error.
        let _ = self.output_events.send(OutputEvent {
            name: name.into(),
            on,
            cause,
            at_wall: SystemTime::now(),
        });
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn rule(when: &str, then: &str, for_ms: u64) -> RuleConfig {
        RuleConfig {
            when: when.into(),
            then: then.into(),
            for_duration: Duration::from_millis(for_ms),
        }
    }

    #[test]
    fn a_timed_on_outlasts_nothing_and_hands_back_to_a_running_hold() {
        let mut planner = OutputPlanner::new(&[rule("pir", "light", 1_000)]);
        planner.sensor_changed("pir", true, 0);
        planner.sensor_changed("pir", false, 100); // hold until 1,100
        planner.command("light", OutputAction::On, Some(500), 200); // on until 700
        assert!(planner.wants_on("light", 650));
        assert!(planner.wants_on("light", 800), "the rule's hold still runs");
        assert!(!planner.wants_on("light", 1_100));
        assert_eq!(planner.next_deadline_ms(800), Some(1_100));
    }

    #[test]
    fn on_without_a_duration_ignores_the_rules_timer() {
        let mut planner = OutputPlanner::new(&[rule("pir", "light", 100)]);
        planner.command("light", OutputAction::On, None, 0);
        planner.sensor_changed("pir", true, 10);
        planner.sensor_changed("pir", false, 20);
        assert!(planner.wants_on("light", 10_000));
        planner.command("light", OutputAction::Off, None, 10_000);
        assert!(!planner.wants_on("light", 10_000));
    }

    #[test]
    fn off_cuts_a_hold_short_and_the_next_trigger_switches_on_again() {
        let mut planner = OutputPlanner::new(&[rule("pir", "light", 60_000)]);
        planner.sensor_changed("pir", true, 0);
        planner.command("light", OutputAction::Off, None, 50);
        assert!(
            !planner.wants_on("light", 60),
            "off although still triggered"
        );
        planner.sensor_changed("pir", false, 100);
        assert!(!planner.wants_on("light", 200), "no hold after the off");
        planner.sensor_changed("pir", true, 300);
        assert!(planner.wants_on("light", 300));
    }

    #[test]
    fn a_timed_off_keeps_triggers_out_then_the_rules_decide() {
        let mut planner = OutputPlanner::new(&[rule("pir", "light", 0)]);
        planner.command("light", OutputAction::Off, Some(1_000), 0);
        planner.sensor_changed("pir", true, 100);
        assert!(!planner.wants_on("light", 500));
        assert_eq!(planner.manual_until_ms("light", 500), Some(1_000));
        assert!(
            planner.wants_on("light", 1_000),
            "still triggered when the off ends"
        );
    }

    #[derive(Clone, Debug)]
    enum Step {
        Sensor(bool),
        Command(OutputAction, Option<u64>),
    }

    /// The reference: the output's state at `t` read off the history of events (in order,
    /// each with its time), as the module doc's table says it.
    fn model(history: &[(u64, Step)], for_ms: u64, t: u64) -> bool {
        let past: Vec<(usize, u64, &Step)> = history
            .iter()
            .enumerate()
            .filter(|(_, (at, _))| *at <= t)
            .map(|(n, (at, step))| (n, *at, step))
            .collect();
        // The newest command still in force decides.
        if let Some((_, at, Step::Command(action, duration))) = past
            .iter()
            .rev()
            .find(|(_, _, step)| matches!(step, Step::Command(..)))
        {
            match (action, duration) {
                (OutputAction::On, None) => return true,
                (OutputAction::On, Some(d)) if t < at + d => return true,
                (OutputAction::Off, Some(d)) if t < at + d => return false,
                _ => {}
            }
        }
        // Otherwise the rule: trigger episodes that began after the last plain `off`.
        let last_off = past
            .iter()
            .rev()
            .find(|(_, _, step)| matches!(step, Step::Command(OutputAction::Off, None)))
            .map(|(n, ..)| *n);
        let mut episode_start: Option<usize> = None;
        let mut wants = false;
        let mut triggered = false;
        for (n, at, step) in &past {
            if let Step::Sensor(level) = step {
                if *level && !triggered {
                    episode_start = Some(*n);
                }
                if !*level && triggered {
                    let counts = last_off.is_none_or(|off| episode_start > Some(off));
                    wants = counts && t < at + for_ms;
                }
                if *level {
                    wants = false;
                }
                triggered = *level;
            }
        }
        if triggered {
            return last_off.is_none_or(|off| episode_start > Some(off));
        }
        wants
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => any::<bool>().prop_map(Step::Sensor),
            1 => (prop_oneof![Just(OutputAction::On), Just(OutputAction::Off)],
                  proptest::option::of(1u64..400))
                .prop_map(|(action, d)| Step::Command(action, d)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn the_planner_matches_the_reference(
            steps in proptest::collection::vec((1u64..150, step()), 0..24),
            for_ms in 0u64..300,
        ) {
            let mut history = Vec::new();
            let mut at = 0;
            for (gap, step) in steps {
                at += gap;
                history.push((at, step));
            }
            let mut planner = OutputPlanner::new(&[rule("pir", "light", for_ms)]);
            let mut next = 0;
            let end = at + 500;
            for t in 0..=end {
                while let Some((when, step)) = history.get(next).filter(|(when, _)| *when == t) {
                    match step {
                        Step::Sensor(level) => planner.sensor_changed("pir", *level, *when),
                        Step::Command(action, d) => planner.command("light", *action, *d, *when),
                    }
                    next += 1;
                }
                prop_assert_eq!(planner.wants_on("light", t), model(&history, for_ms, t), "t = {}, {:?}", t, history);
                planner.expire(t);
            }
        }
    }
}
