//! One client's TCP connection: owns the socket, parses RTSP messages out of it with
//! `rtsp-types`, answers them through [`RtspSession`], and, while a session plays, writes the
//! RTP and RTCP packets `$`-interleaved on the same socket at the clip's pace.
//!
//! Receives the accepted socket, the shared [`Catalog`] and the server's shutdown signal; emits
//! bytes on the socket and log lines. Runs as one tokio task: reading requests and sending frames
//! are branches of one `select!`, so responses and media never interleave mid-message. A client
//! that sends garbage gets `400 Bad Request` and is disconnected; one that stops reading is
//! dropped after [`WRITE_TIMEOUT`]; neither affects other clients.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Buf, BytesMut};
use rtsp_types::{Data, Message, ParseError, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::rtsp::{self, Catalog, Effect, MediaTransport, RtspSession};
use super::stream::LoopingStream;

/// The most bytes of one incoming message the server buffers: an interleaved frame (RTCP from
/// the client) is at most 4 + 65,535 bytes and a request a few hundred; anything longer is not
/// RTSP worth waiting for.
const MAX_MESSAGE_BYTES: usize = 4 + 65_535;

/// A client that has not taken the bytes of one write in this long is gone or stuck; it is
/// dropped rather than holding its task forever. Ten seconds rides out a congested link.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection with no playing session that sends nothing for this long is closed (the
/// session timeout announced to clients).
const IDLE_TIMEOUT: Duration = Duration::from_secs(rtsp::SESSION_TIMEOUT_SECONDS);

/// How often a playing session sends an RTCP sender report: RFC 3550 6.2's minimum interval.
const SENDER_REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// Why a connection ended other than by the client closing it.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The socket failed.
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    /// The client did not take our bytes within [`WRITE_TIMEOUT`].
    #[error("client stopped reading for {WRITE_TIMEOUT:?}")]
    WriteTimeout,
    /// The client sent bytes that are not RTSP.
    #[error("unparsable RTSP message")]
    Garbage,
    /// The client sent a message larger than [`MAX_MESSAGE_BYTES`].
    #[error("message longer than {MAX_MESSAGE_BYTES} bytes")]
    TooLarge,
    /// An outgoing message could not be serialised.
    #[error("cannot serialise an RTSP message: {0}")]
    Serialize(String),
}

/// A session that is sending media.
struct Playing {
    stream: LoopingStream,
    rtp_channel: u8,
    rtcp_channel: u8,
    next_report: Instant,
}

/// Serves one client until it disconnects, misbehaves, or the server shuts down.
pub async fn serve(
    mut socket: TcpStream,
    peer: SocketAddr,
    catalog: Arc<Catalog>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ConnectionError> {
    let local_ip = socket.local_addr()?.ip();
    // Interleaved RTP is written in small pieces; without this, Nagle's algorithm would hold
    // each frame's last packet back for an ACK.
    socket.set_nodelay(true)?;
    let mut session = RtspSession::new(catalog.clone(), local_ip, fastrand::Rng::new());
    let mut inbox = BytesMut::with_capacity(4096);
    let mut outbox = Vec::with_capacity(64 * 1024);
    let mut playing: Option<Playing> = None;
    let mut last_request = Instant::now();

    loop {
        let frame_due = playing.as_ref().map(|p| p.stream.next_due());
        let idle_deadline = last_request + IDLE_TIMEOUT;
        tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            read = socket.read_buf(&mut inbox) => {
                match read {
                    Ok(0) => return Ok(()),
                    Ok(_) => {}
                    // A client that quits without TEARDOWN often resets the connection.
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(()),
                    Err(e) => return Err(e.into()),
                }
                last_request = Instant::now();
                loop {
                    match Message::<Vec<u8>>::parse(&inbox[..]) {
                        Ok((message, consumed)) => {
                            inbox.advance(consumed);
                            let Message::Request(request) = message else {
                                // RTCP receiver reports ($-framed) and stray responses: nothing
                                // for a sender to do with them.
                                continue;
                            };
                            let (response, effect) = session.handle(&request);
                            outbox.clear();
                            response
                                .write(&mut outbox)
                                .map_err(|e| ConnectionError::Serialize(e.to_string()))?;
                            write_with_timeout(&mut socket, &outbox).await?;
                            match effect {
                                Effect::None => {}
                                Effect::Stop => playing = None,
                                Effect::Play { path, transport, ids } => {
                                    tracing::info!(%peer, %path, "client playing");
                                    let MediaTransport::Interleaved { rtp_channel, rtcp_channel } =
                                        transport;
                                    let now = Instant::now();
                                    playing = Some(Playing {
                                        stream: LoopingStream::new(catalog.clip.clone(), ids, now),
                                        rtp_channel,
                                        rtcp_channel,
                                        next_report: now,
                                    });
                                }
                            }
                        }
                        Err(ParseError::Incomplete(_)) if inbox.len() <= MAX_MESSAGE_BYTES => break,
                        Err(ParseError::Incomplete(_)) => {
                            refuse(&mut socket, StatusCode::RequestMessageBodyTooLarge, "message too long").await;
                            return Err(ConnectionError::TooLarge);
                        }
                        Err(ParseError::Error) => {
                            refuse(&mut socket, StatusCode::BadRequest, "not an RTSP message").await;
                            return Err(ConnectionError::Garbage);
                        }
                    }
                }
            }
            _ = tokio::time::sleep_until(frame_due.unwrap_or(idle_deadline)), if frame_due.is_some() => {
                if let Some(playing) = playing.as_mut() {
                    send_frame(&mut socket, playing, &mut outbox).await?;
                }
            }
            _ = tokio::time::sleep_until(idle_deadline), if playing.is_none() => {
                tracing::debug!(%peer, "closing idle connection");
                return Ok(());
            }
        }
    }
}

/// Sends the next frame, and a sender report when one is due, in one write.
async fn send_frame(
    socket: &mut TcpStream,
    playing: &mut Playing,
    outbox: &mut Vec<u8>,
) -> Result<(), ConnectionError> {
    outbox.clear();
    let now = Instant::now();
    let mut framing_error = None;
    let rtp_channel = playing.rtp_channel;
    playing.stream.send_next(now, |packet| {
        if let Err(e) = Message::Data(Data::new(rtp_channel, packet)).write(outbox) {
            framing_error = Some(e.to_string());
        }
    });
    if let Some(e) = framing_error {
        return Err(ConnectionError::Serialize(e));
    }
    if now >= playing.next_report {
        let report = playing.stream.sender_report(SystemTime::now());
        Message::Data(Data::new(playing.rtcp_channel, &report[..]))
            .write(outbox)
            .map_err(|e| ConnectionError::Serialize(e.to_string()))?;
        playing.next_report = now + SENDER_REPORT_INTERVAL;
    }
    write_with_timeout(socket, outbox).await
}

async fn write_with_timeout(socket: &mut TcpStream, bytes: &[u8]) -> Result<(), ConnectionError> {
    match tokio::time::timeout(WRITE_TIMEOUT, socket.write_all(bytes)).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(ConnectionError::WriteTimeout),
    }
}

/// Best effort: tells a misbehaving client why it is being disconnected.
async fn refuse(socket: &mut TcpStream, status: StatusCode, why: &str) {
    let mut bytes = Vec::new();
    if rtsp::error_response(None, status, why)
        .write(&mut bytes)
        .is_ok()
    {
        // The connection is being dropped either way; a failed write changes nothing.
        let _ = write_with_timeout(socket, &bytes).await;
    }
}
