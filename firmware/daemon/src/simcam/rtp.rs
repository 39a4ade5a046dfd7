//! H.264 RTP packetisation (RFC 6184, packetization-mode 1) and RTCP sender reports (RFC 3550).
//!
//! Receives access units (NAL units without start codes) and their RTP timestamp; emits RTP
//! packets through a callback, one `&[u8]` per packet, built in a buffer the packetiser reuses.
//! A NAL unit that fits in one packet goes as a single NAL unit packet, a larger one as FU-A
//! fragments; the marker bit is set on the last packet of each access unit. Does no I/O; the
//! caller frames the packets for its transport.

use bytes::Bytes;

/// RTP payload size limit: a 1500-byte Ethernet MTU minus the IPv4 (20), UDP (8) and RTP (12)
/// headers, less some headroom for tunnels and IP options, so packets sent over UDP are never
/// fragmented by IP.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1400;

/// The dynamic RTP payload type the SDP maps to H264/90000 (96 is the first dynamic type).
pub const H264_PAYLOAD_TYPE: u8 = 96;

const RTP_VERSION_2: u8 = 0x80;
const RTP_HEADER_BYTES: usize = 12;
const RTP_MARKER: u8 = 0x80;
/// RFC 6184 5.8: NAL unit type 28 marks a fragmentation unit (FU-A).
const FU_A_TYPE: u8 = 28;
const FU_HEADER_BYTES: usize = 2;
const FU_START: u8 = 0x80;
const FU_END: u8 = 0x40;

/// Turns access units into RTP packets for one stream (one SSRC, one sequence number space).
#[derive(Debug)]
pub struct H264Packetizer {
    ssrc: u32,
    next_seq: u16,
    max_payload_bytes: usize,
    packet: Vec<u8>,
    packets_sent: u32,
    payload_bytes_sent: u32,
}

impl H264Packetizer {
    /// A packetiser for stream `ssrc` whose first packet gets sequence number `initial_seq`.
    /// `max_payload_bytes` is raised to the smallest usable value (an FU-A header plus one byte)
    /// if it is below it.
    pub fn new(ssrc: u32, initial_seq: u16, max_payload_bytes: usize) -> Self {
        let max_payload_bytes = max_payload_bytes.max(FU_HEADER_BYTES + 1);
        H264Packetizer {
            ssrc,
            next_seq: initial_seq,
            max_payload_bytes,
            packet: Vec::with_capacity(RTP_HEADER_BYTES + max_payload_bytes),
            packets_sent: 0,
            payload_bytes_sent: 0,
        }
    }

    /// The synchronisation source identifier of the stream.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The sequence number the next packet will carry.
    pub fn next_seq(&self) -> u16 {
        self.next_seq
    }

    /// Packets sent so far (wrapping, as RTCP counts them).
    pub fn packets_sent(&self) -> u32 {
        self.packets_sent
    }

    /// Payload bytes sent so far (wrapping, as RTCP counts them).
    pub fn payload_bytes_sent(&self) -> u32 {
        self.payload_bytes_sent
    }

    /// Packetises one access unit with RTP timestamp `timestamp`, calling `emit` once per packet
    /// in sending order. Empty NAL units are skipped; an access unit with none emits nothing.
    pub fn packetize<E: FnMut(&[u8])>(&mut self, nals: &[Bytes], timestamp: u32, mut emit: E) {
        let Some(last_index) = nals.iter().rposition(|n| !n.is_empty()) else {
            return;
        };
        for (index, nal) in nals.iter().enumerate() {
            let Some((&nal_header, nal_body)) = nal.split_first() else {
                continue;
            };
            let last_nal = index == last_index;
            if nal.len() <= self.max_payload_bytes {
                self.start_packet(timestamp, last_nal);
                self.packet.extend_from_slice(nal);
                self.finish_packet(&mut emit);
                continue;
            }
            // RFC 6184 5.8: the FU indicator keeps the NAL's F and NRI bits, the FU header its
            // type; the original header byte itself is not sent.
            let fu_indicator = (nal_header & 0xe0) | FU_A_TYPE;
            let nal_type = nal_header & 0x1f;
            let chunk_bytes = self.max_payload_bytes - FU_HEADER_BYTES;
            let chunk_count = nal_body.len().div_ceil(chunk_bytes);
            for (chunk_index, chunk) in nal_body.chunks(chunk_bytes).enumerate() {
                let first = chunk_index == 0;
                let last = chunk_index + 1 == chunk_count;
                let mut fu_header = nal_type;
                if first {
                    fu_header |= FU_START;
                }
                if last {
                    fu_header |= FU_END;
                }
                self.start_packet(timestamp, last_nal && last);
                self.packet.extend_from_slice(&[fu_indicator, fu_header]);
                self.packet.extend_from_slice(chunk);
                self.finish_packet(&mut emit);
            }
        }
    }

    fn start_packet(&mut self, timestamp: u32, marker: bool) {
        self.packet.clear();
        self.packet.push(RTP_VERSION_2);
        self.packet
            .push(if marker { RTP_MARKER } else { 0 } | H264_PAYLOAD_TYPE);
        self.packet.extend_from_slice(&self.next_seq.to_be_bytes());
        self.packet.extend_from_slice(&timestamp.to_be_bytes());
        self.packet.extend_from_slice(&self.ssrc.to_be_bytes());
    }

    fn finish_packet<E: FnMut(&[u8])>(&mut self, emit: &mut E) {
        emit(&self.packet);
        self.next_seq = self.next_seq.wrapping_add(1);
        self.packets_sent = self.packets_sent.wrapping_add(1);
        let payload_bytes = self.packet.len() - RTP_HEADER_BYTES;
        self.payload_bytes_sent = self
            .payload_bytes_sent
            .wrapping_add(u32::try_from(payload_bytes).unwrap_or(u32::MAX));
    }
}

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET_SECONDS: u64 = 2_208_988_800;
/// RTCP packet type of a sender report (RFC 3550 12.1).
const RTCP_SENDER_REPORT: u8 = 200;
/// Length of a sender report without report blocks, in 32-bit words minus one (RFC 3550 6.4.1).
const SENDER_REPORT_LENGTH_WORDS: u16 = 6;

/// An RTCP sender report with no reception report blocks (the server receives nothing): it maps
/// the RTP timestamp `rtp_timestamp` to the wall-clock time `wall` for the receiver.
pub fn sender_report(
    ssrc: u32,
    wall: std::time::SystemTime,
    rtp_timestamp: u32,
    packets_sent: u32,
    payload_bytes_sent: u32,
) -> [u8; 28] {
    let since_unix = wall
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let ntp_seconds = since_unix.as_secs() + NTP_UNIX_OFFSET_SECONDS;
    // 32-bit fixed-point fraction of a second.
    let ntp_fraction = (u64::from(since_unix.subsec_nanos()) << 32) / 1_000_000_000;
    // NTP seconds wrap every 136 years (era 1 starts in 2036); the low 32 bits are what is sent.
    let ntp = (ntp_seconds << 32) | (ntp_fraction & 0xffff_ffff);
    let mut report = [0u8; 28];
    report[0] = RTP_VERSION_2;
    report[1] = RTCP_SENDER_REPORT;
    report[2..4].copy_from_slice(&SENDER_REPORT_LENGTH_WORDS.to_be_bytes());
    report[4..8].copy_from_slice(&ssrc.to_be_bytes());
    report[8..16].copy_from_slice(&ntp.to_be_bytes());
    report[16..20].copy_from_slice(&rtp_timestamp.to_be_bytes());
    report[20..24].copy_from_slice(&packets_sent.to_be_bytes());
    report[24..28].copy_from_slice(&payload_bytes_sent.to_be_bytes());
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One received RTP packet, parsed back for checking.
    #[derive(Debug)]
    struct Received {
        marker: bool,
        payload_type: u8,
        seq: u16,
        timestamp: u32,
        ssrc: u32,
        payload: Vec<u8>,
    }

    fn parse(packet: &[u8]) -> Received {
        assert_eq!(packet[0], 0x80, "version 2, no padding, extension or CSRCs");
        Received {
            marker: packet[1] & 0x80 != 0,
            payload_type: packet[1] & 0x7f,
            seq: u16::from_be_bytes([packet[2], packet[3]]),
            timestamp: u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
            ssrc: u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
            payload: packet[12..].to_vec(),
        }
    }

    /// An independent RFC 6184 depacketiser: returns the NAL units of the packets, checking that
    /// FU-A fragments are complete and in order.
    fn depacketize(packets: &[Received]) -> Vec<Vec<u8>> {
        let mut nals = Vec::new();
        let mut fragment: Option<Vec<u8>> = None;
        for p in packets {
            let nal_type = p.payload[0] & 0x1f;
            if nal_type == FU_A_TYPE {
                let (indicator, header) = (p.payload[0], p.payload[1]);
                let body = &p.payload[2..];
                if header & FU_START != 0 {
                    assert!(fragment.is_none(), "FU-A start inside a fragment");
                    let mut nal = vec![(indicator & 0xe0) | (header & 0x1f)];
                    nal.extend_from_slice(body);
                    fragment = Some(nal);
                } else {
                    fragment
                        .as_mut()
                        .expect("FU-A continuation without a start")
                        .extend_from_slice(body);
                }
                if header & FU_END != 0 {
                    nals.push(fragment.take().unwrap());
                }
            } else {
                assert!(fragment.is_none(), "single NAL inside a fragment");
                nals.push(p.payload.clone());
            }
        }
        assert!(fragment.is_none(), "unfinished FU-A");
        nals
    }

    fn packetize_all(
        packetizer: &mut H264Packetizer,
        nals: &[Bytes],
        timestamp: u32,
    ) -> Vec<Received> {
        let mut packets = Vec::new();
        packetizer.packetize(nals, timestamp, |p| packets.push(parse(p)));
        packets
    }

    fn nal(header: u8, body_bytes: usize) -> Bytes {
        let mut nal = vec![header];
        nal.extend((0..body_bytes).map(|i| (i * 7 % 251) as u8));
        Bytes::from(nal)
    }

    #[test]
    fn small_nal_units_go_whole_and_the_last_carries_the_marker() {
        let mut p = H264Packetizer::new(0x1234_5678, 65_534, 100);
        let au = [nal(0x67, 10), nal(0x68, 3), nal(0x65, 99)];
        let packets = packetize_all(&mut p, &au, 90_000);
        assert_eq!(packets.len(), 3);
        assert_eq!(
            packets.iter().map(|p| p.marker).collect::<Vec<_>>(),
            [false, false, true]
        );
        assert_eq!(
            packets.iter().map(|p| p.seq).collect::<Vec<_>>(),
            [65_534, 65_535, 0],
            "sequence numbers wrap"
        );
        for packet in &packets {
            assert_eq!(packet.payload_type, H264_PAYLOAD_TYPE);
            assert_eq!(packet.timestamp, 90_000);
            assert_eq!(packet.ssrc, 0x1234_5678);
        }
        assert_eq!(
            depacketize(&packets),
            au.iter().map(|n| n.to_vec()).collect::<Vec<_>>()
        );
        assert_eq!(p.packets_sent(), 3);
        assert_eq!(p.payload_bytes_sent(), 11 + 4 + 100);
    }

    #[test]
    fn a_large_nal_unit_is_split_into_fu_a_fragments_that_reassemble() {
        let mut p = H264Packetizer::new(1, 10, 100);
        // 1 + 250 bytes: bodies of 98, 98 and 54 bytes.
        let au = [nal(0x65, 250), nal(0x06, 5)];
        let packets = packetize_all(&mut p, &au, 7);
        assert_eq!(packets.len(), 4);
        assert!(packets.iter().all(|p| p.payload.len() <= 100));
        assert_eq!(packets[0].payload[..2], [0x60 | FU_A_TYPE, FU_START | 5]);
        assert_eq!(packets[1].payload[..2], [0x60 | FU_A_TYPE, 5]);
        assert_eq!(packets[2].payload[..2], [0x60 | FU_A_TYPE, FU_END | 5]);
        assert_eq!(
            packets.iter().map(|p| p.marker).collect::<Vec<_>>(),
            [false, false, false, true],
            "the fragments are not the end of the access unit; the SEI after them is"
        );
        assert_eq!(
            depacketize(&packets),
            au.iter().map(|n| n.to_vec()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn the_last_fragment_of_the_last_nal_unit_carries_the_marker() {
        let mut p = H264Packetizer::new(1, 0, 50);
        let packets = packetize_all(&mut p, &[nal(0x41, 200)], 0);
        let markers: Vec<bool> = packets.iter().map(|p| p.marker).collect();
        assert_eq!(markers.last(), Some(&true));
        assert_eq!(markers.iter().filter(|m| **m).count(), 1);
    }

    #[test]
    fn empty_access_units_and_nal_units_emit_nothing() {
        let mut p = H264Packetizer::new(1, 0, 50);
        assert!(packetize_all(&mut p, &[], 0).is_empty());
        let packets = packetize_all(&mut p, &[nal(0x41, 3), Bytes::new()], 0);
        assert_eq!(packets.len(), 1);
        assert!(
            packets[0].marker,
            "the last non-empty NAL unit ends the access unit"
        );
        assert_eq!(p.next_seq(), 1);
    }

    #[test]
    fn sender_report_layout() {
        let wall = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_500);
        let report = sender_report(0xAABB_CCDD, wall, 0x0102_0304, 5, 1000);
        assert_eq!(report[..4], [0x80, 200, 0, 6]);
        assert_eq!(report[4..8], [0xAA, 0xBB, 0xCC, 0xDD]);
        let seconds = u32::from_be_bytes(report[8..12].try_into().unwrap());
        assert_eq!(u64::from(seconds), NTP_UNIX_OFFSET_SECONDS + 1);
        assert_eq!(report[12..16], [0x80, 0, 0, 0], "half a second");
        assert_eq!(report[16..20], [1, 2, 3, 4]);
        assert_eq!(report[20..24], [0, 0, 0, 5]);
        assert_eq!(report[24..28], 1000u32.to_be_bytes());
    }

    proptest::proptest! {
        #[test]
        fn any_access_unit_round_trips(
            sizes in proptest::collection::vec(1usize..3000, 1..6),
            max_payload in 3usize..1500,
        ) {
            let au: Vec<Bytes> = sizes.iter().map(|&s| nal(0x41, s - 1)).collect();
            let mut p = H264Packetizer::new(9, 100, max_payload);
            let packets = packetize_all(&mut p, &au, 42);
            proptest::prop_assert!(packets.iter().all(|p| p.payload.len() <= max_payload));
            let markers: Vec<bool> = packets.iter().map(|p| p.marker).collect();
            proptest::prop_assert_eq!(markers.iter().filter(|m| **m).count(), 1);
            proptest::prop_assert_eq!(markers.last(), Some(&true));
            proptest::prop_assert_eq!(
                depacketize(&packets),
                au.iter().map(|n| n.to_vec()).collect::<Vec<_>>()
            );
        }
    }
}
