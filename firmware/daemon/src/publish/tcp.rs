//! The TCP state port (`[state] listen`): every client gets hello, catalog and snapshot, then
//! changes as they happen and heartbeats when idle.
//!
//! Owns the listener and one task per client. Receives the state bus ([`StateBus`]) and a
//! shutdown future; emits frames from [`super::frames`] to each socket. The port only ever
//! sends: bytes a client sends are read and thrown away unparsed, so no input can do more than
//! close its own connection. Bounds, so no client can slow the box or grow its memory:
//! - at most [`TcpStateConfig::max_clients`] connections; further ones are closed at once;
//! - a client's queue is the bus's bounded event ring; a client that falls behind it gets a
//!   fresh catalog and snapshot (latest value wins) instead of the backlog;
//! - a write that makes no progress for [`TcpStateConfig::write_timeout`] drops the client.
//!
//! Changes that arrive within [`TcpStateConfig::batch_window`] go out in one frame (two edges
//! of a binary sensor stay two changes). Each session's sequence numbers start at 0.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::{broadcast, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{sleep_until, Instant};

use super::frames::SessionEncoder;
use crate::state::{unix_now_ms, BusEvent, SensorChange, StateBus, Subscription};

/// The state port's default TCP port.
pub const DEFAULT_STATE_PORT: u16 = 7420;

/// How the state port treats its clients.
#[derive(Clone, Debug)]
pub struct TcpStateConfig {
    /// Sent in every session's hello (`[box] name`).
    pub box_name: String,
    /// Most simultaneous clients. 16: a site has a handful of upstream consumers (a
    /// concentrator, an operator's laptop or two); each client costs a task and a socket buffer.
    pub max_clients: usize,
    /// Changes within this window share a frame. 50 ms: well under the 1 s latency target, and
    /// at a 60,000-sensor site's ~200 changes/s it gathers ~10 changes per frame.
    pub batch_window: Duration,
    /// A heartbeat frame goes out after this long without any frame. 5 s: a receiver notices a
    /// dead link within seconds, for ~11 bytes per 5 s.
    pub heartbeat_interval: Duration,
    /// A client whose socket accepts nothing for this long is dropped. 10 s: longer than any
    /// healthy link's stall, short enough that a stuck client soon frees its slot.
    pub write_timeout: Duration,
}

impl TcpStateConfig {
    /// The defaults above, for a box called `box_name`.
    pub fn new(box_name: impl Into<String>) -> Self {
        TcpStateConfig {
            box_name: box_name.into(),
            max_clients: 16,
            batch_window: Duration::from_millis(50),
            heartbeat_interval: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// A bound state port, not yet serving.
pub struct StatePort {
    listener: TcpListener,
}

impl StatePort {
    /// Binds `addr` and logs `listening state <addr:port>` (the bound port, so port 0 works).
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<StatePort> {
        let listener = TcpListener::bind(addr).await?;
        tracing::info!("listening state {}", listener.local_addr()?);
        Ok(StatePort { listener })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves clients until `shutdown` completes, then closes every connection and returns once
    /// all client tasks have ended.
    pub async fn serve(
        self,
        bus: StateBus,
        config: TcpStateConfig,
        shutdown: impl Future<Output = ()>,
    ) {
        let (stop_clients, stop) = watch::channel(());
        let slots = std::sync::Arc::new(Semaphore::new(config.max_clients));
        let mut clients = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => match slots.clone().try_acquire_owned() {
                        Ok(slot) => {
                            let client = Client {
                                bus: bus.clone(),
                                config: config.clone(),
                                peer,
                                _slot: slot,
                            };
                            clients.spawn(client.run(stream, stop.clone()));
                        }
                        Err(_) => {
                            tracing::warn!(%peer, max_clients = config.max_clients, "state port full, connection refused");
                        }
                    },
                    Err(error) => {
                        // Out of file descriptors and the like: wait instead of spinning.
                        tracing::warn!(%error, "state port accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = clients.join_next(), if !clients.is_empty() => {}
            }
        }
        drop(stop_clients);
        while clients.join_next().await.is_some() {}
    }
}

/// Binds `addr` and serves the state port until `shutdown` completes (see [`StatePort`]).
pub async fn serve(
    addr: impl ToSocketAddrs,
    bus: StateBus,
    config: TcpStateConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    StatePort::bind(addr)
        .await?
        .serve(bus, config, shutdown)
        .await;
    Ok(())
}

/// Why a client's session ended early.
#[derive(Debug, thiserror::Error)]
enum ClientError {
    #[error("write failed: {0}")]
    Write(#[from] io::Error),
    #[error("no write progress for {0:?}")]
    Stalled(Duration),
}

struct Client {
    bus: StateBus,
    config: TcpStateConfig,
    peer: SocketAddr,
    /// Held for the session's lifetime: the connection count bound.
    _slot: OwnedSemaphorePermit,
}

impl Client {
    async fn run(self, stream: TcpStream, stop: watch::Receiver<()>) {
        let peer = self.peer;
        tracing::info!(%peer, "state client connected");
        match self.session(stream, stop).await {
            Ok(()) => tracing::info!(%peer, "state client closed"),
            Err(error) => tracing::info!(%peer, %error, "state client dropped"),
        }
    }

    async fn session(
        &self,
        stream: TcpStream,
        mut stop: watch::Receiver<()>,
    ) -> Result<(), ClientError> {
        // Small replies only; Nagle would hold a lone change back for up to 40 ms.
        let _ = stream.set_nodelay(true);
        let (mut reader, mut writer) = stream.into_split();
        let mut session = SessionEncoder::new();
        let mut out = Vec::new();
        session.hello(&self.config.box_name, &mut out);
        let mut subscription = self.bus.subscribe();
        let mut catalog_sent = 0;
        self.start(&mut session, &subscription, &mut catalog_sent, &mut out);
        self.write(&mut writer, &mut out).await?;
        let mut last_write = Instant::now();

        let mut discard = [0u8; 512];
        let mut pending: Vec<SensorChange> = Vec::new();
        let mut flush_at: Option<Instant> = None;
        loop {
            let heartbeat_at = last_write + self.config.heartbeat_interval;
            tokio::select! {
                _ = stop.changed() => return Ok(()),
                read = reader.read(&mut discard) => match read {
                    // Whatever a client sends is not trusted and not parsed; EOF ends the session.
                    Ok(0) | Err(_) => return Ok(()),
                    Ok(_) => continue,
                },
                event = subscription.events.recv() => match event {
                    Ok(BusEvent::Changed(change)) => {
                        pending.push(change);
                        flush_at.get_or_insert(Instant::now() + self.config.batch_window);
                        if pending.len() < PENDING_CHANGES_LIMIT {
                            continue;
                        }
                        session.changes(&pending, &mut out);
                        pending.clear();
                        flush_at = None;
                    }
                    Ok(BusEvent::Registered(info)) => {
                        // Changes already waiting go first: they are for sensors already known.
                        session.changes(&pending, &mut out);
                        pending.clear();
                        flush_at = None;
                        catalog_sent = catalog_sent.max(info.id.0 as usize + 1);
                        session.catalog(&[info], &mut out);
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(peer = %self.peer, missed, "state client fell behind, sending a fresh snapshot");
                        pending.clear();
                        flush_at = None;
                        subscription = self.bus.subscribe();
                        self.start(&mut session, &subscription, &mut catalog_sent, &mut out);
                    }
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
                () = sleep_until(flush_at.unwrap_or(heartbeat_at)), if flush_at.is_some() => {
                    session.changes(&pending, &mut out);
                    pending.clear();
                    flush_at = None;
                }
                () = sleep_until(heartbeat_at) => session.heartbeat(unix_now_ms(), &mut out),
            }
            if !out.is_empty() {
                self.write(&mut writer, &mut out).await?;
                last_write = Instant::now();
            }
        }
    }

    /// The catalog entries not sent yet, then a snapshot of `subscription`. Sensors are only
    /// ever added, with dense ids, so after a lag only the new tail of the catalog is resent: at
    /// site scale the catalog is ~1.5 MiB, most of a minute at 256 kbit/s, while a snapshot of
    /// binary sensors is ~60 KiB.
    fn start(
        &self,
        session: &mut SessionEncoder,
        subscription: &Subscription,
        catalog_sent: &mut usize,
        out: &mut Vec<u8>,
    ) {
        let unsent = subscription
            .catalog
            .get(*catalog_sent..)
            .unwrap_or_default();
        session.catalog(unsent, out);
        *catalog_sent = subscription.catalog.len();
        session.snapshot(unix_now_ms(), &subscription.values, out);
    }

    async fn write(
        &self,
        writer: &mut OwnedWriteHalf,
        out: &mut Vec<u8>,
    ) -> Result<(), ClientError> {
        // The timeout is per write call, not for the whole buffer: a big catalog on a slow link
        // takes long but keeps making progress.
        let timeout = self.config.write_timeout;
        let mut unsent = &out[..];
        while !unsent.is_empty() {
            let written = tokio::time::timeout(timeout, writer.write(unsent))
                .await
                .map_err(|_| ClientError::Stalled(timeout))??;
            if written == 0 {
                return Err(ClientError::Write(io::ErrorKind::WriteZero.into()));
            }
            unsent = unsent.get(written..).unwrap_or_default();
        }
        out.clear();
        Ok(())
    }
}

/// Changes held for one batch before it is sent early. 4096 binary changes are ~10 KiB of
/// frames: a burst this large is sent at once rather than held for the window.
const PENDING_CHANGES_LIMIT: usize = 4096;
