//! Clips end to end: `edgenvr run` records the real gst-rtsp-server in 10 s segments with the
//! HTTP API on; `nvrctl pull` fetches a 15 s clip across segment boundaries (including the
//! segment still being written), which ffprobe/ffmpeg play without an error or a timestamp jump;
//! a ranged request returns the same bytes, a download resumes, and the API refuses what it must
//! (401, 404, 400). One recording serves every assertion to keep real time low (~35 s).

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use edgenvr::store::{init_store, InitOptions};
use edgenvr_tests::bins;
use edgenvr_tests::clips::{make_clip, Codec, FPS, GOP_FRAMES};
use edgenvr_tests::ffprobe::{count_video_frames, decode_errors};
use edgenvr_tests::process::Process;
use edgenvr_tests::rtsp_server::RtspServer;
use nvrctl::http::BoxClient;

const TOKEN: &str = "clips-test-token-0123456789";
/// One GOP in ms (a key frame a second).
const GOP_MS: i64 = (GOP_FRAMES * 1000 / FPS) as i64;
/// 25 fps in 90 kHz ticks.
const FRAME_90K: i64 = 90_000 / FPS as i64;

/// Raw HTTP/1.1 GET without any token; returns the status line.
fn status_without_token(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer.lines().next().unwrap_or_default().to_owned()
}

/// Status and body of a GET with the token.
fn get(client: &BoxClient, url: &str, headers: &[(&str, String)]) -> (u16, Vec<u8>) {
    let mut response = client.get(url, headers).unwrap();
    let status = response.status().as_u16();
    let mut body = Vec::new();
    response
        .body_mut()
        .as_reader()
        .read_to_end(&mut body)
        .unwrap();
    (status, body)
}

/// Video packet timestamps (90 kHz) in file order.
fn packet_pts(path: &Path) -> Vec<i64> {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "packet=pts", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| l.trim().trim_end_matches(',').parse().unwrap())
        .collect()
}

fn nvrctl(args: &[&str], token: Option<&str>) -> std::process::Output {
    edgenvr_tests::nvrctl_cli::nvrctl(args, token).unwrap()
}

fn json_error(body: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap();
    value["error"].as_str().unwrap().to_owned()
}

#[test]
fn pull_a_clip_across_segments_and_the_api_refuses_what_it_must() {
    let work = tempfile::tempdir().unwrap();
    let clip = make_clip(work.path(), Codec::H264, 20).unwrap();
    let server = RtspServer::start(&[("/front", &clip)], None).unwrap();
    let store_dir = work.path().join("store");
    std::fs::create_dir(&store_dir).unwrap();
    // 12 slots of 2 MiB: 320x240 test video needs a few hundred KiB per 10 s segment.
    init_store(
        &store_dir,
        &InitOptions {
            size_bytes: 24 << 20,
            slot_bytes: Some(2 << 20),
            slot_count: None,
        },
        &mut |_| {},
    )
    .unwrap();
    let config = work.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\ndir = {dir:?}\nsegment = \"10s\"\n\n[[camera]]\nname = \"front\"\n\
             url = {url:?}\n\n[http]\nlisten = \"127.0.0.1:0\"\ntoken = {TOKEN:?}\n",
            dir = store_dir.display().to_string(),
            url = server.url("/front", None),
        ),
    )
    .unwrap();
    let mut box_ = Process::spawn(
        &bins::edgenvr(),
        &["run", "--config", config.to_str().unwrap()],
        &[("RUST_LOG", "info,edgenvr::store=debug")],
    )
    .unwrap();
    let listening = box_
        .wait_for_line("listening http ", Duration::from_secs(30))
        .unwrap();
    let addr = listening.rsplit(' ').next().unwrap().trim().to_owned();
    // The fourth segment starting means 30 s are recorded in three closed segments, and the
    // fourth is being written.
    box_.wait_for_lines("segment started", 4, Duration::from_secs(90))
        .unwrap();

    // nvrctl recordings: one continuous range.
    let listed = nvrctl(
        &["recordings", &addr, "--camera", "front", "--json"],
        Some(TOKEN),
    );
    assert!(listed.status.success(), "{listed:?}");
    let listing: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let ranges = listing["cameras"][0]["ranges"].as_array().unwrap().clone();
    assert_eq!(ranges.len(), 1, "{listing}");
    let start_ms = ranges[0]["start_ms"].as_i64().unwrap();
    let end_ms = ranges[0]["end_ms"].as_i64().unwrap();
    assert!(end_ms - start_ms >= 30_000, "{listing}");
    let table = nvrctl(&["recordings", &addr], Some(TOKEN));
    assert!(table.status.success(), "{table:?}");
    assert!(String::from_utf8_lossy(&table.stdout).contains("front"));

    // A 15 s clip ending half a GOP before the newest video: it spans the boundary at 20 s and
    // reaches into the segment still being written (which starts at 30 s).
    let to_ms = end_ms - GOP_MS / 2;
    let from_ms = to_ms - 15_000;
    assert!(from_ms < start_ms + 20_000 && to_ms > start_ms + 30_000);
    let output = work.path().join("clip.mp4");
    let pull_to = |file: &std::path::Path| {
        let (from, to) = (from_ms.to_string(), to_ms.to_string());
        let file = file.to_str().unwrap();
        let args = [
            "pull", &addr, "--camera", "front", "--from", &from, "--to", &to, "-o", file,
        ];
        nvrctl(&args, Some(TOKEN))
    };
    let pulled = pull_to(&output);
    assert!(pulled.status.success(), "{pulled:?}");
    let clip_bytes = std::fs::read(&output).unwrap();

    // Plays cleanly, with every frame, continuous timestamps and the asked length.
    assert_eq!(decode_errors(&output).unwrap(), "");
    let pts = packet_pts(&output);
    assert_eq!(count_video_frames(&output).unwrap(), pts.len() as u64);
    assert_eq!(pts.first(), Some(&0));
    let jumps: Vec<(usize, i64)> = pts
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[1] - w[0] != FRAME_90K)
        .map(|(i, w)| (i, w[1] - w[0]))
        .collect();
    assert!(jumps.is_empty(), "timestamp jumps: {jumps:?}");
    let duration_ms = pts.len() as i64 * 1000 / i64::from(FPS);
    assert!(
        (15_000..=15_000 + 2 * GOP_MS).contains(&duration_ms),
        "{duration_ms} ms"
    );

    // The box says where the clip starts and ends: within one GOP of each asked end.
    let client = BoxClient::new(&addr, TOKEN.to_owned());
    let url = client.url(
        "/api/clip.mp4",
        &[
            ("camera", "front".into()),
            ("from", from_ms.to_string()),
            ("to", to_ms.to_string()),
        ],
    );
    let response = client.get(&url, &[]).unwrap();
    let header = |name: &str| {
        let text = response.headers()[name].to_str().unwrap().to_owned();
        text.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    };
    let (clip_start, clip_end) = (header("x-clip-start"), header("x-clip-end"));
    assert!(
        clip_start <= from_ms && from_ms - clip_start < GOP_MS,
        "{clip_start}"
    );
    assert!(
        clip_end >= to_ms && clip_end - to_ms <= GOP_MS,
        "{clip_end}"
    );
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    drop(response);

    // The second half by Range is the same bytes as the second half of the download.
    let half = clip_bytes.len() / 2;
    let (status, second_half) = get(&client, &url, &[("Range", format!("bytes={half}-"))]);
    assert_eq!(status, 206);
    assert!(second_half == clip_bytes[half..], "ranged bytes differ");

    // An interrupted download resumes: the part file plus its ETag, then nvrctl pull again.
    let resumed = work.path().join("resumed.mp4");
    std::fs::write(work.path().join("resumed.mp4.part"), &clip_bytes[..half]).unwrap();
    std::fs::write(work.path().join("resumed.mp4.part.etag"), &etag).unwrap();
    let pulled = pull_to(&resumed);
    assert!(pulled.status.success(), "{pulled:?}");
    assert!(
        String::from_utf8_lossy(&pulled.stderr).contains(&format!("resumed at byte {half}")),
        "{pulled:?}"
    );
    assert!(std::fs::read(&resumed).unwrap() == clip_bytes);
    assert!(!work.path().join("resumed.mp4.part").exists());

    // No token, or a wrong one: 401, for every path (the page's `/` sends to its login form
    // instead). The token in the query works (VLC).
    for path in [
        "/api/recordings",
        "/api/clip.mp4?camera=front&from=0&to=1",
        "/api/no-such-thing",
        "/app.js",
    ] {
        assert!(
            status_without_token(&addr, path).starts_with("HTTP/1.1 401"),
            "{path}"
        );
    }
    assert!(status_without_token(&addr, "/").starts_with("HTTP/1.1 303"));
    let wrong = BoxClient::new(&addr, "wrong-token-0123456789".into());
    let (status, body) = get(&wrong, &wrong.url("/api/recordings", &[]), &[]);
    assert_eq!(status, 401);
    assert!(json_error(&body).contains("token"));
    let (status, _) = get(
        &wrong,
        &wrong.url("/api/recordings", &[("token", TOKEN.into())]),
        &[],
    );
    assert_eq!(status, 200);
    let refused = nvrctl(&["recordings", &addr], None);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no API token"));

    // Nothing recorded then: 404 with a JSON error.
    let clip_url = |from: String, to: String| {
        client.url(
            "/api/clip.mp4",
            &[("camera", "front".into()), ("from", from), ("to", to)],
        )
    };
    let (status, body) = get(
        &client,
        &clip_url(
            (end_ms + 3_600_000).to_string(),
            (end_ms + 7_200_000).to_string(),
        ),
        &[],
    );
    assert_eq!(status, 404);
    assert!(
        json_error(&body).contains("no video"),
        "{}",
        json_error(&body)
    );
    let (status, _) = get(
        &client,
        &client.url(
            "/api/clip.mp4",
            &[
                ("camera", "back".into()),
                ("from", from_ms.to_string()),
                ("to", to_ms.to_string()),
            ],
        ),
        &[],
    );
    assert_eq!(status, 404);

    // Reversed or malformed times: 400 naming the problem.
    let (status, body) = get(
        &client,
        &clip_url(to_ms.to_string(), from_ms.to_string()),
        &[],
    );
    assert_eq!(status, 400);
    assert!(json_error(&body).contains("after"), "{}", json_error(&body));
    let (status, body) = get(&client, &clip_url("noon".into(), to_ms.to_string()), &[]);
    assert_eq!(status, 400);
    assert!(json_error(&body).contains("from"), "{}", json_error(&body));
    let reversed = nvrctl(
        &[
            "pull",
            &addr,
            "--camera",
            "front",
            "--from",
            "-1m",
            "--to",
            "-2m",
            "-o",
            "/dev/null",
        ],
        Some(TOKEN),
    );
    assert!(!reversed.status.success());

    let status = box_.terminate(Duration::from_secs(30)).unwrap();
    assert!(status.success(), "{}", box_.stderr());
}
