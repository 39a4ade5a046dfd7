//! The SDP session description (RFC 8866) a DESCRIBE answers with: one H.264 video track in
//! packetization-mode 1, parameter sets carried in `sprop-parameter-sets` (RFC 6184 8.1).
//!
//! Receives the clip's parameter sets and frame rate; emits the SDP text. Pure; no I/O.

use std::fmt::Write as _;

use base64::Engine as _;

use super::clip::FrameRate;
use super::rtp::H264_PAYLOAD_TYPE;

/// The control URL of the one track, relative to the session's base URL (`Content-Base`).
pub const TRACK_CONTROL: &str = "track1";

/// What the session description says about a stream.
#[derive(Debug)]
pub struct SdpParams<'a> {
    /// Session id for the `o=` line (any number unique to the server).
    pub session_id: u64,
    /// The server's address as the client sees it, for the `o=` line.
    pub server_ip: std::net::IpAddr,
    /// The stream's name, for the `s=` line.
    pub name: &'a str,
    /// The SPS NAL unit, header byte included.
    pub sps: &'a [u8],
    /// The PPS NAL unit, header byte included.
    pub pps: &'a [u8],
    /// The stream's frame rate, for `a=framerate`.
    pub frame_rate: FrameRate,
}

/// Writes the SDP for one H.264 track. The session is live (`a=range:npt=now-`): a client cannot
/// seek, it joins the running loop.
pub fn session_description(params: &SdpParams<'_>) -> String {
    let address_type = if params.server_ip.is_ipv4() {
        "IP4"
    } else {
        "IP6"
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    // RFC 6184 8.1: profile-level-id is the three bytes after the SPS NAL header
    // (profile_idc, constraint flags, level_idc) in hex.
    let profile_level_id: String = params
        .sps
        .iter()
        .skip(1)
        .take(3)
        .map(|b| format!("{b:02X}"))
        .collect();
    let FrameRate {
        frames,
        per_seconds,
    } = params.frame_rate;
    let fps = if per_seconds != 0 && frames % per_seconds == 0 {
        (frames / per_seconds).to_string()
    } else {
        format!("{:.3}", frames as f64 / per_seconds as f64)
    };
    let mut sdp = String::new();
    // Writing into a String cannot fail; the results are discarded on purpose.
    let _ = write!(
        sdp,
        "v=0\r\n\
         o=- {id} 1 IN {address_type} {ip}\r\n\
         s={name}\r\n\
         c=IN {address_type} {any}\r\n\
         t=0 0\r\n\
         a=tool:edgenvr sim-camera\r\n\
         a=type:broadcast\r\n\
         a=control:*\r\n\
         a=range:npt=now-\r\n\
         m=video 0 RTP/AVP {pt}\r\n\
         a=rtpmap:{pt} H264/90000\r\n\
         a=fmtp:{pt} packetization-mode=1;profile-level-id={profile_level_id};sprop-parameter-sets={sps},{pps}\r\n\
         a=framerate:{fps}\r\n\
         a=control:{TRACK_CONTROL}\r\n",
        id = params.session_id,
        ip = params.server_ip,
        name = params.name,
        any = if params.server_ip.is_ipv4() { "0.0.0.0" } else { "::" },
        pt = H264_PAYLOAD_TYPE,
        sps = b64.encode(params.sps),
        pps = b64.encode(params.pps),
    );
    sdp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_one_h264_track_with_its_parameter_sets() {
        let sps = [0x67, 0x4d, 0x40, 0x1e, 0xec];
        let pps = [0x68, 0xef, 0xbc, 0x80];
        let sdp = session_description(&SdpParams {
            session_id: 42,
            server_ip: "127.0.0.1".parse().unwrap(),
            name: "front",
            sps: &sps,
            pps: &pps,
            frame_rate: FrameRate {
                frames: 50,
                per_seconds: 2,
            },
        });
        let lines: Vec<&str> = sdp.split("\r\n").collect();
        assert_eq!(lines.first(), Some(&"v=0"));
        assert_eq!(lines.last(), Some(&""), "every line ends in CRLF");
        for expected in [
            "o=- 42 1 IN IP4 127.0.0.1",
            "s=front",
            "c=IN IP4 0.0.0.0",
            "m=video 0 RTP/AVP 96",
            "a=rtpmap:96 H264/90000",
            "a=fmtp:96 packetization-mode=1;profile-level-id=4D401E;sprop-parameter-sets=Z01AHuw=,aO+8gA==",
            "a=framerate:25",
            "a=control:track1",
        ] {
            assert!(lines.contains(&expected), "missing {expected:?} in\n{sdp}");
        }
        // The session-level lines come before the media section.
        let media = lines.iter().position(|l| l.starts_with("m=")).unwrap();
        let track = lines.iter().position(|l| *l == "a=control:track1").unwrap();
        assert!(media < track);
    }

    #[test]
    fn ipv6_servers_say_ip6() {
        let sdp = session_description(&SdpParams {
            session_id: 1,
            server_ip: "::1".parse().unwrap(),
            name: "x",
            sps: &[0x67],
            pps: &[0x68],
            frame_rate: FrameRate {
                frames: 30_000,
                per_seconds: 1001,
            },
        });
        assert!(sdp.contains("o=- 1 1 IN IP6 ::1\r\n"), "{sdp}");
        assert!(sdp.contains("c=IN IP6 ::\r\n"), "{sdp}");
        assert!(sdp.contains("a=framerate:29.970\r\n"), "{sdp}");
    }
}
