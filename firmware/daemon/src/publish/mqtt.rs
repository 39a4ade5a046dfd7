//! MQTT for fleets (`[mqtt] url`): the box's state on a broker that many boxes share.
//!
//! Owns one broker connection (rumqttc) and a mirror of the bus's values. Receives the state bus
//! and a shutdown future; emits, under `edgenvr/<box>/`:
//!
//! | topic | retained | payload |
//! | --- | --- | --- |
//! | `status` | yes | `online` (birth), `offline` (last will, or a clean shutdown) |
//! | `catalog` | yes | frames: hello, catalog parts (sequence from 0) |
//! | `snapshot` | yes | frames: hello, snapshot parts (sequence from 0); republished, latest value wins, at most every [`MqttConfig::snapshot_interval`] while values change |
//! | `state` | no | frames: changes batches and heartbeats, one sequence for the connection's life |
//!
//! Payloads are the same COBS+CRC frames as the TCP state port, concatenated. A subscriber reads
//! the retained catalog and snapshot, then follows `state`; a sequence gap on `state` means
//! messages were lost, and the next retained snapshot (at most one interval later) repairs it.
//! The publisher never blocks the bus: publishes are queued without waiting, and when the queue
//! to the broker is full (broker down) the state is marked stale and republished whole after the
//! reconnection. Reconnects with backoff forever; only a bad URL is an error.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use super::frames::SessionEncoder;
use crate::state::{unix_now_ms, BusEvent, SensorChange, SensorInfo, StateBus};

/// The broker port when the URL has none.
pub const DEFAULT_MQTT_PORT: u16 = 1883;

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
    /// once per change.
    pub snapshot_interval: Duration,
    /// Changes within this window share a message. 50 ms, as on the TCP port.
    pub batch_window: Duration,
    /// A heartbeat goes to `state` after this long without a message. 30 s: the retained
    /// status and last will already tell liveness; this lets a subscriber see a silent link.
    pub heartbeat_interval: Duration,
}

impl MqttConfig {
    /// The defaults above for `url` and `box_name`, without login.
    pub fn new(url: impl Into<String>, box_name: impl Into<String>) -> Self {
        MqttConfig {
            url: url.into(),
            box_name: box_name.into(),
            username: None,
            password: None,
            snapshot_interval: Duration::from_secs(1),
            batch_window: Duration::from_millis(50),
            heartbeat_interval: Duration::from_secs(30),
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

/// The broker's host and port from an `mqtt://host[:port]` URL.
pub fn broker_address(url: &str) -> Result<(String, u16), MqttError> {
    let bad = |reason: &str| MqttError::BadUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let parsed = url::Url::parse(url).map_err(|error| bad(&error.to_string()))?;
    if !matches!(parsed.scheme(), "mqtt" | "tcp") {
        return Err(bad(
            "the scheme must be mqtt:// or tcp:// (TLS is not supported)",
        ));
    }
    let host = parsed.host_str().ok_or_else(|| bad("no host"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok((host.to_string(), parsed.port().unwrap_or(DEFAULT_MQTT_PORT)))
}

/// `edgenvr/<box>/<leaf>`.
pub fn topic(box_name: &str, leaf: &str) -> String {
    format!("edgenvr/{box_name}/{leaf}")
}

/// Largest MQTT packet either way. A 60,000-sensor catalog is ~1.5 MiB; 16 MiB leaves room and
/// still bounds what a broken broker can make the box buffer.
const MAX_PACKET_BYTES: usize = 16 * 1024 * 1024;

/// Requests queued towards the broker before publishes are refused (and state marked stale).
/// 256 messages of changes is over 10 s of a busy box at one message per 50 ms window.
const REQUEST_QUEUE: usize = 256;

/// First wait after a failed connection; doubles up to [`MAX_BACKOFF`].
const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait between connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Publishes `bus` to the broker until `shutdown` completes; then marks the box offline and
/// disconnects. Returns an error only for a bad URL.
pub async fn run(
    bus: StateBus,
    config: MqttConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), MqttError> {
    let (host, port) = broker_address(&config.url)?;
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

    // The event loop task drives the connection; it tells the publisher about each (re)connect.
    let (connected_tx, mut connected) = watch::channel(0u64);
    let (stop_loop, mut loop_stopped) = watch::channel(());
    let url = config.url.clone();
    let connection = tokio::spawn(async move {
        let mut backoff = INITIAL_BACKOFF;
        let mut connections = 0u64;
        loop {
            tokio::select! {
                _ = loop_stopped.changed() => return,
                event = eventloop.poll() => match event {
                    Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        tracing::info!(broker = %url, "mqtt connected");
                        backoff = INITIAL_BACKOFF;
                        connections += 1;
                        let _ = connected_tx.send(connections);
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
    let mut tick = tokio::time::interval(config.batch_window);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            changed = connected.changed() => {
                if changed.is_err() {
                    break;
                }
                publisher.republish_all();
            }
            event = publisher.events.recv() => publisher.take(event, &bus),
            _ = tick.tick() => publisher.on_tick(),
        }
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

struct Publisher {
    client: AsyncClient,
    box_name: String,
    snapshot_interval: Duration,
    heartbeat_interval: Duration,
    events: broadcast::Receiver<BusEvent>,
    catalog: Vec<Arc<SensorInfo>>,
    values: BTreeMap<u32, SensorChange>,
    pending: Vec<SensorChange>,
    state_session: SessionEncoder,
    catalog_stale: bool,
    snapshot_stale: bool,
    last_snapshot: Option<Instant>,
    last_state_message: Instant,
}

impl Publisher {
    fn new(client: AsyncClient, config: &MqttConfig, bus: &StateBus) -> Self {
        let subscription = bus.subscribe();
        Publisher {
            client,
            box_name: config.box_name.clone(),
            snapshot_interval: config.snapshot_interval,
            heartbeat_interval: config.heartbeat_interval,
            events: subscription.events,
            catalog: subscription.catalog,
            values: subscription
                .values
                .into_iter()
                .map(|change| (change.id.0, change))
                .collect(),
            pending: Vec::new(),
            state_session: SessionEncoder::new(),
            catalog_stale: true,
            snapshot_stale: true,
            last_snapshot: None,
            last_state_message: Instant::now(),
        }
    }

    fn take(&mut self, event: Result<BusEvent, broadcast::error::RecvError>, bus: &StateBus) {
        match event {
            Ok(BusEvent::Changed(change)) => {
                self.values.insert(change.id.0, change.clone());
                self.pending.push(change);
                self.snapshot_stale = true;
            }
            Ok(BusEvent::Registered(info)) => {
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
                self.catalog = subscription.catalog;
                self.values = subscription
                    .values
                    .into_iter()
                    .map(|change| (change.id.0, change))
                    .collect();
                // Subscribers of `state` must learn that changes are missing: skip a sequence
                // number, so they see a gap and take the snapshot that follows.
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
        self.last_snapshot = None;
        self.publish_status();
        self.on_tick();
    }

    fn on_tick(&mut self) {
        if self.catalog_stale {
            self.publish_catalog();
        }
        if !self.pending.is_empty() {
            let mut payload = Vec::new();
            self.state_session.changes(&self.pending, &mut payload);
            self.pending.clear();
            self.publish_state(payload);
        } else if self.last_state_message.elapsed() >= self.heartbeat_interval {
            let mut payload = Vec::new();
            self.state_session.heartbeat(unix_now_ms(), &mut payload);
            self.publish_state(payload);
        }
        let snapshot_due = self
            .last_snapshot
            .is_none_or(|at| at.elapsed() >= self.snapshot_interval);
        if self.snapshot_stale && snapshot_due {
            self.publish_snapshot();
        }
    }

    fn publish_status(&mut self) {
        self.publish("status", true, b"online".to_vec());
    }

    fn publish_catalog(&mut self) {
        let mut session = SessionEncoder::new();
        let mut payload = Vec::new();
        session.hello(&self.box_name, &mut payload);
        session.catalog(&self.catalog, &mut payload);
        if self.publish("catalog", true, payload) {
            self.catalog_stale = false;
        }
    }

    fn publish_snapshot(&mut self) {
        let values: Vec<SensorChange> = self.values.values().cloned().collect();
        let mut session = SessionEncoder::new();
        let mut payload = Vec::new();
        session.hello(&self.box_name, &mut payload);
        session.snapshot(unix_now_ms(), &values, &mut payload);
        if self.publish("snapshot", true, payload) {
            self.snapshot_stale = false;
            self.last_snapshot = Some(Instant::now());
        }
    }

    fn publish_state(&mut self, payload: Vec<u8>) {
        self.last_state_message = Instant::now();
        if !self.publish("state", false, payload) {
            // The change stream lost a message: subscribers see the gap, the snapshot repairs it.
            self.snapshot_stale = true;
        }
    }

    /// Queues a publish without waiting; `false` if the queue to the broker is full.
    fn publish(&mut self, leaf: &str, retain: bool, payload: Vec<u8>) -> bool {
        let topic = topic(&self.box_name, leaf);
        match self
            .client
            .try_publish(topic, QoS::AtLeastOnce, retain, payload)
        {
            Ok(()) => true,
            Err(error) => {
                tracing::debug!(%error, leaf, "mqtt publish queue full");
                // Everything retained goes out again once the broker takes messages.
                self.catalog_stale |= leaf == "catalog";
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        assert_eq!(
            broker_address("mqtt://broker").unwrap(),
            ("broker".to_string(), 1883)
        );
        assert_eq!(
            broker_address("tcp://10.0.0.5:1884").unwrap(),
            ("10.0.0.5".to_string(), 1884)
        );
        assert_eq!(
            broker_address("mqtt://[::1]:1885").unwrap(),
            ("::1".to_string(), 1885)
        );
        assert!(broker_address("mqtts://broker").is_err());
        assert!(broker_address("broker:1883").is_err());
    }
}
