//! `edgenvr sim-camera`: a small RTSP server that plays an H.264 clip in a loop, in real time,
//! as a stand-in for an IP camera in the demo and in tests.
//!
//! Receives a listen address, the stream paths and a [`Clip`] (the one built into the binary or
//! an Annex-B file); emits RTSP/RTP to any number of clients and logs `listening rtsp ADDR:PORT`
//! once bound. Each client gets its own pass over the clip from the first key frame, with RTP
//! timestamps and sequence numbers that keep increasing across the loop point, like a camera
//! that never stops.
//!
//! # Layout
//!
//! ```text
//! clip        Annex-B file → access units, SPS/PPS, frame rate          (no I/O but reading it)
//! sdp         SPS/PPS → the DESCRIBE answer                             (pure)
//! rtp         access unit → RTP packets (single NAL / FU-A), RTCP SR   (pure)
//! stream      the media clock: which frame next, when, which timestamp (pure)
//! rtsp        request → response + effect, per-connection session     (pure, rtsp-types)
//! connection  one client socket: parse, answer, send media             (one task per client)
//! fault       what a broken camera gets wrong (`--fault`, for tests)    (pure)
//! mod         bind, accept, shutdown                                    (this file)
//! ```
//!
//! Transport: RTP/AVP/TCP interleaved (what edgenvr and most recorders use) or RTP/AVP/UDP
//! unicast to the client's own address. Every path serves the same clip.

pub mod clip;
mod connection;
pub mod fault;
pub mod rtp;
pub mod rtsp;
pub mod sdp;
pub mod stream;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

pub use clip::{Clip, ClipError};
pub use fault::Fault;
use rtsp::Catalog;

/// The address `edgenvr sim-camera` listens on by default: loopback, RTSP's registered port.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8554";

/// The path served when none is given: `rtsp://HOST:PORT/stream`.
pub const DEFAULT_PATH: &str = "stream";

/// Clients served at once. A test camera has a handful; the cap keeps a client stuck in a
/// reconnect loop from exhausting the process's file descriptors.
const MAX_CONNECTIONS: usize = 64;

/// After a failed `accept` (e.g. out of file descriptors), wait this long before the next one so
/// the error does not spin a core.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Why the simulated camera cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimCameraError {
    /// The clip cannot be served.
    #[error(transparent)]
    Clip(#[from] ClipError),
    /// A stream path is not usable in a URL.
    #[error("invalid stream path {path:?}: {reason}")]
    BadPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// What to serve, and where.
#[derive(Debug)]
pub struct SimCameraConfig {
    /// The address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Stream paths (`front`, `cam/main`); leading and trailing slashes are ignored. Empty means
    /// [`DEFAULT_PATH`].
    pub paths: Vec<String>,
    /// The clip every path plays.
    pub clip: Clip,
    /// A fault every client gets (fault tests); `None` for a healthy camera.
    pub fault: Option<Fault>,
}

/// A bound simulated camera, ready to [`run`](SimCamera::run).
#[derive(Debug)]
pub struct SimCamera {
    listener: TcpListener,
    local_addr: SocketAddr,
    catalog: Arc<Catalog>,
}

impl SimCamera {
    /// Checks the paths and binds the listener. Logs `listening rtsp ADDR:PORT` once bound.
    pub async fn bind(config: SimCameraConfig) -> Result<SimCamera, SimCameraError> {
        let paths = normalize_paths(config.paths)?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| SimCameraError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| SimCameraError::Bind {
                addr: config.listen,
                source,
            })?;
        let (width, height) = config.clip.dimensions();
        let frame_rate = config.clip.frame_rate();
        tracing::info!("listening rtsp {local_addr}");
        tracing::info!(
            width,
            height,
            fps = frame_rate.frames as f64 / frame_rate.per_seconds as f64,
            frames = config.clip.access_units().len(),
            "serving an H.264 clip in a loop"
        );
        if let Some(fault) = config.fault {
            tracing::warn!(?fault, "playing a faulty camera");
        }
        let catalog = Arc::new(Catalog {
            paths,
            clip: Arc::new(config.clip),
            fault: config.fault,
        });
        for url in stream_urls(local_addr, &catalog.paths) {
            tracing::info!("stream {url}");
        }
        Ok(SimCamera {
            listener,
            local_addr,
            catalog,
        })
    }

    /// The address actually bound (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The `rtsp://` URL of every path.
    pub fn urls(&self) -> Vec<String> {
        stream_urls(self.local_addr, &self.catalog.paths)
    }

    /// Serves clients until `shutdown` completes, then closes every connection and returns once
    /// all client tasks have ended.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut clients = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                // Reap finished client tasks so the set does not grow with every connection.
                Some(_) = clients.join_next(), if !clients.is_empty() => {}
                accepted = self.listener.accept() => {
                    let (socket, peer) = match accepted {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                            continue;
                        }
                    };
                    let Ok(permit) = permits.clone().try_acquire_owned() else {
                        tracing::warn!(%peer, "refusing client: {MAX_CONNECTIONS} already connected");
                        continue;
                    };
                    let catalog = self.catalog.clone();
                    let stop = stop_rx.clone();
                    clients.spawn(async move {
                        tracing::debug!(%peer, "client connected");
                        match connection::serve(socket, peer, catalog, stop).await {
                            Ok(frames_sent) => {
                                tracing::info!(%peer, frames_sent, "client disconnected")
                            }
                            Err(e) if e.is_hang_up() => tracing::info!(%peer, "client disconnected"),
                            Err(e) => tracing::info!(%peer, error = %e, "client dropped"),
                        }
                        drop(permit);
                    });
                }
            }
        }
        // Receivers see the change (or the sender gone) and return.
        let _ = stop_tx.send(true);
        while clients.join_next().await.is_some() {}
        tracing::info!("sim-camera stopped");
    }
}

/// Trims slashes and checks each path is usable in a URL and given once.
fn normalize_paths(paths: Vec<String>) -> Result<Vec<String>, SimCameraError> {
    let paths = if paths.is_empty() {
        vec![DEFAULT_PATH.to_owned()]
    } else {
        paths
    };
    let mut normalized: Vec<String> = Vec::with_capacity(paths.len());
    for path in paths {
        let trimmed = path.trim_matches('/');
        let bad = |reason| SimCameraError::BadPath {
            path: path.clone(),
            reason,
        };
        if trimmed.is_empty() {
            return Err(bad("empty"));
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || "-_./".contains(c);
        if !trimmed.chars().all(allowed) {
            return Err(bad("use only letters, digits and - _ . /"));
        }
        if trimmed
            .split('/')
            .any(|segment| segment.is_empty() || segment == "." || segment == "..")
        {
            return Err(bad("empty, . or .. segment"));
        }
        if trimmed == sdp::TRACK_CONTROL || trimmed.ends_with(&format!("/{}", sdp::TRACK_CONTROL)) {
            return Err(bad("the last segment is the track's own control name"));
        }
        if normalized.iter().any(|p| p == trimmed) {
            return Err(bad("given twice"));
        }
        normalized.push(trimmed.to_owned());
    }
    Ok(normalized)
}

fn stream_urls(addr: SocketAddr, paths: &[String]) -> Vec<String> {
    paths
        .iter()
        .map(|path| format!("rtsp://{addr}/{path}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_trimmed_checked_and_defaulted() {
        assert_eq!(normalize_paths(vec![]).unwrap(), [DEFAULT_PATH]);
        assert_eq!(
            normalize_paths(vec!["/front/".into(), "cam/main".into()]).unwrap(),
            ["front", "cam/main"]
        );
        for bad in ["", "/", "a b", "a//b", "../x", "front/track1", "é"] {
            assert!(normalize_paths(vec![bad.into()]).is_err(), "{bad:?}");
        }
        assert!(normalize_paths(vec!["a".into(), "/a".into()]).is_err());
    }

    /// Reads RTSP messages (responses and interleaved data) until the connection closes or
    /// `count` responses have arrived.
    async fn read_responses(
        socket: &mut tokio::net::TcpStream,
        count: usize,
    ) -> Vec<rtsp_types::Response<Vec<u8>>> {
        use tokio::io::AsyncReadExt as _;
        let mut buf = Vec::new();
        let mut responses = Vec::new();
        while responses.len() < count {
            match rtsp_types::Message::<Vec<u8>>::parse(&buf) {
                Ok((message, consumed)) => {
                    buf.drain(..consumed);
                    if let rtsp_types::Message::Response(response) = message {
                        responses.push(response);
                    }
                }
                Err(_) => {
                    let mut chunk = [0u8; 4096];
                    let n = socket.read(&mut chunk).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
            }
        }
        responses
    }

    /// Pipelined requests behind a client's interleaved RTCP packet are all answered in order;
    /// then garbage gets a 400 and the connection is closed, and the server still takes new
    /// clients.
    #[tokio::test]
    async fn pipelined_requests_are_answered_and_garbage_closes_only_its_connection() {
        use tokio::io::AsyncWriteExt as _;
        let camera = SimCamera::bind(SimCameraConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            paths: vec![],
            clip: Clip::embedded().unwrap().truncated(1),
            fault: None,
        })
        .await
        .unwrap();
        let addr = camera.local_addr();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(camera.run(async {
            let _ = stop_rx.await;
        }));

        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        socket
            .write_all(
                b"$\x01\x00\x04abcdOPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n\
                  DESCRIBE rtsp://127.0.0.1/stream RTSP/1.0\r\nCSeq: 2\r\n\r\n",
            )
            .await
            .unwrap();
        let responses = read_responses(&mut socket, 2).await;
        let summary: Vec<(rtsp_types::StatusCode, String)> = responses
            .iter()
            .map(|r| {
                let cseq = r.header(&rtsp_types::headers::CSEQ).unwrap();
                (r.status(), cseq.as_str().to_owned())
            })
            .collect();
        assert_eq!(
            summary,
            [
                (rtsp_types::StatusCode::Ok, "1".to_owned()),
                (rtsp_types::StatusCode::Ok, "2".to_owned())
            ]
        );

        socket
            .write_all(b"\x16\x03\x01 TLS hello\r\n\r\n")
            .await
            .unwrap();
        let responses = read_responses(&mut socket, 2).await;
        assert_eq!(responses.len(), 1, "a 400, then the connection closes");
        assert_eq!(responses[0].status(), rtsp_types::StatusCode::BadRequest);

        let mut again = tokio::net::TcpStream::connect(addr).await.unwrap();
        again
            .write_all(b"OPTIONS * RTSP/1.0\r\nCSeq: 3\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(
            read_responses(&mut again, 1).await[0].status(),
            rtsp_types::StatusCode::Ok
        );

        stop_tx.send(()).unwrap();
        server.await.unwrap();
    }

    /// retina, the RTSP client the box records with, reads the server in-process: parameters
    /// from the SDP, then frames whose timestamps step by exactly one frame across two loop
    /// points of a 10-frame clip. Real time: 1 s.
    #[tokio::test]
    async fn retina_receives_continuous_frames_across_the_loop_point() {
        use futures::StreamExt as _;
        use retina::client::{PlayOptions, Session, SessionOptions, SetupOptions};
        use retina::codec::{CodecItem, ParametersRef};

        const CLIP_FRAMES: usize = 10;
        const FRAMES_TO_READ: usize = 25;
        let camera = SimCamera::bind(SimCameraConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            paths: vec!["front".into()],
            clip: Clip::embedded().unwrap().truncated(CLIP_FRAMES),
            fault: None,
        })
        .await
        .unwrap();
        let url = url::Url::parse(&camera.urls()[0]).unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(camera.run(async {
            let _ = stop_rx.await;
        }));

        let mut session = Session::describe(url, SessionOptions::default())
            .await
            .unwrap();
        match session.streams()[0].parameters() {
            Some(ParametersRef::Video(video)) => {
                assert_eq!(video.pixel_dimensions(), (640, 360));
                assert_eq!(video.rfc6381_codec(), "avc1.4D401E");
            }
            other => panic!("no video parameters from the SDP: {other:?}"),
        }
        session.setup(0, SetupOptions::default()).await.unwrap();
        let mut demuxed = session
            .play(PlayOptions::default())
            .await
            .unwrap()
            .demuxed()
            .unwrap();
        let mut frames = Vec::new();
        while frames.len() < FRAMES_TO_READ {
            match demuxed.next().await {
                Some(Ok(CodecItem::VideoFrame(frame))) => frames.push((
                    frame.timestamp().elapsed(),
                    frame.is_random_access_point(),
                    frame.loss(),
                )),
                Some(Ok(_)) => {}
                other => panic!("stream ended: {other:?}"),
            }
        }
        for (index, &(elapsed_90k, is_key, lost_packets)) in frames.iter().enumerate() {
            assert_eq!(elapsed_90k, index as i64 * 3600, "frame {index}");
            assert_eq!(is_key, index % CLIP_FRAMES == 0, "frame {index}");
            assert_eq!(lost_packets, 0, "frame {index}");
        }

        drop(demuxed);
        stop_tx.send(()).unwrap();
        server.await.unwrap();
    }
}
