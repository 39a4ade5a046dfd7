//! A blocking connection to a box's TCP state port.
//!
//! Owns the socket, the frame decoder and the [`StateView`] built from what arrived. On connect
//! it sends one frame, its hello (protocol version 2), naming the catalog it keeps for this
//! target in the [`CatalogCache`]; the box then leaves out what the client has. Receives bytes
//! from the box; emits the updates of every complete frame, and stores a newly received
//! catalog in the cache. Any sign of lost data — a damaged frame, a sequence gap, silence longer
//! than a few heartbeats — is an error: the caller reconnects to resynchronise rather than
//! show stale state.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use edgenvr_proto::{
    encode, Body, CatalogId, Feed, Frame, FrameDecoder, FrameError, Hello, PROTOCOL_VERSION,
};

use crate::cache::CatalogCache;
use crate::view::{StateView, Update, ViewError};

/// The box's state port when `HOST` has no `:PORT`.
pub const DEFAULT_STATE_PORT: u16 = 7420;

/// No byte for this long means the link is dead: three of the box's 5 s heartbeats missed.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(15);

/// Connect attempts give up after this long. 5 s: a box on a slow uplink answers well within it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a connection ended or could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The name did not resolve.
    #[error("cannot resolve {target}: {source}")]
    Resolve {
        /// HOST:PORT.
        target: String,
        /// Why.
        source: io::Error,
    },
    /// No address accepted the connection.
    #[error("cannot connect to {target}: {source}")]
    Connect {
        /// HOST:PORT.
        target: String,
        /// The last address's error.
        source: io::Error,
    },
    /// Reading failed.
    #[error("connection lost: {0}")]
    Read(io::Error),
    /// Nothing arrived for [`SILENCE_LIMIT`].
    #[error("no data for {0:?}: the link or the box is down")]
    Silent(Duration),
    /// The box closed the connection.
    #[error("the box closed the connection")]
    Closed,
    /// A frame failed its checksum or did not parse: frames were lost.
    #[error("damaged frame at byte {offset}: {error}")]
    Rejected {
        /// Stream offset of the damaged frame.
        offset: u64,
        /// Why it was rejected.
        error: FrameError,
    },
    /// The frames do not follow on (gap), a change could not be read, or the box speaks a
    /// protocol version this nvrctl does not.
    #[error(transparent)]
    View(#[from] ViewError),
}

/// `HOST[:PORT]` with the default port filled in (`[::1]` and bare IPv6 addresses included).
pub fn with_default_port(target: &str) -> String {
    let colons = target.matches(':').count();
    let has_port = if target.starts_with('[') {
        target.contains("]:")
    } else {
        colons == 1
    };
    if has_port {
        target.to_string()
    } else if colons > 1 && !target.starts_with('[') {
        format!("[{target}]:{DEFAULT_STATE_PORT}")
    } else {
        format!("{target}:{DEFAULT_STATE_PORT}")
    }
}

/// An open connection to a state port.
pub struct StateConnection {
    stream: TcpStream,
    decoder: Box<FrameDecoder>,
    view: StateView,
    chunk: Vec<u8>,
    target: String,
    cache: Option<CatalogCache>,
    /// The catalog loaded from the cache (and announced in our hello).
    cached: Option<CatalogId>,
    /// The session's catalog was complete and handled (from the cache, or stored in it).
    catalog_settled: bool,
    bytes_received: u64,
}

impl StateConnection {
    /// Connects to `target` (`HOST:PORT`) with the default catalog cache.
    pub fn open(target: &str) -> Result<StateConnection, ClientError> {
        Self::open_with_cache(target, CatalogCache::at_default())
    }

    /// Connects to `target` (`HOST:PORT`), keeping catalogs in `cache` (none: always fetch).
    pub fn open_with_cache(
        target: &str,
        cache: Option<CatalogCache>,
    ) -> Result<StateConnection, ClientError> {
        let mut connection = Self::connect(target)?;
        // Only the id before the hello (a small file): the box waits for the hello to decide
        // what of the catalog to send, and loading a large catalog takes a while.
        connection.cached = cache.as_ref().and_then(|cache| cache.known(target));
        connection.cache = cache;
        // Our hello, at once. A version 1 box reads and drops it.
        let hello = Frame {
            seq: 0,
            body: Body::Hello(Hello {
                version: PROTOCOL_VERSION,
                box_name: concat!("nvrctl ", env!("CARGO_PKG_VERSION")),
                catalog: connection.cached,
            }),
        };
        let mut buf = [0u8; 128];
        if let Ok(bytes) = encode(&hello, &mut buf) {
            connection
                .stream
                .write_all(bytes)
                .map_err(ClientError::Read)?;
        }
        if let (Some(id), Some(cache)) = (connection.cached, connection.cache.clone()) {
            if !cache.load_into(id, &mut connection.view) {
                // The box now thinks we have a catalog we cannot read: start over without it.
                cache.forget(target);
                drop(connection);
                return Self::open_with_cache(target, Some(cache));
            }
        }
        Ok(connection)
    }

    fn connect(target: &str) -> Result<StateConnection, ClientError> {
        let addrs = target
            .to_socket_addrs()
            .map_err(|source| ClientError::Resolve {
                target: target.to_string(),
                source,
            })?;
        let mut last_error = io::Error::new(io::ErrorKind::NotFound, "no address");
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(stream) => {
                    stream
                        .set_read_timeout(Some(SILENCE_LIMIT))
                        .map_err(ClientError::Read)?;
                    return Ok(StateConnection {
                        stream,
                        decoder: Box::default(),
                        view: StateView::default(),
                        // One read takes what a 256 kbit/s link delivers in ~0.5 s.
                        chunk: vec![0; 16 * 1024],
                        target: target.to_string(),
                        cache: None,
                        cached: None,
                        catalog_settled: false,
                        bytes_received: 0,
                    });
                }
                Err(error) => last_error = error,
            }
        }
        Err(ClientError::Connect {
            target: target.to_string(),
            source: last_error,
        })
    }

    /// What the box said so far.
    pub fn view(&self) -> &StateView {
        &self.view
    }

    /// Bytes received from the box in this session.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// Whether the catalog came from the cache (the box did not send it).
    pub fn catalog_from_cache(&self) -> bool {
        self.cached.is_some() && self.cached == self.view.catalog_id
    }

    /// After the box's hello: a cached catalog the box does not use is dropped (the box sends
    /// what is needed); once the announced catalog is whole, it is kept in the cache.
    fn settle_catalog(&mut self, frame_was_hello: bool) {
        if let (true, Some(cached)) = (frame_was_hello, self.cached) {
            let announced = self.view.catalog_id;
            // Ours is the box's catalog, or may be the start of it (the box then sends the
            // rest); anything else (a version 1 box, another catalog) starts empty.
            let usable = announced.is_some_and(|id| id == cached || id.entries > cached.entries);
            if !usable {
                let mut fresh = StateView::default();
                fresh.box_name = self.view.box_name.take();
                fresh.version = self.view.version;
                fresh.catalog_id = announced;
                fresh.expect_seq(self.view.expected_seq());
                self.view = fresh;
            }
        }
        if self.catalog_settled || self.view.catalog_id.is_none() || !self.view.catalog_complete() {
            return;
        }
        self.catalog_settled = true;
        if self.catalog_from_cache() {
            return;
        }
        if let Some(cache) = &self.cache {
            // A cache that cannot be written costs the next connect a catalog, nothing more.
            let _ = cache.store(&self.target, &self.view);
        }
    }

    /// Blocks until bytes arrive, applies every frame they complete, and returns the values set.
    pub fn read_updates(&mut self) -> Result<Vec<Update>, ClientError> {
        let read = match self.stream.read(&mut self.chunk) {
            Ok(0) => return Err(ClientError::Closed),
            Ok(read) => read,
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(ClientError::Silent(SILENCE_LIMIT))
            }
            Err(error) => return Err(ClientError::Read(error)),
        };
        self.bytes_received += read as u64;
        let chunk = std::mem::take(&mut self.chunk);
        let applied = self.apply_bytes(chunk.get(..read).unwrap_or_default());
        self.chunk = chunk;
        applied
    }

    fn apply_bytes(&mut self, bytes: &[u8]) -> Result<Vec<Update>, ClientError> {
        let mut input = bytes;
        let mut updates = Vec::new();
        loop {
            match self.decoder.feed(input) {
                Feed::NeedMore => return Ok(updates),
                Feed::Frame { frame, rest, .. } => {
                    let hello = matches!(frame.body, Body::Hello(_));
                    updates.extend(self.view.apply(&frame)?);
                    self.settle_catalog(hello);
                    input = rest;
                }
                Feed::Rejected { error, offset, .. } => {
                    return Err(ClientError::Rejected { offset, error })
                }
            }
        }
    }

    /// Reads until a whole snapshot has arrived.
    pub fn read_snapshot(&mut self) -> Result<&StateView, ClientError> {
        while !self.view.snapshot_complete {
            self.read_updates()?;
        }
        Ok(&self.view)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_port_is_added_only_when_missing() {
        assert_eq!(with_default_port("box"), "box:7420");
        assert_eq!(with_default_port("box:9000"), "box:9000");
        assert_eq!(with_default_port("10.0.0.2"), "10.0.0.2:7420");
        assert_eq!(with_default_port("[::1]"), "[::1]:7420");
        assert_eq!(with_default_port("[::1]:9000"), "[::1]:9000");
        assert_eq!(with_default_port("fe80::1"), "[fe80::1]:7420");
    }
}
