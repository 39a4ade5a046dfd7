//! `nvrctl decode` on a byte stream captured from a real state port, with one frame damaged.

use std::time::Duration;

use edgenvr::publish::tcp::{StatePort, TcpStateConfig};
use edgenvr::state::{SensorSpec, SensorValue, StateBus};
use edgenvr_proto::{Body, Feed, FrameDecoder, ReportPolicy, Role};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// A safety net so a broken build fails instead of hanging CI; never a timing assertion.
const GIVE_UP: Duration = Duration::from_secs(30);

/// Reads from `socket` into `capture` until it holds `frames` more frames; returns the offsets
/// of the frames seen, with their kind.
async fn capture_frames(
    socket: &mut TcpStream,
    decoder: &mut FrameDecoder,
    capture: &mut Vec<u8>,
    frames: usize,
) -> Vec<(u64, &'static str)> {
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    while seen.len() < frames {
        let read = tokio::time::timeout(GIVE_UP, socket.read(&mut chunk))
            .await
            .expect("the box sends")
            .expect("read");
        assert!(read > 0, "the box closed the connection");
        capture.extend_from_slice(&chunk[..read]);
        let mut input = &chunk[..read];
        loop {
            match decoder.feed(input) {
                Feed::NeedMore => break,
                Feed::Frame {
                    frame,
                    offset,
                    rest,
                } => {
                    let kind = match frame.body {
                        Body::Hello(_) => "hello",
                        Body::Catalog(_) => "catalog",
                        Body::Snapshot(_) => "snapshot",
                        Body::Changes(_) => "changes",
                        Body::Heartbeat { .. } => "heartbeat",
                        Body::CatalogPack(_) => "catalog_pack",
                        Body::PackedSnapshot(_) => "packed_snapshot",
                    };
                    seen.push((offset, kind));
                    input = rest;
                }
                Feed::Rejected { error, .. } => panic!("the box sent a bad frame: {error}"),
            }
        }
    }
    seen
}

#[tokio::test]
async fn decode_reports_a_damaged_frame_and_decodes_the_rest() {
    let bus = StateBus::new();
    let pir = bus
        .register(SensorSpec::binary("front_door_pir", Role::Sensor))
        .unwrap();
    let temperature = bus
        .register(SensorSpec::scalar(
            "cabinet_temperature",
            "°C",
            Role::Health,
            ReportPolicy::EVERY_CHANGE,
        ))
        .unwrap();
    bus.set_now(pir, SensorValue::Binary(false)).unwrap();
    let port = StatePort::bind("127.0.0.1:0").await.unwrap();
    let addr = port.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(
        port.serve(bus.clone(), TcpStateConfig::new("garage"), async {
            let _ = stopped.await;
        }),
    );

    let mut socket = TcpStream::connect(addr).await.unwrap();
    let mut decoder = FrameDecoder::new();
    let mut capture = Vec::new();
    // hello, catalog (a pack: this raw client sent no hello naming a catalog it has), snapshot
    let mut frames = capture_frames(&mut socket, &mut decoder, &mut capture, 3).await;
    bus.set_now(pir, SensorValue::Binary(true)).unwrap();
    frames.extend(capture_frames(&mut socket, &mut decoder, &mut capture, 1).await);
    bus.set_now(temperature, SensorValue::Scalar(21.5)).unwrap();
    frames.extend(capture_frames(&mut socket, &mut decoder, &mut capture, 1).await);
    let kinds: Vec<&str> = frames.iter().map(|(_, kind)| *kind).collect();
    assert_eq!(
        kinds,
        [
            "hello",
            "catalog_pack",
            "packed_snapshot",
            "changes",
            "changes"
        ]
    );

    // Damage the PIR's changes frame.
    let damaged_at = frames[3].0;
    let next_at = frames[4].0;
    capture[damaged_at as usize + 2] ^= 0x04;

    let mut out = Vec::new();
    let summary = nvrctl::decode::decode(&mut &capture[..], &mut out).unwrap();
    assert_eq!(
        (summary.frames, summary.rejected, summary.truncated_bytes),
        (4, 1, 0)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 5, "{lines:#?}");
    assert_eq!(lines[0]["frame"], "hello");
    assert_eq!(lines[0]["box"], "garage");
    assert_eq!(lines[1]["frame"], "catalog_pack");
    assert_eq!(lines[1]["sensors"][1]["name"], "cabinet_temperature");
    assert_eq!(lines[2]["packed"], true);
    assert_eq!(lines[2]["values"][0]["sensor"], "front_door_pir");
    assert_eq!(lines[3]["error"], "checksum mismatch");
    assert_eq!(lines[3]["offset"], damaged_at);
    assert_eq!(lines[3]["resync_offset"], next_at);
    assert_eq!(lines[4]["frame"], "changes");
    assert_eq!(lines[4]["offset"], next_at);
    assert_eq!(lines[4]["values"][0]["sensor"], "cabinet_temperature");
    assert_eq!(lines[4]["values"][0]["value"], 21.5);
    // The lost frame shows as a sequence gap on the next one.
    assert!(lines[4]["warning"]
        .as_str()
        .unwrap()
        .contains("sequence gap"));

    drop(socket);
    let _ = stop.send(());
    server.await.unwrap();
}
