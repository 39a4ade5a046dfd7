//! End to end: the real `edgenvr sim-camera` binary, bound on port 0, read by the real ffprobe and
//! ffmpeg over RTSP/TCP, and spoken to in raw bytes.
//!
//! Needs ffmpeg/ffprobe on PATH. Real time: about 8 s in all.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use edgenvr_tests::bins;
use edgenvr_tests::sim_camera::SimCamera;

/// Any external tool that has not finished in this long is hung; the test fails instead of
/// hanging CI. Generous: the longest run here records 4 s of video.
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

fn wait_with_timeout(child: &mut Child) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + TOOL_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        // Polling a child's exit: std offers no wait with a timeout.
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Runs a tool to completion (killing it after [`TOOL_TIMEOUT`]) and returns its output.
fn run(program: &str, args: &[&str]) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_thread = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stdout.read_to_end(&mut bytes);
        bytes
    });
    let err_thread = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stderr.read_to_end(&mut bytes);
        bytes
    });
    let status = wait_with_timeout(&mut child);
    if status.is_none() {
        let _ = child.kill();
    }
    let output = Output {
        status: status.unwrap_or_else(|| child.wait().expect("wait for killed tool")),
        stdout: out_thread.join().unwrap_or_default(),
        stderr: err_thread.join().unwrap_or_default(),
    };
    assert!(
        status.is_some(),
        "{program} {args:?} hung; stderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// ffprobe's `codec,width,height` for the first video stream of an RTSP URL, received over
/// `transport` (`tcp` or `udp`).
fn probe_stream(url: &str, transport: &str) -> String {
    let out = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-rtsp_transport",
            transport,
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "csv=p=0",
            url,
        ],
    );
    assert!(out.status.success(), "ffprobe {url}: {}", text(&out.stderr));
    text(&out.stdout).trim().to_owned()
}

#[test]
fn ffprobe_sees_the_built_in_clip_on_every_path_at_once_over_tcp_and_udp() {
    let camera = SimCamera::start(&["--path", "front", "--path", "cam/back"]).expect("sim-camera");
    let probes = [
        (camera.url("front"), "tcp"),
        (camera.url("cam/back"), "tcp"),
        (camera.url("front"), "udp"),
    ]
    .map(|(url, transport)| std::thread::spawn(move || probe_stream(&url, transport)));
    for probe in probes {
        assert_eq!(probe.join().unwrap(), "h264,640,360");
    }
    let log = camera.log();
    assert!(
        camera.terminate(),
        "SIGTERM did not end with exit 0; log:\n{log}"
    );
}

#[test]
fn a_recording_across_the_loop_point_decodes_and_has_continuous_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("short.h264");
    let recording = dir.path().join("out.mp4");
    let clip_arg = clip.to_str().unwrap();
    // A 2 s clip (two 1 s GOPs) so that a 4 s recording crosses the loop point; small and
    // ultrafast so making it costs a fraction of a second.
    let made = run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x180:rate=25:duration=2",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-bf",
            "0",
            "-g",
            "25",
            "-sc_threshold",
            "0",
            "-pix_fmt",
            "yuv420p",
            "-f",
            "h264",
            clip_arg,
        ],
    );
    assert!(made.status.success(), "make clip: {}", text(&made.stderr));

    let camera = SimCamera::start(&["--clip", clip_arg, "--path", "loop"]).expect("sim-camera");
    let recorded = run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-y",
            "-rtsp_transport",
            "tcp",
            "-i",
            &camera.url("loop"),
            "-t",
            "4",
            "-c",
            "copy",
            recording.to_str().unwrap(),
        ],
    );
    assert!(
        recorded.status.success(),
        "record: {}",
        text(&recorded.stderr)
    );

    let decoded = run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-i",
            recording.to_str().unwrap(),
            "-f",
            "null",
            "-",
        ],
    );
    assert!(decoded.status.success());
    assert_eq!(text(&decoded.stderr), "", "decode errors in the recording");

    let stream = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,width,height,time_base",
            "-of",
            "csv=p=0",
            recording.to_str().unwrap(),
        ],
    );
    assert_eq!(text(&stream.stdout).trim(), "h264,320,180,1/90000");

    let packets = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts,flags",
            "-of",
            "csv=p=0",
            recording.to_str().unwrap(),
        ],
    );
    let packets: Vec<(i64, bool)> = text(&packets.stdout)
        .lines()
        .map(|line| {
            let (pts, flags) = line.split_once(',').expect("pts,flags");
            (pts.parse().expect("numeric pts"), flags.starts_with('K'))
        })
        .collect();
    // 4 s at 25 fps; the clip is 50 frames long, so this crosses the loop point at least once.
    assert!(
        packets.len() >= 90,
        "only {} frames recorded",
        packets.len()
    );
    // ffmpeg's RTSP demuxer gives the very first frame no timestamp, and the muxer squeezes it
    // in one tick before the second (the same happens against gst-rtsp-server). From the second
    // frame on: exactly one frame duration (90 kHz / 25 fps) between every pair of frames.
    let steps: Vec<i64> = packets[1..]
        .windows(2)
        .skip(1)
        .map(|w| w[1].0 - w[0].0)
        .collect();
    assert_eq!(
        packets[1].0, 1,
        "ffmpeg's first-frame quirk changed; revisit this test"
    );
    assert!(
        steps.iter().all(|&step| step == 3600),
        "timestamp steps that are not 3600: {:?}",
        steps
            .iter()
            .enumerate()
            .filter(|(_, s)| **s != 3600)
            .collect::<Vec<_>>()
    );
    // Key frames where the clip has them, loop after loop: every 25th frame.
    let keys: Vec<usize> = (0..packets.len()).filter(|&i| packets[i].1).collect();
    let expected: Vec<usize> = (0..packets.len()).step_by(25).collect();
    assert_eq!(keys, expected);
}

/// Sends raw bytes on a new connection and returns what the server answers before closing or
/// going quiet.
fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut socket = TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    socket.write_all(request).unwrap();
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    // One response is expected; it ends with its body (Content-Length) or the connection closes.
    while let Ok(n) = socket.read(&mut buf) {
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
        let text = text(&reply);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|l| l.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                break;
            }
        }
    }
    text(&reply)
}

#[test]
fn garbage_and_unknown_paths_get_error_replies_and_the_server_keeps_serving() {
    let camera = SimCamera::start(&["--path", "front"]).expect("sim-camera");
    let garbage = exchange(camera.addr(), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(garbage.starts_with("RTSP/1.0 400 "), "{garbage}");
    let binary = exchange(
        camera.addr(),
        &[0xff, 0x00, 0x13, 0x37, b'\r', b'\n', b'\r', b'\n'],
    );
    assert!(binary.starts_with("RTSP/1.0 400 "), "{binary}");
    let not_found = exchange(
        camera.addr(),
        format!(
            "DESCRIBE {} RTSP/1.0\r\nCSeq: 2\r\n\r\n",
            camera.url("back")
        )
        .as_bytes(),
    );
    assert!(not_found.starts_with("RTSP/1.0 404 "), "{not_found}");
    assert!(not_found.contains("CSeq: 2\r\n"), "{not_found}");
    // A client that vanishes mid-request.
    drop(TcpStream::connect(camera.addr()).and_then(|mut s| s.write_all(b"DESCRIBE rtsp://")));
    let options = exchange(camera.addr(), b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n");
    assert!(options.starts_with("RTSP/1.0 200 OK\r\n"), "{options}");
    assert!(
        options.contains("Public: OPTIONS, DESCRIBE, SETUP, PLAY"),
        "{options}"
    );
    assert_eq!(probe_stream(&camera.url("front"), "tcp"), "h264,640,360");
}

#[test]
fn a_missing_clip_file_is_a_clear_error() {
    let out = run(
        bins::edgenvr().to_str().unwrap(),
        &[
            "sim-camera",
            "--listen",
            "127.0.0.1:0",
            "--clip",
            "/nonexistent/clip.h264",
        ],
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cannot serve clip /nonexistent/clip.h264: cannot read the file: "),
        "{stderr}"
    );
}
