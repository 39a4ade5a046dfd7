//! The `nvrctl decode` command itself: a stream on standard input with a damaged frame and a
//! truncated tail.

use std::io::Write;
use std::process::{Command, Stdio};

use edgenvr_proto::{encode, Batch, Body, Change, Frame, Hello, SensorId, Value};

fn wire(frame: &Frame<'_>) -> Vec<u8> {
    let mut buf = [0u8; 1024];
    encode(frame, &mut buf).expect("fits").to_vec()
}

#[test]
fn decode_from_stdin_reports_damage_and_truncation() {
    let hello = wire(&Frame {
        seq: 0,
        body: Body::Hello(Hello {
            version: 1,
            box_name: "garage",
            catalog: None,
        }),
    });
    let mut damaged = wire(&Frame {
        seq: 1,
        body: Body::Heartbeat { time_ms: 5 },
    });
    damaged[1] ^= 0x01;
    let heartbeat = wire(&Frame {
        seq: 2,
        body: Body::Heartbeat { time_ms: 6 },
    });
    let change = [Change {
        id: SensorId(0),
        value: Value::Binary(true),
    }];
    let truncated = wire(&Frame {
        seq: 3,
        body: Body::Changes(Batch::new(7, &change)),
    });
    let mut stream = hello.clone();
    stream.extend_from_slice(&damaged);
    stream.extend_from_slice(&heartbeat);
    stream.extend_from_slice(&truncated[..4]);

    let mut child = Command::new(env!("CARGO_BIN_EXE_nvrctl"))
        .args(["decode", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("nvrctl runs");
    child.stdin.take().unwrap().write_all(&stream).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert_eq!(lines[0]["frame"], "hello");
    assert_eq!(lines[1]["error"], "checksum mismatch");
    assert_eq!(lines[1]["offset"], hello.len());
    assert_eq!(lines[1]["resync_offset"], hello.len() + damaged.len());
    assert_eq!(lines[2]["frame"], "heartbeat");
    assert_eq!(lines[2]["seq"], 2);
    assert_eq!(lines[3]["error"], "stream ends inside a frame");
    assert_eq!(lines[3]["skipped_bytes"], 4);
}

#[test]
fn decode_of_a_missing_file_fails_with_its_name() {
    let output = Command::new(env!("CARGO_BIN_EXE_nvrctl"))
        .args(["decode", "/nonexistent/capture.bin"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/capture.bin"), "{stderr}");
}
