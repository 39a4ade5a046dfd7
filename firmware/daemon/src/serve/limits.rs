//! What one HTTP client may hold on the box: the bounds that keep hostile or broken clients
//! (thousands of idle sockets, a slowloris trickling its headers, a player that opened a clip
//! and stopped reading) from taking the recorder's file descriptors, memory or download slots.
//!
//! Owns the accept loop of [`super::HttpServer`]: receives accepted sockets; emits hyper HTTP/1
//! connections running the router, each on its own task. A socket's writes go through
//! [`StallGuard`], which fails a write the client has not taken for
//! [`HttpLimits::write_stall_timeout`]; hyper closes a connection whose request head has not
//! arrived within [`HttpLimits::header_read_timeout`] (also between keep-alive requests). At
//! [`HttpLimits::max_connections`], a new connection replaces the oldest one with no request in
//! progress, or is closed at once when every connection is busy. Counters of what was refused go
//! to the log at most once a minute.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};

/// Bounds on HTTP clients; see the module doc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections held at once.
    pub max_connections: usize,
    /// How long a client may take to send a request head, on a new connection and between
    /// keep-alive requests.
    pub header_read_timeout: Duration,
    /// How long a response may wait for the client to take its next bytes.
    pub write_stall_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            // A box serves a handful of people and players; each connection costs a socket, a
            // task and buffers (~20 KiB idle, 64 KiB at most for a request head). 256 keeps the
            // worst case at a quarter of systemd's default 1024 file descriptors and ~16 MiB,
            // leaving the rest to slots, cameras, the state port and MQTT.
            max_connections: 256,
            // A request head is one packet on any link the box is used over; ten seconds is
            // generous for a 256 kbit/s uplink and short enough that idle sockets free up fast.
            header_read_timeout: Duration::from_secs(10),
            // A player that is paused stops reading; after 30 s its download slot (one of
            // MAX_CLIP_DOWNLOADS) goes to someone else, and the player resumes with a Range
            // request, as players and `nvrctl pull` do.
            write_stall_timeout: Duration::from_secs(30),
        }
    }
}

/// The most bytes hyper buffers for one request head: a clip URL with its token is under 1 KiB;
/// more is not a request this API serves (hyper answers 431).
const MAX_REQUEST_HEAD_BYTES: usize = 64 << 10;

/// After a failed `accept` (e.g. out of file descriptors), wait this long before the next one so
/// the error does not spin a core.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// How often refused or replaced connections are reported in the log.
const REPORT_INTERVAL: Duration = Duration::from_secs(60);

/// One open connection as the accept loop sees it.
#[derive(Debug)]
struct Slot {
    /// Requests whose response is still being sent.
    busy: Arc<AtomicUsize>,
    /// Closes the connection when notified.
    evict: Arc<Notify>,
}

/// The open connections, by accept order (the smallest key is the oldest).
#[derive(Debug, Default)]
struct Registry {
    slots: BTreeMap<u64, Slot>,
    /// Connections closed to make room since the last report.
    replaced: u64,
    /// Connections closed at once because every one was busy, since the last report.
    refused: u64,
    last_report: Option<Instant>,
}

fn lock(registry: &Mutex<Registry>) -> MutexGuard<'_, Registry> {
    registry
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Registry {
    /// Makes room for one more connection: `true` when there is room (possibly after evicting
    /// the oldest idle connection), `false` when every connection is busy.
    fn admit(&mut self, max_connections: usize) -> bool {
        if self.slots.len() < max_connections {
            return true;
        }
        let oldest_idle = self
            .slots
            .iter()
            .find(|(_, slot)| slot.busy.load(Ordering::Relaxed) == 0)
            .map(|(id, _)| *id);
        let admitted = match oldest_idle.and_then(|id| self.slots.remove(&id)) {
            Some(slot) => {
                slot.evict.notify_one();
                self.replaced += 1;
                true
            }
            None => {
                self.refused += 1;
                false
            }
        };
        let now = Instant::now();
        if self
            .last_report
            .is_none_or(|last| now.duration_since(last) >= REPORT_INTERVAL)
        {
            self.last_report = Some(now);
            tracing::warn!(
                max_connections,
                replaced_idle = self.replaced,
                refused_busy = self.refused,
                "http: connection limit reached; closing idle connections to make room"
            );
            self.replaced = 0;
            self.refused = 0;
        }
        admitted
    }
}

/// Counts a request in progress on its connection until dropped (with the response body).
#[derive(Debug)]
struct BusyGuard(Arc<AtomicUsize>);

impl BusyGuard {
    fn new(busy: &Arc<AtomicUsize>) -> BusyGuard {
        busy.fetch_add(1, Ordering::Relaxed);
        BusyGuard(busy.clone())
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that keeps its connection counted as busy until it is sent or dropped.
struct TrackedBody {
    inner: Body,
    _busy: BusyGuard,
}

impl http_body::Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        http_body::Body::is_end_stream(&self.inner)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::Body::size_hint(&self.inner)
    }
}

/// A socket whose writes fail with `TimedOut` once the peer has taken nothing for `timeout`:
/// a client that stops reading frees its connection (and its download slot) instead of holding
/// them for as long as it likes.
#[derive(Debug)]
pub struct StallGuard<S> {
    inner: S,
    timeout: Duration,
    /// Armed when a write could not proceed; cleared by any write that does.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> StallGuard<S> {
    /// Guards `inner`'s writes with `timeout`.
    pub fn new(inner: S, timeout: Duration) -> Self {
        StallGuard {
            inner,
            timeout,
            stalled: None,
        }
    }

    fn check<T>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match result {
            Poll::Ready(result) => {
                self.stalled = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let timeout = self.timeout;
                let sleep = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if sleep.as_mut().poll(cx).is_ready() {
                    tracing::info!(
                        stalled_s = timeout.as_secs(),
                        "http: dropping a client that took no bytes"
                    );
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the client took no bytes for {}s", timeout.as_secs()),
                    )))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StallGuard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StallGuard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.check(cx, result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.check(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        self.check(cx, result)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.check(cx, result)
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` completes; then stops
/// accepting, lets every connection finish the request in progress, and returns once all have
/// closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    let registry = Arc::new(Mutex::new(Registry::default()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut next_id = 0u64;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            // Reap finished connection tasks so the set does not grow with every connection.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (socket, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "http: accept failed");
                        tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                        continue;
                    }
                };
                let slot = {
                    let mut registry = lock(&registry);
                    if !registry.admit(limits.max_connections) {
                        // Every connection is sending a response: this one waits for nothing.
                        drop(socket);
                        continue;
                    }
                    let slot = Slot {
                        busy: Arc::new(AtomicUsize::new(0)),
                        evict: Arc::new(Notify::new()),
                    };
                    let shared = Slot {
                        busy: slot.busy.clone(),
                        evict: slot.evict.clone(),
                    };
                    registry.slots.insert(next_id, slot);
                    shared
                };
                let id = next_id;
                next_id += 1;
                let registry = registry.clone();
                let router = router.clone();
                let stop = stop_rx.clone();
                connections.spawn(async move {
                    serve_connection(socket, peer, router, limits, &slot, stop).await;
                    lock(&registry).slots.remove(&id);
                });
            }
        }
    }
    let _ = stop_tx.send(true);
    while connections.join_next().await.is_some() {}
}

/// One connection until the client leaves, a limit closes it, it is evicted, or shutdown (after
/// the response in progress).
async fn serve_connection(
    socket: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: HttpLimits,
    slot: &Slot,
    mut stop: watch::Receiver<bool>,
) {
    let io = TokioIo::new(StallGuard::new(socket, limits.write_stall_timeout));
    let busy = slot.busy.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let guard = BusyGuard::new(&busy);
        let mut router = router.clone();
        async move {
            let response = tower::Service::call(&mut router, request.map(Body::new)).await?;
            Ok::<_, std::convert::Infallible>(response.map(|inner| {
                Body::new(TrackedBody {
                    inner,
                    _busy: guard,
                })
            }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_REQUEST_HEAD_BYTES);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "http: connection ended");
            }
        }
        () = slot.evict.notified() => {
            tracing::debug!(%peer, "http: idle connection closed to make room");
        }
        _ = stop.changed() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry_with(busy: &[usize]) -> Registry {
        let mut registry = Registry::default();
        for (id, &requests) in busy.iter().enumerate() {
            registry.slots.insert(
                id as u64,
                Slot {
                    busy: Arc::new(AtomicUsize::new(requests)),
                    evict: Arc::new(Notify::new()),
                },
            );
        }
        registry
    }

    #[test]
    fn room_is_made_by_closing_the_oldest_idle_connection() {
        let mut registry = registry_with(&[1, 0, 0]);
        assert!(registry.admit(4), "under the limit");
        assert!(registry.admit(3));
        let left: Vec<u64> = registry.slots.keys().copied().collect();
        assert_eq!(left, [0, 2], "the busy one stays, the oldest idle one goes");
    }

    #[test]
    fn a_connection_is_refused_when_every_one_is_busy() {
        let mut registry = registry_with(&[1, 2]);
        assert!(!registry.admit(2));
        assert_eq!(registry.slots.len(), 2);
    }

    #[tokio::test]
    async fn a_write_the_peer_never_takes_fails_after_the_timeout() {
        use tokio::io::AsyncWriteExt as _;
        // A pipe whose other end never reads: 64 bytes of buffer, then writes wait.
        let (client, _server) = tokio::io::duplex(64);
        let mut guarded = StallGuard::new(client, Duration::from_millis(200));
        guarded.write_all(&[0u8; 64]).await.unwrap();
        let error = guarded.write_all(&[0u8; 1]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn progress_resets_the_stall_timer() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let (client, mut server) = tokio::io::duplex(64);
        let mut guarded = StallGuard::new(client, Duration::from_millis(200));
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            // Slow, but never stalled for the whole timeout: 300 ms of writing in all.
            for _ in 0..6 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                server.read_exact(&mut buf).await.unwrap();
            }
        });
        guarded.write_all(&[0u8; 384]).await.unwrap();
        reader.await.unwrap();
    }
}
