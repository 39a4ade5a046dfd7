//! A blocking connection to a box's TCP state port.
//!
//! Owns the socket, the frame decoder and the [`StateView`] built from what arrived. Receives
//! bytes from the box (it never sends any); emits the updates of every complete frame. Any sign
//! of lost data — a damaged frame, a sequence gap, silence longer than a few heartbeats — is an
//! error: the caller reconnects to resynchronise rather than show stale state.

use std::io::{self, Read};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use edgenvr_proto::{Body, Feed, FrameDecoder, FrameError, PROTOCOL_VERSION};

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
    /// The frames do not follow on (gap) or a change could not be read.
    #[error(transparent)]
    View(#[from] ViewError),
    /// The box speaks another protocol version.
    #[error("the box speaks protocol version {0}, this nvrctl version {PROTOCOL_VERSION}")]
    Version(u16),
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
}

impl StateConnection {
    /// Connects to `target` (`HOST:PORT`).
    pub fn open(target: &str) -> Result<StateConnection, ClientError> {
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
        let mut input = self.chunk.get(..read).unwrap_or_default();
        let mut updates = Vec::new();
        loop {
            match self.decoder.feed(input) {
                Feed::NeedMore => return Ok(updates),
                Feed::Frame { frame, rest, .. } => {
                    if let Body::Hello(hello) = &frame.body {
                        if hello.version != PROTOCOL_VERSION {
                            return Err(ClientError::Version(hello.version));
                        }
                    }
                    updates.extend(self.view.apply(&frame)?);
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
