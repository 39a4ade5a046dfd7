//! The RTSP 1.0 (RFC 2326) side of one client connection: parsed requests in, responses and
//! session effects out.
//!
//! Receives requests already parsed by `rtsp-types`; emits for each a response and an
//! [`Effect`] telling the connection what to do with the media (start sending, stop). Owns the
//! state of the one session a connection may hold (its id, path, transport, RTP identifiers).
//! Pure: does no I/O and reads no clock, so every request/response pair is testable alone.
//!
//! Supported: OPTIONS, DESCRIBE, SETUP (RTP/AVP/TCP interleaved, or RTP/AVP/UDP unicast to the
//! client's own address), PLAY, TEARDOWN, GET_PARAMETER (keepalive). Anything else gets an error
//! status, never a dropped connection. UDP ports are bound through [`UdpPorts`], so the I/O stays
//! with the caller.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rtsp_types::headers::{self, RtpLowerTransport, RtpProfile, Transport, Transports};
use rtsp_types::{Method, Request, Response, StatusCode, Url, Version};

use super::clip::Clip;
use super::fault::{Fault, BAD_SDP};
use super::sdp::{self, SdpParams, TRACK_CONTROL};

/// Seconds of silence after which a client may consider the session gone, announced in the
/// `Session` header; clients send GET_PARAMETER keepalives at about half of it. 60 s is the
/// RFC 2326 default.
pub const SESSION_TIMEOUT_SECONDS: u64 = 60;

/// Methods listed in the `Public` header of an OPTIONS response.
const PUBLIC_METHODS: &str = "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER";

/// Value of the `Server` header.
const SERVER_NAME: &str = "edgenvr-sim-camera";

/// What the server serves: shared read-only by every connection.
#[derive(Debug)]
pub struct Catalog {
    /// The stream paths, without leading or trailing slashes (e.g. `front`, `cam/main`).
    pub paths: Vec<String>,
    /// The clip every path serves.
    pub clip: Arc<Clip>,
    /// What the camera gets wrong (fault tests); `None` for a healthy camera.
    pub fault: Option<Fault>,
}

/// Where the RTP and RTCP packets of a session go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaTransport {
    /// RTP/AVP/TCP: `$`-framed on the RTSP connection itself, on these channels.
    Interleaved {
        /// Channel of the RTP packets.
        rtp_channel: u8,
        /// Channel of the RTCP packets.
        rtcp_channel: u8,
    },
    /// RTP/AVP/UDP unicast: datagrams from the server ports [`UdpPorts::bind_pair`] returned to
    /// the client's ports.
    Udp {
        /// Where the RTP packets go.
        client_rtp: SocketAddr,
        /// Where the RTCP packets go.
        client_rtcp: SocketAddr,
    },
}

/// Binds the server side of a UDP session. Implemented by the connection, which keeps the
/// sockets; the last pair bound is the one a following PLAY sends from.
pub trait UdpPorts {
    /// Binds an RTP and an RTCP socket and returns their ports.
    fn bind_pair(&mut self) -> std::io::Result<(u16, u16)>;
}

/// The RTP identifiers of a session's stream, chosen at random at SETUP (RFC 3550 5.1 asks for
/// random initial values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamIds {
    /// Synchronisation source of the stream.
    pub ssrc: u32,
    /// Sequence number of the first packet.
    pub initial_seq: u16,
    /// RTP timestamp of the first frame.
    pub initial_rtp_timestamp: u32,
}

/// What the connection must do after sending a response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Nothing beyond the response.
    None,
    /// Start sending the clip from its first frame.
    Play {
        /// The path being played (for logs).
        path: String,
        /// Where the packets go.
        transport: MediaTransport,
        /// The stream's RTP identifiers.
        ids: StreamIds,
    },
    /// Stop sending; the session is gone.
    Stop,
}

#[derive(Debug)]
struct SessionState {
    id: String,
    path: String,
    transport: MediaTransport,
    ids: StreamIds,
    playing: bool,
}

/// The RTSP state of one client connection.
#[derive(Debug)]
pub struct RtspSession {
    catalog: Arc<Catalog>,
    local_ip: IpAddr,
    peer_ip: IpAddr,
    rng: fastrand::Rng,
    session: Option<SessionState>,
}

/// A failed request: the status to answer with and why (for the log and the reason phrase).
struct Refusal {
    status: StatusCode,
    why: &'static str,
}

fn refuse(status: StatusCode, why: &'static str) -> Refusal {
    Refusal { status, why }
}

impl RtspSession {
    /// State for a new connection from `peer_ip` accepted on `local_ip`; `rng` picks session
    /// ids and RTP identifiers (seed it in tests for fixed values).
    pub fn new(
        catalog: Arc<Catalog>,
        local_ip: IpAddr,
        peer_ip: IpAddr,
        rng: fastrand::Rng,
    ) -> Self {
        RtspSession {
            catalog,
            local_ip,
            peer_ip,
            rng,
            session: None,
        }
    }

    /// Answers one request; a UDP SETUP binds its server ports through `udp`.
    pub fn handle(
        &mut self,
        request: &Request<Vec<u8>>,
        udp: &mut dyn UdpPorts,
    ) -> (Response<Vec<u8>>, Effect) {
        let Some(cseq) = request
            .header(&headers::CSEQ)
            .map(|v| v.as_str().to_owned())
        else {
            return (
                error_response(None, StatusCode::BadRequest, "missing CSeq"),
                Effect::None,
            );
        };
        if request.version() != Version::V1_0 {
            return (
                error_response(
                    Some(&cseq),
                    StatusCode::RTSPVersionNotSupported,
                    "only RTSP/1.0 is served",
                ),
                Effect::None,
            );
        }
        let result = match request.method() {
            Method::Options => Ok((
                base_response(&cseq, StatusCode::Ok)
                    .header(headers::PUBLIC, PUBLIC_METHODS)
                    .build(Vec::new()),
                Effect::None,
            )),
            Method::Describe => self.describe(request, &cseq),
            Method::Setup => self.setup(request, &cseq, udp),
            Method::Play => self.play(request, &cseq),
            Method::Teardown => self.teardown(request, &cseq),
            Method::GetParameter => self.get_parameter(request, &cseq),
            _ => Err(refuse(StatusCode::NotImplemented, "method not implemented")),
        };
        match result {
            Ok(reply) => reply,
            Err(Refusal { status, why }) => {
                tracing::debug!(method = ?request.method(), ?status, why, "refused RTSP request");
                (error_response(Some(&cseq), status, why), Effect::None)
            }
        }
    }

    fn describe(
        &mut self,
        request: &Request<Vec<u8>>,
        cseq: &str,
    ) -> Result<(Response<Vec<u8>>, Effect), Refusal> {
        let (uri, path) = self.resolve(request, false)?;
        let clip = &self.catalog.clip;
        let sdp = if self.catalog.fault == Some(Fault::BadSdp) {
            BAD_SDP.to_owned()
        } else {
            sdp::session_description(&SdpParams {
                session_id: self.rng.u64(..),
                server_ip: self.local_ip,
                name: &path,
                sps: clip.sps(),
                pps: clip.pps(),
                frame_rate: clip.frame_rate(),
            })
        };
        let response = base_response(cseq, StatusCode::Ok)
            .header(headers::CONTENT_TYPE, "application/sdp")
            .header(headers::CONTENT_BASE, base_url(&uri, &path).to_string())
            .build(sdp.into_bytes());
        Ok((response, Effect::None))
    }

    fn setup(
        &mut self,
        request: &Request<Vec<u8>>,
        cseq: &str,
        udp: &mut dyn UdpPorts,
    ) -> Result<(Response<Vec<u8>>, Effect), Refusal> {
        let (_, path) = self.resolve(request, true)?;
        if let Some(session) = &self.session {
            let asked = request_session_id(request)?;
            if asked.as_deref() != Some(session.id.as_str()) {
                return Err(refuse(
                    StatusCode::SessionNotFound,
                    "one session per connection; SETUP without its Session id",
                ));
            }
            if session.playing {
                return Err(refuse(
                    StatusCode::MethodNotValidInThisState,
                    "SETUP while playing",
                ));
            }
        }
        let (transport, server_ports) = choose_transport(request, self.peer_ip, udp)?;
        let session = match self.session.take() {
            Some(existing) => SessionState {
                path,
                transport,
                ..existing
            },
            None => SessionState {
                id: format!("{:016X}", self.rng.u64(..)),
                path,
                transport,
                ids: StreamIds {
                    ssrc: self.rng.u32(..),
                    initial_seq: self.rng.u16(..),
                    initial_rtp_timestamp: self.rng.u32(..),
                },
                playing: false,
            },
        };
        let mut params = headers::RtpTransportParameters {
            unicast: true,
            ssrc: vec![session.ids.ssrc],
            ..Default::default()
        };
        let lower_transport = match transport {
            MediaTransport::Interleaved {
                rtp_channel,
                rtcp_channel,
            } => {
                params.interleaved = Some((rtp_channel, Some(rtcp_channel)));
                RtpLowerTransport::Tcp
            }
            MediaTransport::Udp {
                client_rtp,
                client_rtcp,
            } => {
                params.client_port = Some((client_rtp.port(), Some(client_rtcp.port())));
                params.server_port = server_ports.map(|(rtp, rtcp)| (rtp, Some(rtcp)));
                RtpLowerTransport::Udp
            }
        };
        let reply_transport = Transports::from(vec![Transport::Rtp(headers::RtpTransport {
            profile: RtpProfile::Avp,
            lower_transport: Some(lower_transport),
            params,
        })]);
        let response = base_response(cseq, StatusCode::Ok)
            .typed_header(&reply_transport)
            .typed_header(&session_header(&session.id))
            .build(Vec::new());
        tracing::debug!(session = %session.id, path = %session.path, "session set up");
        self.session = Some(session);
        Ok((response, Effect::None))
    }

    fn play(
        &mut self,
        request: &Request<Vec<u8>>,
        cseq: &str,
    ) -> Result<(Response<Vec<u8>>, Effect), Refusal> {
        let (uri, path) = self.resolve(request, true)?;
        let session = self.current_session(request)?;
        if path != session.path {
            return Err(refuse(
                StatusCode::NotFound,
                "PLAY of a path this session did not set up",
            ));
        }
        let mut track_url = base_url(&uri, &path);
        track_url.set_path(&format!("/{path}/{TRACK_CONTROL}"));
        let rtp_info = headers::RtpInfos::V1(vec![headers::rtp_info::v1::RtpInfo {
            uri: track_url,
            seq: Some(session.ids.initial_seq),
            rtptime: Some(session.ids.initial_rtp_timestamp),
        }]);
        let response = base_response(cseq, StatusCode::Ok)
            .typed_header(&session_header(&session.id))
            .header(headers::RANGE, "npt=0.000-")
            .typed_header(&rtp_info)
            .build(Vec::new());
        // A second PLAY while playing (some clients send one to resume) changes nothing.
        let effect = if session.playing {
            Effect::None
        } else {
            session.playing = true;
            Effect::Play {
                path: session.path.clone(),
                transport: session.transport,
                ids: session.ids,
            }
        };
        Ok((response, effect))
    }

    fn teardown(
        &mut self,
        request: &Request<Vec<u8>>,
        cseq: &str,
    ) -> Result<(Response<Vec<u8>>, Effect), Refusal> {
        self.current_session(request)?;
        self.session = None;
        Ok((
            base_response(cseq, StatusCode::Ok).build(Vec::new()),
            Effect::Stop,
        ))
    }

    fn get_parameter(
        &mut self,
        request: &Request<Vec<u8>>,
        cseq: &str,
    ) -> Result<(Response<Vec<u8>>, Effect), Refusal> {
        // A keepalive: without a Session header it is answered like OPTIONS; with one, the
        // session must exist.
        let mut builder = base_response(cseq, StatusCode::Ok);
        if request_session_id(request)?.is_some() {
            let session = self.current_session(request)?;
            builder = builder.typed_header(&session_header(&session.id));
        }
        Ok((builder.build(Vec::new()), Effect::None))
    }

    /// The session the request names, which must be this connection's.
    fn current_session(
        &mut self,
        request: &Request<Vec<u8>>,
    ) -> Result<&mut SessionState, Refusal> {
        let asked = request_session_id(request)?;
        match (&mut self.session, asked) {
            (Some(session), Some(asked)) if asked == session.id => Ok(session),
            (None, None) => Err(refuse(
                StatusCode::MethodNotValidInThisState,
                "no session: SETUP first",
            )),
            _ => Err(refuse(StatusCode::SessionNotFound, "unknown session")),
        }
    }

    /// The request URI and the served path it names. With `track_allowed`, a URI naming the
    /// path's track (`<path>/track1`) resolves to the path too.
    fn resolve(
        &self,
        request: &Request<Vec<u8>>,
        track_allowed: bool,
    ) -> Result<(Url, String), Refusal> {
        let uri = request
            .request_uri()
            .ok_or_else(|| refuse(StatusCode::BadRequest, "request URI required"))?;
        let mut path = uri.path().trim_matches('/');
        if track_allowed {
            if let Some(stream_path) = path
                .strip_suffix(TRACK_CONTROL)
                .and_then(|p| p.strip_suffix('/'))
            {
                path = stream_path;
            }
        }
        self.catalog
            .paths
            .iter()
            .find(|p| p.as_str() == path)
            .map(|p| (uri.clone(), p.clone()))
            .ok_or_else(|| refuse(StatusCode::NotFound, "no stream at this path"))
    }
}

/// The session id in the request's `Session` header, if any.
fn request_session_id(request: &Request<Vec<u8>>) -> Result<Option<String>, Refusal> {
    request
        .typed_header::<headers::Session>()
        .map(|s| s.map(|s| s.0.trim().to_owned()))
        .map_err(|_| refuse(StatusCode::BadRequest, "unparsable Session header"))
}

/// The first transport in the request's `Transport` header that the server can do, and for UDP
/// the server ports bound for it. UDP goes to the address the RTSP connection comes from: a
/// `destination` elsewhere is not honoured (RFC 2326 12.39 lets a server refuse it, and it would
/// make the server a traffic reflector).
fn choose_transport(
    request: &Request<Vec<u8>>,
    peer_ip: IpAddr,
    udp: &mut dyn UdpPorts,
) -> Result<(MediaTransport, Option<(u16, u16)>), Refusal> {
    let raw = request
        .header(&headers::TRANSPORT)
        .ok_or_else(|| refuse(StatusCode::BadRequest, "SETUP without a Transport header"))?;
    // rtsp-types 0.1.3 panics on two malformed quoted values (a lone `"` as `mode`, a trailing
    // backslash in `dest_addr`/`src_addr`). No transport this server accepts needs an escape or an
    // unbalanced quote, so such a header is refused before it reaches the parser.
    let value = raw.as_str();
    if value.contains('\\') || value.matches('"').count() % 2 != 0 {
        return Err(refuse(StatusCode::BadRequest, "malformed Transport header"));
    }
    let transports = request
        .typed_header::<Transports>()
        .ok()
        .flatten()
        .ok_or_else(|| refuse(StatusCode::BadRequest, "malformed Transport header"))?;
    for transport in transports.iter() {
        let Transport::Rtp(rtp) = transport else {
            continue;
        };
        if rtp.profile != RtpProfile::Avp || rtp.params.multicast {
            continue;
        }
        match rtp.lower_transport {
            Some(RtpLowerTransport::Tcp) => {
                // RFC 2326 12.39: without `interleaved`, the server picks the channels.
                let (rtp_channel, rtcp_channel) = match rtp.params.interleaved {
                    None => (0, Some(1)),
                    Some((rtp_channel, Some(rtcp_channel))) => (rtp_channel, Some(rtcp_channel)),
                    Some((rtp_channel, None)) => (rtp_channel, rtp_channel.checked_add(1)),
                };
                if let Some(rtcp_channel) = rtcp_channel.filter(|&c| c != rtp_channel) {
                    let transport = MediaTransport::Interleaved {
                        rtp_channel,
                        rtcp_channel,
                    };
                    return Ok((transport, None));
                }
            }
            // RTP/AVP alone means UDP (RFC 2326 12.39).
            None | Some(RtpLowerTransport::Udp) => {
                let Some((rtp_port, rtcp_port)) = rtp.params.client_port else {
                    continue;
                };
                let Some(rtcp_port) = rtcp_port.or_else(|| rtp_port.checked_add(1)) else {
                    continue;
                };
                if rtp_port == 0 || rtcp_port == 0 {
                    continue;
                }
                let server_ports = udp.bind_pair().map_err(|e| {
                    tracing::warn!(error = %e, "cannot bind UDP ports for a session");
                    refuse(StatusCode::InternalServerError, "cannot bind UDP ports")
                })?;
                let transport = MediaTransport::Udp {
                    client_rtp: SocketAddr::new(peer_ip, rtp_port),
                    client_rtcp: SocketAddr::new(peer_ip, rtcp_port),
                };
                return Ok((transport, Some(server_ports)));
            }
            Some(RtpLowerTransport::Other(_)) => {}
        }
    }
    Err(refuse(
        StatusCode::UnsupportedTransport,
        "only RTP/AVP unicast over TCP (interleaved) or UDP is served",
    ))
}

/// The URL a client resolves the SDP's relative control URLs against: the stream's URL with a
/// trailing slash, as the client spelled its host.
fn base_url(request_uri: &Url, path: &str) -> Url {
    let mut base = request_uri.clone();
    base.set_query(None);
    base.set_fragment(None);
    base.set_path(&format!("/{path}/"));
    base
}

fn session_header(id: &str) -> headers::Session {
    headers::Session::with_timeout(id.to_owned(), SESSION_TIMEOUT_SECONDS)
}

fn base_response(cseq: &str, status: StatusCode) -> rtsp_types::ResponseBuilder {
    let builder = Response::builder(Version::V1_0, status);
    // rtsp-types says "Ok"; RFC 2326 and every camera say "OK".
    let builder = if status == StatusCode::Ok {
        builder.reason_phrase("OK")
    } else {
        builder
    };
    builder
        .header(headers::CSEQ, cseq)
        .header(headers::SERVER, SERVER_NAME)
}

/// An error response; `cseq` is echoed when the request had one.
pub fn error_response(cseq: Option<&str>, status: StatusCode, why: &str) -> Response<Vec<u8>> {
    let mut builder = Response::builder(Version::V1_0, status).header(headers::SERVER, SERVER_NAME);
    if let Some(cseq) = cseq {
        builder = builder.header(headers::CSEQ, cseq);
    }
    // The reason is a short plain-text body, so a person debugging with a raw client sees it.
    builder
        .header(headers::CONTENT_TYPE, "text/plain")
        .build(format!("{why}\r\n").into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> RtspSession {
        // Parsed once: the property tests build hundreds of sessions.
        static CLIP: std::sync::OnceLock<Arc<Clip>> = std::sync::OnceLock::new();
        let clip = CLIP.get_or_init(|| Arc::new(Clip::embedded().unwrap()));
        let catalog = Catalog {
            fault: None,
            paths: vec!["front".into(), "cam/back".into()],
            clip: clip.clone(),
        };
        RtspSession::new(
            Arc::new(catalog),
            "127.0.0.1".parse().unwrap(),
            "127.0.0.2".parse().unwrap(),
            fastrand::Rng::with_seed(7),
        )
    }

    /// Pretends to bind UDP ports, or fails to.
    struct FakeUdp {
        next_port: u16,
        fail: bool,
    }

    impl UdpPorts for FakeUdp {
        fn bind_pair(&mut self) -> std::io::Result<(u16, u16)> {
            if self.fail {
                return Err(std::io::Error::other("no ports"));
            }
            let ports = (self.next_port, self.next_port + 1);
            self.next_port += 2;
            Ok(ports)
        }
    }

    /// Answers `request` with UDP ports from a fresh [`FakeUdp`].
    trait Handle {
        fn answer(&mut self, request: &Request<Vec<u8>>) -> (Response<Vec<u8>>, Effect);
    }

    impl Handle for RtspSession {
        fn answer(&mut self, request: &Request<Vec<u8>>) -> (Response<Vec<u8>>, Effect) {
            let mut udp = FakeUdp {
                next_port: 6000,
                fail: false,
            };
            self.handle(request, &mut udp)
        }
    }

    fn request(text: &str) -> Request<Vec<u8>> {
        let text = text.replace('\n', "\r\n") + "\r\n";
        match rtsp_types::Message::<Vec<u8>>::parse(text.as_bytes()) {
            Ok((rtsp_types::Message::Request(r), _)) => r,
            other => panic!("not a request: {other:?}"),
        }
    }

    fn header(response: &Response<Vec<u8>>, name: &headers::HeaderName) -> String {
        response
            .header(name)
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default()
    }

    /// SETUP and PLAY of `front` over interleaved TCP; returns the session id.
    fn set_up_and_play(s: &mut RtspSession) -> (String, Effect) {
        let (setup, _) = s.answer(&request(
            "SETUP rtsp://127.0.0.1:8554/front/track1 RTSP/1.0\nCSeq: 3\nTransport: RTP/AVP/TCP;unicast;interleaved=2-3\n",
        ));
        assert_eq!(setup.status(), StatusCode::Ok);
        let id = header(&setup, &headers::SESSION);
        let id = id.split(';').next().unwrap().to_owned();
        let (play, effect) = s.answer(&request(&format!(
            "PLAY rtsp://127.0.0.1:8554/front/ RTSP/1.0\nCSeq: 4\nSession: {id}\n"
        )));
        assert_eq!(play.status(), StatusCode::Ok);
        (id, effect)
    }

    #[test]
    fn options_lists_the_methods() {
        let (response, effect) = session().answer(&request("OPTIONS * RTSP/1.0\nCSeq: 1\n"));
        assert_eq!(response.status(), StatusCode::Ok);
        assert_eq!(header(&response, &headers::CSEQ), "1");
        assert_eq!(header(&response, &headers::PUBLIC), PUBLIC_METHODS);
        assert_eq!(effect, Effect::None);
    }

    #[test]
    fn describe_answers_sdp_with_a_content_base() {
        let (response, _) = session().answer(&request(
            "DESCRIBE rtsp://cam.local:8554/cam/back RTSP/1.0\nCSeq: 2\nAccept: application/sdp\n",
        ));
        assert_eq!(response.status(), StatusCode::Ok);
        assert_eq!(header(&response, &headers::CONTENT_TYPE), "application/sdp");
        assert_eq!(
            header(&response, &headers::CONTENT_BASE),
            "rtsp://cam.local:8554/cam/back/"
        );
        let sdp = String::from_utf8(response.body().clone()).unwrap();
        assert!(sdp.contains("s=cam/back\r\n"), "{sdp}");
        assert!(sdp.contains("packetization-mode=1"), "{sdp}");
    }

    #[test]
    fn unknown_paths_are_404() {
        let mut s = session();
        for text in [
            "DESCRIBE rtsp://127.0.0.1/nope RTSP/1.0\nCSeq: 2\n",
            "DESCRIBE rtsp://127.0.0.1/front/track1 RTSP/1.0\nCSeq: 2\n",
            "SETUP rtsp://127.0.0.1/nope/track1 RTSP/1.0\nCSeq: 3\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\n",
        ] {
            let (response, effect) = s.answer(&request(text));
            assert_eq!(response.status(), StatusCode::NotFound, "{text}");
            assert_eq!(header(&response, &headers::CSEQ), text[text.find("CSeq: ").unwrap() + 6..].lines().next().unwrap());
            assert_eq!(effect, Effect::None);
        }
    }

    #[test]
    fn setup_then_play_starts_the_stream_on_the_requested_channels() {
        let mut s = session();
        let (id, effect) = set_up_and_play(&mut s);
        let Effect::Play {
            path,
            transport,
            ids,
        } = effect
        else {
            panic!("PLAY did not start the stream: {effect:?}");
        };
        assert_eq!(path, "front");
        assert_eq!(
            transport,
            MediaTransport::Interleaved {
                rtp_channel: 2,
                rtcp_channel: 3
            }
        );
        assert_eq!(id.len(), 16);

        // A second PLAY changes nothing; the RTP-Info names the track and its first packet.
        let (play, effect) = s.answer(&request(&format!(
            "PLAY rtsp://127.0.0.1:8554/front/ RTSP/1.0\nCSeq: 5\nSession: {id}\n"
        )));
        assert_eq!(effect, Effect::None);
        assert_eq!(
            header(&play, &headers::RTP_INFO),
            format!(
                "url=rtsp://127.0.0.1:8554/front/track1;seq={};rtptime={}",
                ids.initial_seq, ids.initial_rtp_timestamp
            )
        );

        let (keepalive, _) = s.answer(&request(&format!(
            "GET_PARAMETER rtsp://127.0.0.1:8554/front/ RTSP/1.0\nCSeq: 6\nSession: {id}\n"
        )));
        assert_eq!(keepalive.status(), StatusCode::Ok);

        let (teardown, effect) = s.answer(&request(&format!(
            "TEARDOWN rtsp://127.0.0.1:8554/front/ RTSP/1.0\nCSeq: 7\nSession: {id}\n"
        )));
        assert_eq!(teardown.status(), StatusCode::Ok);
        assert_eq!(effect, Effect::Stop);
    }

    #[test]
    fn setup_reply_names_the_transport_and_session() {
        let mut s = session();
        let (setup, _) = s.answer(&request(
            "SETUP rtsp://127.0.0.1/front/track1 RTSP/1.0\nCSeq: 3\nTransport: RTP/AVP/TCP;unicast\n",
        ));
        assert_eq!(setup.status(), StatusCode::Ok);
        let transport = header(&setup, &headers::TRANSPORT);
        assert!(
            transport.starts_with("RTP/AVP/TCP;unicast;interleaved=0-1;ssrc="),
            "{transport}"
        );
        assert!(header(&setup, &headers::SESSION).ends_with(";timeout=60"));
    }

    #[test]
    fn udp_goes_to_the_client_ports_at_the_connection_address() {
        let mut s = session();
        let (setup, _) = s.answer(&request(
            "SETUP rtsp://127.0.0.1/front/track1 RTSP/1.0\nCSeq: 3\nTransport: RTP/AVP;unicast;client_port=5000-5001;destination=10.9.9.9\n",
        ));
        assert_eq!(setup.status(), StatusCode::Ok);
        let transport = header(&setup, &headers::TRANSPORT);
        assert!(
            transport.starts_with("RTP/AVP/UDP;unicast;ssrc=",)
                && transport.ends_with(";client_port=5000-5001;server_port=6000-6001"),
            "{transport}"
        );
        let id = header(&setup, &headers::SESSION);
        let id = id.split(';').next().unwrap();
        let (_, effect) = s.answer(&request(&format!(
            "PLAY rtsp://127.0.0.1/front/ RTSP/1.0\nCSeq: 4\nSession: {id}\n"
        )));
        let Effect::Play { transport, .. } = effect else {
            panic!("{effect:?}");
        };
        assert_eq!(
            transport,
            MediaTransport::Udp {
                client_rtp: "127.0.0.2:5000".parse().unwrap(),
                client_rtcp: "127.0.0.2:5001".parse().unwrap(),
            }
        );
    }

    #[test]
    fn udp_without_ports_to_bind_is_a_500() {
        let mut s = session();
        let mut no_ports = FakeUdp {
            next_port: 0,
            fail: true,
        };
        let (setup, _) = s.handle(
            &request(
                "SETUP rtsp://127.0.0.1/front/track1 RTSP/1.0\nCSeq: 3\nTransport: RTP/AVP/UDP;unicast;client_port=5000-5001\n",
            ),
            &mut no_ports,
        );
        assert_eq!(setup.status(), StatusCode::InternalServerError);
    }

    #[test]
    fn unusable_transports_are_refused_with_461() {
        let mut s = session();
        for transport in [
            "RTP/AVP;unicast",
            "RTP/AVP/UDP;multicast",
            "RTP/AVP/UDP;unicast;client_port=0-1",
            "RTP/SAVP/TCP;interleaved=0-1",
            "RTP/AVP/TCP;interleaved=255",
        ] {
            let (response, _) = s.answer(&request(&format!(
                "SETUP rtsp://127.0.0.1/front/track1 RTSP/1.0\nCSeq: 3\nTransport: {transport}\n"
            )));
            assert_eq!(
                response.status(),
                StatusCode::UnsupportedTransport,
                "{transport}"
            );
        }
    }

    #[test]
    fn requests_out_of_order_or_for_other_sessions_are_refused() {
        let mut s = session();
        let play = "PLAY rtsp://127.0.0.1/front/ RTSP/1.0\nCSeq: 9\n";
        assert_eq!(
            s.answer(&request(play)).0.status(),
            StatusCode::MethodNotValidInThisState
        );
        let (id, _) = set_up_and_play(&mut s);
        let wrong = "TEARDOWN rtsp://127.0.0.1/front/ RTSP/1.0\nCSeq: 9\nSession: 1234\n";
        assert_eq!(
            s.answer(&request(wrong)).0.status(),
            StatusCode::SessionNotFound
        );
        let setup_while_playing = format!(
            "SETUP rtsp://127.0.0.1/front/track1 RTSP/1.0\nCSeq: 10\nSession: {id}\nTransport: RTP/AVP/TCP;unicast\n"
        );
        assert_eq!(
            s.answer(&request(&setup_while_playing)).0.status(),
            StatusCode::MethodNotValidInThisState
        );
    }

    #[test]
    fn bad_requests_get_400() {
        let mut s = session();
        for text in [
            "OPTIONS * RTSP/1.0\nUser-Agent: no-cseq\n",
            "DESCRIBE * RTSP/1.0\nCSeq: 2\n",
            "SETUP rtsp://127.0.0.1/front/track1 RTSP/1.0\nCSeq: 3\n",
            "SETUP rtsp://127.0.0.1/front/track1 RTSP/1.0\nCSeq: 3\nTransport: RTP/AVP/TCP;interleaved=x\n",
            // Both would panic inside rtsp-types' Transport parser.
            "SETUP rtsp://127.0.0.1/front/track1 RTSP/1.0\nCSeq: 3\nTransport: RTP/AVP/TCP;mode=\"\n",
            "SETUP rtsp://127.0.0.1/front/track1 RTSP/1.0\nCSeq: 3\nTransport: RTP/AVP/TCP;dest_addr=\"\\\"\n",
        ] {
            let (response, effect) = s.answer(&request(text));
            assert_eq!(response.status(), StatusCode::BadRequest, "{text}");
            assert_eq!(effect, Effect::None);
        }
    }

    #[test]
    fn other_methods_and_versions_are_refused() {
        let mut s = session();
        let (response, _) = s.answer(&request(
            "RECORD rtsp://127.0.0.1/front RTSP/1.0\nCSeq: 1\n",
        ));
        assert_eq!(response.status(), StatusCode::NotImplemented);
        let (response, _) = s.answer(&request("OPTIONS * RTSP/2.0\nCSeq: 1\n"));
        assert_eq!(response.status(), StatusCode::RTSPVersionNotSupported);
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_parsed_and_answered_without_panicking(
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..300)
        ) {
            let mut s = session();
            let mut rest = &data[..];
            while let Ok((message, consumed)) = rtsp_types::Message::<Vec<u8>>::parse(rest) {
                if let rtsp_types::Message::Request(r) = message {
                    let _ = s.answer(&r);
                }
                rest = &rest[consumed.max(1).min(rest.len())..];
            }
        }

        #[test]
        fn request_like_bytes_are_answered_without_panicking(
            method in proptest::sample::select(vec!["OPTIONS", "DESCRIBE", "SETUP", "PLAY", "TEARDOWN", "GET_PARAMETER", "X"]),
            uri in "[ -~]{0,30}",
            headers in proptest::collection::vec(("[A-Za-z-]{1,12}", "[ -~]{0,30}"), 0..5),
        ) {
            let mut s = session();
            let mut text = format!("{method} {uri} RTSP/1.0\r\nCSeq: 1\r\n");
            for (name, value) in headers {
                text.push_str(&format!("{name}: {value}\r\n"));
            }
            text.push_str("\r\n");
            if let Ok((rtsp_types::Message::Request(r), _)) =
                rtsp_types::Message::<Vec<u8>>::parse(text.as_bytes())
            {
                let _ = s.answer(&r);
            }
        }

        #[test]
        fn any_transport_header_is_answered_without_panicking(value in "[ -~]{0,60}") {
            let mut s = session();
            let text = format!(
                "SETUP rtsp://127.0.0.1/front/track1 RTSP/1.0\r\nCSeq: 3\r\nTransport: {value}\r\n\r\n"
            );
            if let Ok((rtsp_types::Message::Request(r), _)) =
                rtsp_types::Message::<Vec<u8>>::parse(text.as_bytes())
            {
                let _ = s.answer(&r);
            }
        }

        #[test]
        fn transport_like_headers_are_answered_without_panicking(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "RTP", "/", "AVP", "TCP", "UDP", ";", ",", "=", "\"", "\\", "-", "0", "255",
                    "interleaved", "mode", "dest_addr", "ssrc", "client_port", "unicast", " ",
                ]),
                0..16,
            )
        ) {
            let mut s = session();
            let text = format!(
                "SETUP rtsp://127.0.0.1/front/track1 RTSP/1.0\r\nCSeq: 3\r\nTransport: {}\r\n\r\n",
                parts.concat()
            );
            if let Ok((rtsp_types::Message::Request(r), _)) =
                rtsp_types::Message::<Vec<u8>>::parse(text.as_bytes())
            {
                let _ = s.answer(&r);
            }
        }
    }
}
