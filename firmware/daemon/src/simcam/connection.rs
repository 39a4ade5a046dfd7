//! One client's TCP connection: owns the socket (and a session's UDP sockets), parses RTSP
//! messages out of it with `rtsp-types`, answers them through [`RtspSession`], and, while a
//! session plays, sends the RTP and RTCP packets at the clip's pace: `$`-interleaved on the same
//! socket, or as UDP datagrams.
//!
//! Receives the accepted socket, the shared [`Catalog`] and the server's shutdown signal; emits
//! bytes on the sockets and log lines. Runs as one tokio task: reading requests and sending
//! frames are branches of one `select!`, so responses and media never interleave mid-message. A
//! client that sends garbage gets `400 Bad Request` and is disconnected; one that stops reading
//! is dropped after [`WRITE_TIMEOUT`]; neither affects other clients. The session ends with the
//! RTSP connection, for UDP sessions too.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Buf, BytesMut};
use rtsp_types::{Data, Message, ParseError, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::time::Instant;

use super::fault::Fault;
use super::rtsp::{self, Catalog, Effect, MediaTransport, RtspSession, UdpPorts};
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

/// Where a playing session's packets go.
enum Sink {
    Interleaved {
        rtp_channel: u8,
        rtcp_channel: u8,
    },
    Udp {
        rtp_socket: UdpSocket,
        rtcp_socket: UdpSocket,
        client_rtp: SocketAddr,
        client_rtcp: SocketAddr,
    },
}

/// A session that is sending media.
struct Playing {
    stream: LoopingStream,
    sink: Sink,
    next_report: Instant,
}

/// The UDP sockets bound by the last UDP SETUP, waiting for PLAY.
struct UdpBinder {
    local_ip: IpAddr,
    bound: Option<(std::net::UdpSocket, std::net::UdpSocket)>,
}

impl UdpPorts for UdpBinder {
    fn bind_pair(&mut self) -> std::io::Result<(u16, u16)> {
        // RFC 3550 11 asks for RTP on an even port and RTCP on the next one; any free port pair
        // works for clients, so a few tries for the even/odd pair, then any two ports.
        const EVEN_PAIR_TRIES: usize = 4;
        let any_port = SocketAddr::new(self.local_ip, 0);
        let mut pair = None;
        for _ in 0..EVEN_PAIR_TRIES {
            let rtp = std::net::UdpSocket::bind(any_port)?;
            let rtp_port = rtp.local_addr()?.port();
            if rtp_port % 2 != 0 || rtp_port == u16::MAX {
                continue;
            }
            if let Ok(rtcp) =
                std::net::UdpSocket::bind(SocketAddr::new(self.local_ip, rtp_port + 1))
            {
                pair = Some((rtp, rtcp));
                break;
            }
        }
        let (rtp, rtcp) = match pair {
            Some(pair) => pair,
            None => (
                std::net::UdpSocket::bind(any_port)?,
                std::net::UdpSocket::bind(any_port)?,
            ),
        };
        rtp.set_nonblocking(true)?;
        rtcp.set_nonblocking(true)?;
        let ports = (rtp.local_addr()?.port(), rtcp.local_addr()?.port());
        self.bound = Some((rtp, rtcp));
        Ok(ports)
    }
}

/// Serves one client until it disconnects, misbehaves, or the server shuts down; returns the
/// video frames sent to it.
pub async fn serve(
    mut socket: TcpStream,
    peer: SocketAddr,
    catalog: Arc<Catalog>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<u64, ConnectionError> {
    if catalog.fault == Some(Fault::Silent) {
        return play_dead(socket, shutdown).await;
    }
    let local_ip = socket.local_addr()?.ip();
    let mut udp = UdpBinder {
        local_ip,
        bound: None,
    };
    // Interleaved RTP is written in small pieces; without this, Nagle's algorithm would hold
    // each frame's last packet back for an ACK.
    socket.set_nodelay(true)?;
    let mut session = RtspSession::new(catalog.clone(), local_ip, peer.ip(), fastrand::Rng::new());
    // A request fits in 4 KiB; the inbox grows up to MAX_MESSAGE_BYTES for longer messages.
    let mut inbox = BytesMut::with_capacity(4096);
    // One frame's packets: a key frame of the built-in clip is about 12 KB; the buffer grows for
    // bigger clips and is then reused for every frame.
    let mut outbox = Vec::with_capacity(64 * 1024);
    let mut playing: Option<Playing> = None;
    let mut last_request = Instant::now();
    // Frames of sessions that ended (TEARDOWN) on this connection.
    let mut sent_before = 0;

    loop {
        let frame_due = playing.as_ref().map(|p| p.stream.next_due());
        let idle_deadline = last_request + IDLE_TIMEOUT;
        tokio::select! {
            _ = shutdown.changed() => return Ok(sent_before + frames_sent(&playing)),
            read = socket.read_buf(&mut inbox) => {
                match read {
                    Ok(0) => return Ok(sent_before + frames_sent(&playing)),
                    Ok(_) => {}
                    Err(e) if is_hang_up(&e) => return Ok(sent_before + frames_sent(&playing)),
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
                            let (response, effect) = session.handle(&request, &mut udp);
                            outbox.clear();
                            response
                                .write(&mut outbox)
                                .map_err(|e| ConnectionError::Serialize(e.to_string()))?;
                            write_with_timeout(&mut socket, &outbox).await?;
                            match effect {
                                Effect::None => {}
                                Effect::Stop => sent_before += frames_sent(&playing.take()),
                                Effect::Play { path, transport, ids } => {
                                    tracing::info!(%peer, %path, ?transport, "client playing");
                                    let sink = sink_for(transport, &mut udp)?;
                                    let now = Instant::now();
                                    playing = Some(Playing {
                                        stream: LoopingStream::new(catalog.clip.clone(), ids, now)
                                            .with_fault(catalog.fault),
                                        sink,
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
                return Ok(0);
            }
        }
    }
}

/// Frames sent by the session playing, if any.
fn frames_sent(playing: &Option<Playing>) -> u64 {
    playing.as_ref().map_or(0, |p| p.stream.frames_sent())
}

/// [`Fault::Silent`]: takes and drops whatever the client sends, answers nothing, until the
/// client leaves, the server shuts down, or [`IDLE_TIMEOUT`] passes.
async fn play_dead(
    mut socket: TcpStream,
    mut shutdown: watch::Receiver<bool>,
) -> Result<u64, ConnectionError> {
    let mut sink = [0u8; 4096];
    let deadline = Instant::now() + IDLE_TIMEOUT;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return Ok(0),
            () = tokio::time::sleep_until(deadline) => return Ok(0),
            read = socket.read(&mut sink) => match read {
                Ok(0) => return Ok(0),
                Ok(_) => {}
                Err(e) if is_hang_up(&e) => return Ok(0),
                Err(e) => return Err(e.into()),
            },
        }
    }
}

/// The sink a PLAY starts sending to; a UDP session takes the sockets its SETUP bound.
fn sink_for(transport: MediaTransport, udp: &mut UdpBinder) -> Result<Sink, ConnectionError> {
    Ok(match transport {
        MediaTransport::Interleaved {
            rtp_channel,
            rtcp_channel,
        } => Sink::Interleaved {
            rtp_channel,
            rtcp_channel,
        },
        MediaTransport::Udp {
            client_rtp,
            client_rtcp,
        } => {
            // RtspSession only answers a UDP SETUP after bind_pair succeeded, so the sockets are
            // there; their absence would be a bug, reported rather than panicked on.
            let (rtp, rtcp) = udp.bound.take().ok_or_else(|| {
                ConnectionError::Io(std::io::Error::other("UDP PLAY without bound sockets"))
            })?;
            Sink::Udp {
                rtp_socket: UdpSocket::from_std(rtp)?,
                rtcp_socket: UdpSocket::from_std(rtcp)?,
                client_rtp,
                client_rtcp,
            }
        }
    })
}

/// Sends the next frame, and a sender report when one is due: in one write on the RTSP socket
/// when interleaved, as one datagram per packet over UDP.
async fn send_frame(
    socket: &mut TcpStream,
    playing: &mut Playing,
    outbox: &mut Vec<u8>,
) -> Result<(), ConnectionError> {
    outbox.clear();
    let now = Instant::now();
    let report_due = now >= playing.next_report;
    if report_due {
        playing.next_report = now + SENDER_REPORT_INTERVAL;
    }
    match &playing.sink {
        Sink::Interleaved {
            rtp_channel,
            rtcp_channel,
        } => {
            let mut framing_error = None;
            playing.stream.send_next(now, |packet| {
                if let Err(e) = Message::Data(Data::new(*rtp_channel, packet)).write(outbox) {
                    framing_error = Some(e.to_string());
                }
            });
            if let Some(e) = framing_error {
                return Err(ConnectionError::Serialize(e));
            }
            if report_due {
                let report = playing.stream.sender_report(SystemTime::now());
                Message::Data(Data::new(*rtcp_channel, &report[..]))
                    .write(outbox)
                    .map_err(|e| ConnectionError::Serialize(e.to_string()))?;
            }
            write_with_timeout(socket, outbox).await
        }
        Sink::Udp {
            rtp_socket,
            rtcp_socket,
            client_rtp,
            client_rtcp,
        } => {
            // The packets go into one buffer back to back; their ends mark the datagrams.
            let mut packet_ends = Vec::new();
            playing.stream.send_next(now, |packet| {
                outbox.extend_from_slice(packet);
                packet_ends.push(outbox.len());
            });
            let mut start = 0;
            for end in packet_ends {
                if let Some(packet) = outbox.get(start..end) {
                    send_datagram(rtp_socket, packet, *client_rtp).await?;
                }
                start = end;
            }
            if report_due {
                let report = playing.stream.sender_report(SystemTime::now());
                send_datagram(rtcp_socket, &report, *client_rtcp).await?;
            }
            Ok(())
        }
    }
}

/// Sends one datagram. A client that is not listening makes the kernel report "connection
/// refused" on a later send; like a camera, the server keeps sending until the RTSP session
/// ends.
async fn send_datagram(
    socket: &UdpSocket,
    packet: &[u8],
    to: SocketAddr,
) -> Result<(), ConnectionError> {
    match socket.send_to(packet, to).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(()),
        Err(e) => Err(e.into()),
    }
}

impl ConnectionError {
    /// True when the client simply went away (closed or reset the connection): an ordinary end
    /// of a session, not a fault worth reporting.
    pub fn is_hang_up(&self) -> bool {
        matches!(self, ConnectionError::Io(e) if is_hang_up(e))
    }
}

/// A client that quits without TEARDOWN often resets the connection, and one that closes while
/// media is being written makes the write fail with a broken pipe.
fn is_hang_up(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    matches!(e.kind(), ConnectionReset | BrokenPipe | ConnectionAborted)
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
