//! MQTT for fleets (`[mqtt] url`): the box's state on a broker that many boxes share, Home
//! Assistant discovery, and output commands from upstream.
//!
//! Owns one broker connection (rumqttc) and a mirror of the bus's values. Receives the state bus,
//! the outputs' [`OutputControl`] (for commands) and a shutdown future; emits, under
//! `edgenvr/<box>/`:
//!
//! | topic | retained | payload |
//! | --- | --- | --- |
//! | `status` | yes | `online` (birth), `offline` (last will, or a clean shutdown) |
//! | `catalog` | yes | frames: hello (naming the catalog), catalog pack parts (sequence from 0) |
//! | `snapshot` | yes | frames: hello, packed snapshot parts (sequence from 0); republished, latest value wins, at most every [`MqttConfig::snapshot_interval`] while values change |
//! | `state` | no | frames: changes batches and heartbeats, one sequence for the connection's life |
//! | `ha/<sensor>` | yes | with `home_assistant`: the plain state Home Assistant reads (see [`super::home_assistant`]) |
//! | `output/<name>/set` | — | subscribed with `commands`: `ON`/`OFF` (or JSON with `for`) switches the output |
//!
//! plus, with `home_assistant`, one retained discovery config per entity under
//! [`MqttConfig::discovery_prefix`]. Payloads of the first four are the same COBS+CRC frames as
//! the TCP state port, concatenated. A subscriber reads the retained catalog and snapshot, then
//! follows `state`; a sequence gap on `state` means messages were lost, and the next retained
//! snapshot (at most one interval later) repairs it. Changes are paced as on the TCP port
//! ([`super::pacing`]). The publisher never blocks the bus: publishes are queued without
//! waiting, and when the queue to the broker is full (broker down) the state is marked stale
//! and republished whole after the reconnection. Reconnects with backoff forever; only a bad
//! URL is an error. A retained message on a command topic is ignored (it would switch the
//! output again at every reconnection).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use super::frames::{CatalogPacks, SessionEncoder};
use super::home_assistant as ha;
use super::pacing::Pacer;
use crate::gpio::{OutputAction, OutputCommand, OutputControl};
use crate::state::{unix_now_ms, BusEvent, SensorChange, SensorInfo, StateBus};

/// How the box talks to the broker.
#[derive(Clone, Debug)]
pub struct MqttConfig {
    /// `mqtt://host[:port]` (or `tcp://`).
    pub url: String,
    /// `[box] name`: the topic prefix is `edgenvr/<box_name>/`.
    pub box_name: String,
    /// Broker login, if any.
    pub username: Option<String>,
    /// Broker password (read from `[mqtt] password_file` by the caller).
    pub password: Option<String>,
    /// Least time between two republications of the retained snapshot. 1 s: a late subscriber
    /// sees state at most a second old, and a busy box sends its snapshot once a second, not
    /// once per change. A large snapshot waits longer: see [`SNAPSHOT_BYTES_PER_S`].
    pub snapshot_interval: Duration,
    /// Least time between two changes messages; a change on a quiet link goes at once. 50 ms,
    /// as on the TCP port.
    pub min_frame_gap: Duration,
    /// A heartbeat goes to `state` after this long without a message. 30 s: the retained
    /// status and last will already tell liveness; this lets a subscriber see a silent link.
    pub heartbeat_interval: Duration,
    /// Publish Home Assistant discovery configs and plain state topics.
    pub home_assistant: bool,
    /// Where Home Assistant looks for discovery configs ("homeassistant").
    pub discovery_prefix: String,
    /// Take output commands on `edgenvr/<box>/output/<name>/set`.
    pub commands: bool,
}

impl MqttConfig {
    /// The defaults above for `url` and `box_name`, without login, discovery or commands.
    pub fn new(url: impl Into<String>, box_name: impl Into<String>) -> Self {
        MqttConfig {
            url: url.into(),
            box_name: box_name.into(),
            username: None,
            password: None,
            snapshot_interval: Duration::from_secs(1),
            min_frame_gap: Duration::from_millis(50),
            heartbeat_interval: Duration::from_secs(30),
            home_assistant: false,
            discovery_prefix: "homeassistant".into(),
            commands: false,
        }
    }
}

/// Why the MQTT publisher cannot start.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    /// The URL does not parse or is not `mqtt://` / `tcp://`.
    #[error("bad MQTT URL {url:?}: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
}

/// `edgenvr/<box>/<leaf>`.
pub fn topic(box_name: &str, leaf: &str) -> String {
    format!("edgenvr/{box_name}/{leaf}")
}

/// Largest MQTT packet either way. A 60,000-sensor catalog pack is a few KiB, but a catalog of
/// names without a pattern packs less well; 16 MiB leaves room and still bounds what a broken
/// broker can make the box buffer.
const MAX_PACKET_BYTES: usize = 16 * 1024 * 1024;

/// Requests queued towards the broker before publishes are refused (and state marked stale).
/// 4096: a box with Home Assistant discovery queues one discovery config per entity at once,
/// and a busy site's changes fill 256 messages in about 10 s.
const REQUEST_QUEUE: usize = 4096;

/// First wait after a failed connection; doubles up to [`MAX_BACKOFF`].
const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait between connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What republishing the retained snapshot may cost on average: 1,000 B/s, 3 % of a 256 kbit/s
/// uplink (a bridge to an office broker forwards every republication). A small box's snapshot
/// (~100 B) goes out at most every [`MqttConfig::snapshot_interval`]; a 60,000-sensor site's
/// (~16 KB) at most every 16 s. Late subscribers see the snapshot and the changes after it.
pub const SNAPSHOT_BYTES_PER_S: u64 = 1_000;

/// How soon queuing discovery configs resumes after the queue was full: the event loop sends
/// hundreds of small messages in that time.
const DISCOVERY_RETRY: Duration = Duration::from_millis(100);

/// Commands handled at once; more wait in rumqttc's queue (a person or an automation sends a
/// few a minute).
const COMMAND_QUEUE: usize = 16;

/// What the connection task tells the publisher.
enum FromBroker {
    /// A (re)connection: publish everything retained again.
    Connected,
    /// A message on a subscribed topic.
    Message {
        topic: String,
        payload: bytes::Bytes,
        retained: bool,
    },
}

/// Publishes `bus` to the broker until `shutdown` completes; then marks the box offline and
/// disconnects. Output commands go to `outputs` when [`MqttConfig::commands`] is set. Returns
/// an error only for a bad URL.
pub async fn run(
    bus: StateBus,
    config: MqttConfig,
    outputs: Option<OutputControl>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), MqttError> {
    let (host, port) =
        crate::config::broker_address(&config.url).map_err(|reason| MqttError::BadUrl {
            url: config.url.clone(),
            reason,
        })?;
    let mut options = MqttOptions::new(format!("edgenvr-{}", config.box_name), host, port);
    // 30 s: the broker declares the box dead (last will) within 45 s of a silent link.
    options.set_keep_alive(Duration::from_secs(30));
    options.set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
    options.set_last_will(LastWill::new(
        topic(&config.box_name, "status"),
        "offline",
        QoS::AtLeastOnce,
        true,
    ));
    if let Some(username) = &config.username {
        options.set_credentials(username, config.password.clone().unwrap_or_default());
    }
    let (client, mut eventloop) = AsyncClient::new(options, REQUEST_QUEUE);
    let outputs = outputs.filter(|_| config.commands);
    let command_filter = outputs
        .as_ref()
        .map(|_| topic(&config.box_name, "output/+/set"));

    // The event loop task drives the connection; it tells the publisher about each (re)connect
    // and hands over messages on subscribed topics.
    let (from_broker, mut broker) = mpsc::channel(COMMAND_QUEUE);
    let (stop_loop, mut loop_stopped) = tokio::sync::watch::channel(());
    let url = config.url.clone();
    let subscriber = client.clone();
    let connection = tokio::spawn(async move {
        let mut backoff = INITIAL_BACKOFF;
        loop {
            tokio::select! {
                _ = loop_stopped.changed() => return,
                event = eventloop.poll() => match event {
                    Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        tracing::info!(broker = %url, "mqtt connected");
                        backoff = INITIAL_BACKOFF;
                        // Subscribed on every connection: a clean session forgets subscriptions.
                        if let Some(filter) = &command_filter {
                            let _ = subscriber.try_subscribe(filter.clone(), QoS::AtLeastOnce);
                        }
                        if from_broker.send(FromBroker::Connected).await.is_err() {
                            return;
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(message))) => {
                        let message = FromBroker::Message {
                            topic: message.topic.clone(),
                            payload: message.payload.clone(),
                            retained: message.retain,
                        };
                        if from_broker.send(message).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(broker = %url, %error, retry_in = ?backoff, "mqtt connection lost");
                        tokio::select! {
                            _ = loop_stopped.changed() => return,
                            () = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                },
            }
        }
    });

    let mut publisher = Publisher::new(client.clone(), &config, &bus);
    tokio::pin!(shutdown);
    loop {
        let now = Instant::now();
        let changes_at = publisher.pacer.due(!publisher.pending.is_empty(), now);
        let heartbeat_at = publisher.last_state_message + publisher.heartbeat_interval;
        let snapshot_at = publisher.snapshot_due_at();
        // Discovery configs left over when the queue was full: try again once it drained some.
        let discovery_at = publisher.discovery_next.map(|_| now + DISCOVERY_RETRY);
        let wake = [changes_at, Some(heartbeat_at), snapshot_at, discovery_at]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(heartbeat_at);
        tokio::select! {
            () = &mut shutdown => break,
            message = broker.recv() => match message {
                None => break,
                Some(FromBroker::Connected) => publisher.republish_all(),
                Some(FromBroker::Message { topic, payload, retained }) => {
                    if let Some(outputs) = &outputs {
                        handle_command(&config.box_name, outputs, &topic, &payload, retained).await;
                    }
                }
            },
            event = publisher.events.recv() => publisher.take(event, &bus),
            () = tokio::time::sleep_until(wake) => {}
        }
        publisher.on_tick();
    }
    // A clean goodbye: the retained status says offline at once, without waiting for the will.
    let _ = client.try_publish(
        topic(&config.box_name, "status"),
        QoS::AtLeastOnce,
        true,
        "offline",
    );
    let _ = client.try_disconnect();
    // The event loop ends once it has sent the disconnect; a broker that is down gets 2 s.
    let mut connection = connection;
    if tokio::time::timeout(Duration::from_secs(2), &mut connection)
        .await
        .is_err()
    {
        let _ = stop_loop.send(());
        let _ = connection.await;
    }
    Ok(())
}

/// Applies a command message; logs what happened (the sender gets its answer from the
/// output's state topic).
async fn handle_command(
    box_name: &str,
    outputs: &OutputControl,
    topic: &str,
    payload: &[u8],
    retained: bool,
) {
    let Some(output) = ha::output_of_command_topic(box_name, topic) else {
        return;
    };
    if retained {
        tracing::warn!(%output, "ignoring a retained output command (publish commands without retain)");
        return;
    }
    let parsed = ha::parse_command(payload).and_then(|(on, duration)| {
        let duration = duration
            .map(|text| {
                humantime::parse_duration(&text)
                    .map_err(|e| format!("for: {text:?} is not a duration: {e}"))
            })
            .transpose()?;
        Ok(OutputCommand {
            output: output.to_owned(),
            action: if on {
                OutputAction::On
            } else {
                OutputAction::Off
            },
            duration: duration.filter(|d| !d.is_zero()),
        })
    });
    match parsed {
        Ok(command) => {
            if let Err(error) = outputs.command(command).await {
                tracing::warn!(%output, %error, "mqtt output command refused");
            }
        }
        Err(error) => tracing::warn!(%output, %error, "mqtt output command not understood"),
    }
}

struct Publisher {
    client: AsyncClient,
    box_name: String,
    snapshot_interval: Duration,
    heartbeat_interval: Duration,
    home_assistant: bool,
    discovery_prefix: String,
    commands: bool,
    events: broadcast::Receiver<BusEvent>,
    catalog: Vec<Arc<SensorInfo>>,
    packs: CatalogPacks,
    values: BTreeMap<u32, SensorChange>,
    pending: Vec<SensorChange>,
    pacer: Pacer,
    state_session: SessionEncoder,
    catalog_stale: bool,
    snapshot_stale: bool,
    /// The next catalog index whose discovery config is still to queue (`None`: all queued).
    /// A site's thousands of configs go out as the queue drains, from where they stopped.
    discovery_next: Option<usize>,
    /// Plain state topics by sensor id (Home Assistant).
    ha_topics: HashMap<u32, String>,
    last_snapshot: Option<Instant>,
    /// Least time before the next republication, from the last snapshot's size.
    snapshot_gap: Duration,
    last_state_message: Instant,
}

impl Publisher {
    fn new(client: AsyncClient, config: &MqttConfig, bus: &StateBus) -> Self {
        let subscription = bus.subscribe();
        let mut publisher = Publisher {
            client,
            box_name: config.box_name.clone(),
            snapshot_interval: config.snapshot_interval,
            heartbeat_interval: config.heartbeat_interval,
            home_assistant: config.home_assistant,
            discovery_prefix: config.discovery_prefix.clone(),
            commands: config.commands,
            events: subscription.events,
            catalog: Vec::new(),
            packs: CatalogPacks::default(),
            values: BTreeMap::new(),
            pending: Vec::new(),
            pacer: Pacer::new(config.min_frame_gap),
            state_session: SessionEncoder::new(),
            catalog_stale: true,
            snapshot_stale: true,
            discovery_next: config.home_assistant.then_some(0),
            ha_topics: HashMap::new(),
            last_snapshot: None,
            snapshot_gap: config.snapshot_interval,
            last_state_message: Instant::now(),
        };
        publisher.reset(subscription.catalog, subscription.values);
        publisher
    }

    fn reset(&mut self, catalog: Vec<Arc<SensorInfo>>, values: Vec<SensorChange>) {
        self.ha_topics = catalog
            .iter()
            .map(|info| (info.id.0, ha::state_topic(&self.box_name, &info.name)))
            .collect();
        self.catalog = catalog;
        self.values = values.into_iter().map(|c| (c.id.0, c)).collect();
    }

    fn take(&mut self, event: Result<BusEvent, broadcast::error::RecvError>, bus: &StateBus) {
        match event {
            Ok(BusEvent::Changed(change)) => {
                if self.home_assistant {
                    self.publish_ha_state(&change);
                }
                self.values.insert(change.id.0, change.clone());
                self.pending.push(change);
                self.snapshot_stale = true;
            }
            Ok(BusEvent::Registered(info)) => {
                self.ha_topics
                    .insert(info.id.0, ha::state_topic(&self.box_name, &info.name));
                if self.home_assistant
                    && self.discovery_next.is_none()
                    && !self.publish_discovery(&info)
                {
                    self.discovery_next = Some(self.catalog.len());
                }
                self.catalog.push(info);
                self.catalog_stale = true;
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "mqtt publisher fell behind the bus, republishing state"
                );
                let subscription = bus.subscribe();
                self.events = subscription.events;
                self.reset(subscription.catalog, subscription.values);
                // Subscribers of `state` must learn that changes are missing: skip a sequence
                // number, so they see a gap and take the snapshot that follows.
                self.pending.clear();
                self.state_session.skip_frame();
                self.republish_all();
            }
            // The bus outlives its publishers; if it is gone there is nothing more to send.
            Err(broadcast::error::RecvError::Closed) => {}
        }
    }

    fn republish_all(&mut self) {
        self.catalog_stale = true;
        self.snapshot_stale = true;
        self.discovery_next = self.home_assistant.then_some(0);
        self.last_snapshot = None;
        self.publish_status();
        if self.home_assistant {
            // Retained states too: a broker that restarted without persistence lost them.
            let values: Vec<SensorChange> = self.values.values().cloned().collect();
            for change in &values {
                self.publish_ha_state(change);
            }
        }
    }

    fn snapshot_due_at(&self) -> Option<Instant> {
        if !self.snapshot_stale {
            return None;
        }
        Some(
            self.last_snapshot
                .map_or_else(Instant::now, |at| at + self.snapshot_gap),
        )
    }

    fn on_tick(&mut self) {
        if let Some(next) = self.discovery_next {
            let catalog = self.catalog.clone();
            self.discovery_next = None;
            for (index, info) in catalog.iter().enumerate().skip(next) {
                if !self.publish_discovery(info) {
                    self.discovery_next = Some(index);
                    break;
                }
            }
        }
        if self.catalog_stale {
            self.publish_catalog();
        }
        let now = Instant::now();
        if self.pacer.is_due(!self.pending.is_empty(), now) {
            let mut payload = Vec::new();
            self.state_session.changes(&self.pending, &mut payload);
            self.pending.clear();
            self.pacer.sent(now);
            self.publish_state(payload);
        } else if self.pending.is_empty()
            && self.last_state_message.elapsed() >= self.heartbeat_interval
        {
            let mut payload = Vec::new();
            self.state_session.heartbeat(unix_now_ms(), &mut payload);
            self.publish_state(payload);
        }
        if self
            .snapshot_due_at()
            .is_some_and(|at| at <= Instant::now())
        {
            self.publish_snapshot();
        }
    }

    fn publish_status(&mut self) {
        self.publish(&topic(&self.box_name, "status"), true, b"online".to_vec());
    }

    fn publish_catalog(&mut self) {
        let pack = self.packs.get(&self.catalog);
        let mut session = SessionEncoder::new();
        let mut payload = Vec::new();
        session.hello(
            &self.box_name,
            (pack.id.entries > 0).then_some(pack.id),
            &mut payload,
        );
        if pack.id.entries > 0 {
            let mut sent = 0;
            while !session.catalog_pack(&pack.pack, &mut sent, usize::MAX, &mut payload) {}
        }
        if self.publish(&topic(&self.box_name, "catalog"), true, payload) {
            self.catalog_stale = false;
        }
    }

    fn publish_snapshot(&mut self) {
        let values: Vec<SensorChange> = self.values.values().cloned().collect();
        let pack = self.packs.get(&self.catalog);
        let mut session = SessionEncoder::new();
        let mut payload = Vec::new();
        session.hello(
            &self.box_name,
            (pack.id.entries > 0).then_some(pack.id),
            &mut payload,
        );
        session.snapshot(unix_now_ms(), &values, &mut payload);
        let by_size = Duration::from_millis(payload.len() as u64 * 1_000 / SNAPSHOT_BYTES_PER_S);
        if self.publish(&topic(&self.box_name, "snapshot"), true, payload) {
            self.snapshot_stale = false;
            self.last_snapshot = Some(Instant::now());
            self.snapshot_gap = self.snapshot_interval.max(by_size);
        }
    }

    fn publish_state(&mut self, payload: Vec<u8>) {
        self.last_state_message = Instant::now();
        if !self.publish(&topic(&self.box_name, "state"), false, payload) {
            // The change stream lost a message: subscribers see the gap, the snapshot repairs it.
            self.snapshot_stale = true;
        }
    }

    /// Queues `info`'s discovery config; `false` when the queue is full.
    fn publish_discovery(&mut self, info: &SensorInfo) -> bool {
        let Some(discovery) =
            ha::discovery(&self.discovery_prefix, &self.box_name, info, self.commands)
        else {
            return true;
        };
        let payload = discovery.payload.to_string().into_bytes();
        self.publish(&discovery.topic, true, payload)
    }

    fn publish_ha_state(&mut self, change: &SensorChange) {
        let (Some(info), Some(state_topic)) = (
            self.catalog.get(change.id.0 as usize).cloned(),
            self.ha_topics.get(&change.id.0).cloned(),
        ) else {
            return;
        };
        if let Some(payload) = ha::state_payload(&info, &change.value) {
            // QoS 0: a lost state is replaced by the next one, and every state is republished
            // at a reconnection; no acknowledgement bytes per change.
            let _ = self
                .client
                .try_publish(state_topic, QoS::AtMostOnce, true, payload);
        }
    }

    /// Queues a publish without waiting; `false` if the queue to the broker is full.
    fn publish(&mut self, topic: &str, retain: bool, payload: Vec<u8>) -> bool {
        match self
            .client
            .try_publish(topic, QoS::AtLeastOnce, retain, payload)
        {
            Ok(()) => true,
            Err(error) => {
                tracing::debug!(%error, topic, "mqtt publish queue full");
                // Everything retained goes out again once the broker takes messages.
                self.catalog_stale |= topic.ends_with("/catalog");
                false
            }
        }
    }
}
