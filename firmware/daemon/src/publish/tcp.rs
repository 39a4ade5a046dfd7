//! The TCP state port (`[state] listen`): every client gets hello, the catalog it lacks and a
//! snapshot, then changes as they happen and heartbeats when idle.
//!
//! Owns the listener and one task per client. Receives the state bus ([`StateBus`]) and a
//! shutdown future; emits frames from [`super::frames`] to each socket.
//!
//! A session (protocol version 2, see `firmware/proto/README.md`): the box sends its hello,
//! naming its catalog by id; a version 2 client answers at once with a hello naming the catalog
//! it keeps from an earlier session. The box then sends nothing of the catalog (the client has
//! it), only the entries added since (the client has a prefix), or the whole catalog
//! compressed; a client that says nothing within [`TcpStateConfig::client_hello_wait`] (an
//! older nvrctl, `nc`) gets the whole catalog. Then a packed snapshot and the changes, paced by
//! [`super::pacing::Pacer`]: at once on a quiet link, one frame per
//! [`TcpStateConfig::min_frame_gap`] on a busy one. The catalog is sent before the client
//! subscribes to the bus, so a catalog that takes seconds on a slow link cannot make the
//! client fall behind the bus's event ring.
//!
//! The port is read-only: apart from the client's hello (at most [`CLIENT_HELLO_BYTES`] read,
//! parsed by the wire format's bounded decoder), bytes a client sends are read and thrown away,
//! so no input can do more than close its own connection. Bounds, so no client can slow the box,
//! grow its memory or take the descriptors the recorder needs:
//! - at most [`TcpStateConfig::max_clients`] connections, and none while fewer than
//!   [`crate::limits::RESERVED_FDS`] descriptors are left under the process's limit; further
//!   ones are closed at once (logged once per [`REFUSAL_LOG_INTERVAL`] with a count);
//! - a client's queue is the bus's bounded event ring; a client that falls behind it gets a
//!   fresh snapshot (latest value wins) instead of the backlog;
//! - what a session buffers is bounded: the catalog pack is shared by all sessions and written
//!   [`PACK_PARTS_PER_WRITE`] frames at a time; held changes are capped;
//! - a write that makes no progress for [`TcpStateConfig::write_timeout`] drops the client.
//!
//! Each session's sequence numbers start at 0.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use edgenvr_proto::{Body, CatalogId, Feed, FrameDecoder, PROTOCOL_VERSION};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::{broadcast, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{sleep_until, Instant};

use super::frames::{catalog_id, CatalogPacks, SessionEncoder};
use super::pacing::Pacer;
use crate::limits::{fd_headroom, nofile_limit, RESERVED_FDS};
use crate::state::{unix_now_ms, BusEvent, SensorChange, SensorInfo, StateBus, Subscription};

/// The state port's default TCP port.
pub const DEFAULT_STATE_PORT: u16 = 7420;

/// Most bytes read from a client while waiting for its hello: a hello is ~30 bytes; whatever
/// a client sends beyond this before a valid hello is not a version 2 client.
pub const CLIENT_HELLO_BYTES: usize = 1024;

/// Catalog pack frames encoded per write: 16 KiB, half a second of a 256 kbit/s link, so a
/// session's buffer stays small however large the catalog.
pub const PACK_PARTS_PER_WRITE: usize = 16;

/// Refused connections are logged at most this often (with how many there were), so a flood
/// of connections cannot flood the log.
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// How the state port treats its clients.
#[derive(Clone, Debug)]
pub struct TcpStateConfig {
    /// Sent in every session's hello (`[box] name`).
    pub box_name: String,
    /// Most simultaneous clients. 64: a site has a handful of upstream consumers (a
    /// concentrator, an operator's laptop or two), and each client costs a task, a few KiB of
    /// buffers and a socket: 64 of them fit a Pi Zero's memory many times over.
    pub max_clients: usize,
    /// Least time between two changes frames; a change on a quiet link goes at once. 50 ms:
    /// at a 60,000-sensor site's ~200 changes/s a frame gathers ~10 changes, which keeps a
    /// binary change under 4 bytes with the frame overhead shared.
    pub min_frame_gap: Duration,
    /// A heartbeat frame goes out after this long without any frame. 5 s: a receiver notices a
    /// dead link within seconds, for ~11 bytes per 5 s.
    pub heartbeat_interval: Duration,
    /// A client whose socket accepts nothing for this long is dropped. 10 s: longer than any
    /// healthy link's stall, short enough that a stuck client soon frees its slot.
    pub write_timeout: Duration,
    /// How long the box waits for a client's hello before sending the whole catalog. 1 s: a
    /// version 2 client sends its hello as soon as it connects, so it arrives within a round
    /// trip; a client that sends none waits this once.
    pub client_hello_wait: Duration,
}

impl TcpStateConfig {
    /// The defaults above, for a box called `box_name`.
    pub fn new(box_name: impl Into<String>) -> Self {
        TcpStateConfig {
            box_name: box_name.into(),
            max_clients: 64,
            min_frame_gap: Duration::from_millis(50),
            heartbeat_interval: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            client_hello_wait: Duration::from_secs(1),
        }
    }
}

/// A bound state port, not yet serving.
pub struct StatePort {
    listener: TcpListener,
}

/// Counts refused connections and logs them at most once per [`REFUSAL_LOG_INTERVAL`].
struct Refusals {
    count: u64,
    last_log: Option<Instant>,
}

impl Refusals {
    fn refuse(&mut self, peer: Option<SocketAddr>, why: &str) {
        self.count += 1;
        let now = Instant::now();
        if self
            .last_log
            .is_some_and(|at| now.duration_since(at) < REFUSAL_LOG_INTERVAL)
        {
            return;
        }
        let peer = peer.map_or_else(|| "-".to_string(), |p| p.to_string());
        tracing::warn!(
            %peer,
            refused = self.count,
            "state port: connection refused: {why} ({} refused since the last such line)",
            self.count
        );
        self.count = 0;
        self.last_log = Some(now);
    }
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
        let slots = Arc::new(Semaphore::new(config.max_clients));
        let packs = CatalogPacks::default();
        let mut clients = JoinSet::new();
        let mut refusals = Refusals {
            count: 0,
            last_log: None,
        };
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let Ok(slot) = slots.clone().try_acquire_owned() else {
                            refusals.refuse(Some(peer), &format!("all {} client slots are taken", config.max_clients));
                            continue;
                        };
                        if let Some(left) = fd_headroom().filter(|left| *left < RESERVED_FDS) {
                            let limit = nofile_limit().map_or(0, |(soft, _)| soft);
                            refusals.refuse(Some(peer), &format!(
                                "only {left} file descriptors are left under the process's limit of {limit} (ulimit -n); \
                                 they are kept for recording"
                            ));
                            continue;
                        }
                        let client = Client {
                            bus: bus.clone(),
                            config: config.clone(),
                            packs: packs.clone(),
                            peer,
                            _slot: slot,
                        };
                        clients.spawn(client.run(stream, stop.clone()));
                    }
                    Err(error) => {
                        let why = if error.raw_os_error() == Some(libc::EMFILE) || error.raw_os_error() == Some(libc::ENFILE) {
                            let limit = nofile_limit().map_or(0, |(soft, _)| soft);
                            format!("out of file descriptors (the process's limit, ulimit -n, is {limit}): {error}")
                        } else {
                            format!("accept failed: {error}")
                        };
                        refusals.refuse(None, &why);
                        // The connection waits in the kernel's backlog; try again shortly
                        // instead of spinning.
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
    #[error("internal: {0}")]
    Internal(String),
}

/// What part of the catalog a client needs, given what its hello says it has.
#[derive(Debug, PartialEq, Eq)]
enum CatalogPlan {
    /// It has the whole catalog.
    Nothing,
    /// It has the first `base` entries.
    Tail { base: usize },
    /// It needs all of it.
    Whole,
}

fn plan_catalog(
    sensors: &[Arc<SensorInfo>],
    ours: CatalogId,
    theirs: Option<CatalogId>,
) -> CatalogPlan {
    match theirs {
        Some(theirs) if theirs == ours => CatalogPlan::Nothing,
        Some(theirs)
            if theirs.entries < ours.entries
                && catalog_id(sensors, theirs.entries as usize) == theirs =>
        {
            CatalogPlan::Tail {
                base: theirs.entries as usize,
            }
        }
        _ => CatalogPlan::Whole,
    }
}

struct Client {
    bus: StateBus,
    config: TcpStateConfig,
    packs: CatalogPacks,
    peer: SocketAddr,
    /// Held for the session's lifetime: the connection count bound.
    _slot: OwnedSemaphorePermit,
}

impl Client {
    async fn run(self, stream: TcpStream, mut stop: watch::Receiver<()>) {
        let peer = self.peer;
        tracing::info!(%peer, "state client connected");
        let result = tokio::select! {
            _ = stop.changed() => Ok(()),
            result = self.session(stream) => result,
        };
        match result {
            Ok(()) => tracing::info!(%peer, "state client closed"),
            Err(error) => tracing::info!(%peer, %error, "state client dropped"),
        }
    }

    async fn session(&self, stream: TcpStream) -> Result<(), ClientError> {
        // Small replies only; Nagle would hold a lone change back for up to 40 ms.
        let _ = stream.set_nodelay(true);
        let (mut reader, mut writer) = stream.into_split();
        let mut session = SessionEncoder::new();
        let mut out = Vec::new();

        // The catalog as it is now, with its id and pack (made once for all sessions, off the
        // runtime's thread: packing a site's catalog takes tens of milliseconds).
        let sensors = self.bus.catalog();
        let packs = self.packs.clone();
        let (sensors, pack) = tokio::task::spawn_blocking(move || {
            let pack = packs.get(&sensors);
            (sensors, pack)
        })
        .await
        .map_err(|e| ClientError::Internal(e.to_string()))?;
        session.hello(
            &self.config.box_name,
            (pack.id.entries > 0).then_some(pack.id),
            &mut out,
        );
        self.write(&mut writer, &mut out).await?;

        let Some(theirs) = self.client_hello(&mut reader).await else {
            // The client closed its end.
            return Ok(());
        };
        let plan = if pack.id.entries == 0 {
            CatalogPlan::Nothing
        } else {
            plan_catalog(&sensors, pack.id, theirs)
        };
        tracing::debug!(peer = %self.peer, ?plan, "state client catalog");
        let tail;
        let pack_bytes: &[u8] = match plan {
            CatalogPlan::Nothing => &[],
            CatalogPlan::Whole => &pack.pack,
            CatalogPlan::Tail { base } => {
                let entries: Vec<_> = sensors
                    .get(base..)
                    .unwrap_or_default()
                    .iter()
                    .map(|info| super::frames::catalog_entry(info))
                    .collect();
                tail = edgenvr_proto::pack::encode_catalog_pack(base as u32, &entries);
                &tail
            }
        };
        if !pack_bytes.is_empty() {
            let mut sent = 0;
            loop {
                let done =
                    session.catalog_pack(pack_bytes, &mut sent, PACK_PARTS_PER_WRITE, &mut out);
                self.write(&mut writer, &mut out).await?;
                if done {
                    break;
                }
            }
        }

        // Only now join the bus: the values and events from here on.
        let mut subscription = self.bus.subscribe();
        let mut catalog_sent = sensors.len();
        self.start(&mut session, &subscription, &mut catalog_sent, &mut out);
        self.write(&mut writer, &mut out).await?;
        let mut last_write = Instant::now();

        let mut discard = [0u8; 512];
        let mut pending: Vec<SensorChange> = Vec::new();
        let mut pacer = Pacer::new(self.config.min_frame_gap);
        loop {
            let heartbeat_at = last_write + self.config.heartbeat_interval;
            let flush_at = pacer.due(!pending.is_empty(), Instant::now());
            tokio::select! {
                read = reader.read(&mut discard) => match read {
                    // Whatever a client sends is not trusted and not parsed; EOF ends the session.
                    Ok(0) | Err(_) => return Ok(()),
                    Ok(_) => continue,
                },
                event = subscription.events.recv() => {
                    let mut event = Some(event);
                    // Take everything already queued: a burst shares one frame.
                    while let Some(received) = event.take() {
                        match received {
                            Ok(BusEvent::Changed(change)) => {
                                pending.push(change);
                                if pending.len() >= PENDING_CHANGES_LIMIT {
                                    session.changes(&pending, &mut out);
                                    pending.clear();
                                    pacer.sent(Instant::now());
                                }
                            }
                            Ok(BusEvent::Registered(info)) => {
                                // Changes already waiting go first: they are for sensors already known.
                                session.changes(&pending, &mut out);
                                pending.clear();
                                catalog_sent = catalog_sent.max(info.id.0 as usize + 1);
                                session.catalog(&[info], &mut out);
                            }
                            Err(broadcast::error::RecvError::Lagged(missed)) => {
                                tracing::warn!(peer = %self.peer, missed, "state client fell behind, sending a fresh snapshot");
                                pending.clear();
                                subscription = self.bus.subscribe();
                                self.start(&mut session, &subscription, &mut catalog_sent, &mut out);
                                break;
                            }
                            Err(broadcast::error::RecvError::Closed) => return Ok(()),
                        }
                        event = match subscription.events.try_recv() {
                            Ok(next) => Some(Ok(next)),
                            Err(broadcast::error::TryRecvError::Lagged(missed)) => {
                                Some(Err(broadcast::error::RecvError::Lagged(missed)))
                            }
                            Err(_) => None,
                        };
                    }
                }
                () = sleep_until(flush_at.unwrap_or(heartbeat_at)), if flush_at.is_some() => {}
                () = sleep_until(heartbeat_at) => session.heartbeat(unix_now_ms(), &mut out),
            }
            let now = Instant::now();
            if pacer.is_due(!pending.is_empty(), now) {
                session.changes(&pending, &mut out);
                pending.clear();
                pacer.sent(now);
            }
            if !out.is_empty() {
                self.write(&mut writer, &mut out).await?;
                last_write = Instant::now();
            }
        }
    }

    /// Reads the client's hello: the catalog it has, `Some(None)` when it names none, says
    /// nothing within the wait, or sends something else; `None` when it closed the connection.
    async fn client_hello(&self, reader: &mut OwnedReadHalf) -> Option<Option<CatalogId>> {
        let deadline = Instant::now() + self.config.client_hello_wait;
        let mut decoder = FrameDecoder::<CLIENT_HELLO_BYTES>::new();
        let mut buf = [0u8; 256];
        let mut read_total = 0;
        while read_total < CLIENT_HELLO_BYTES {
            let read = match tokio::time::timeout_at(deadline, reader.read(&mut buf)).await {
                Err(_) => return Some(None),
                Ok(Ok(0) | Err(_)) => return None,
                Ok(Ok(read)) => read,
            };
            read_total += read;
            let mut input = buf.get(..read).unwrap_or_default();
            loop {
                match decoder.feed(input) {
                    Feed::NeedMore => break,
                    Feed::Frame { frame, rest, .. } => {
                        if let Body::Hello(hello) = frame.body {
                            tracing::debug!(
                                peer = %self.peer,
                                client = hello.box_name,
                                version = hello.version,
                                ours = PROTOCOL_VERSION,
                                "state client hello"
                            );
                            return Some(hello.catalog);
                        }
                        input = rest;
                    }
                    Feed::Rejected { rest, .. } => input = rest,
                }
            }
        }
        Some(None)
    }

    /// The catalog entries not sent yet, then a snapshot of `subscription`. Sensors are only
    /// ever added, with dense ids, so after a lag only the new tail of the catalog is resent.
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
        // A large snapshot grew the buffer; do not keep its capacity for the session's life.
        out.shrink_to(MAX_IDLE_BUFFER_BYTES);
        Ok(())
    }
}

/// Changes held for one frame before it is sent early. 4096 binary changes are ~10 KiB of
/// frames: a burst this large is sent at once rather than held for the gap.
const PENDING_CHANGES_LIMIT: usize = 4096;

/// Capacity a session's output buffer keeps between writes.
const MAX_IDLE_BUFFER_BYTES: usize = 16 * 1024;

#[cfg(test)]
mod tests {
    use edgenvr_proto::Role;

    use super::*;
    use crate::state::{SensorKind, SensorSpec};

    fn sensors(count: u32) -> Vec<Arc<SensorInfo>> {
        let bus = StateBus::new();
        for n in 0..count {
            bus.register(SensorSpec::binary(format!("pir_{n}"), Role::Sensor))
                .unwrap();
        }
        bus.catalog()
    }

    #[test]
    fn the_catalog_plan_follows_what_the_client_has() {
        let all = sensors(10);
        let ours = catalog_id(&all, 10);
        assert_eq!(plan_catalog(&all, ours, Some(ours)), CatalogPlan::Nothing);
        assert_eq!(plan_catalog(&all, ours, None), CatalogPlan::Whole);
        let prefix = catalog_id(&all, 7);
        assert_eq!(
            plan_catalog(&all, ours, Some(prefix)),
            CatalogPlan::Tail { base: 7 }
        );
        // A prefix of another box's catalog, or a longer one: the whole catalog.
        let other = sensors(12);
        assert_eq!(
            plan_catalog(&all, ours, Some(catalog_id(&other, 12))),
            CatalogPlan::Whole
        );
        let renamed: Vec<Arc<SensorInfo>> = all
            .iter()
            .map(|s| {
                Arc::new(SensorInfo {
                    name: format!("{}x", s.name),
                    kind: SensorKind::Binary,
                    ..(**s).clone()
                })
            })
            .collect();
        assert_eq!(
            plan_catalog(&all, ours, Some(catalog_id(&renamed, 7))),
            CatalogPlan::Whole
        );
    }
}
