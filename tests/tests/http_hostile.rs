//! Hostile clients against the HTTP API. The real box records a camera from the test RTSP server
//! while it gets wrong tokens, path tricks, odd methods, absurd and overlapping `Range` headers,
//! 1,000 idle connections and a client that opens a clip and never reads: every request gets a
//! clean error, other clients are answered, the box holds no more sockets than its limit, and the
//! recording keeps every frame the camera sent (one unbroken range). In process, with short
//! limits: an idle socket is closed after the header timeout, a full server makes room by
//! closing the oldest idle connection, and stalled downloads give their slots back.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use edgenvr::media::synthetic;
use edgenvr::serve::{HttpLimits, HttpServer, Token, MAX_CLIP_DOWNLOADS};
use edgenvr::store::{Store, WriterOptions};
use edgenvr_tests::bins;
use edgenvr_tests::clips::{make_clip, Codec, GOP_FRAMES};
use edgenvr_tests::edgenvr_box::{init_store, spawn_run};
use edgenvr_tests::recording::store_ls;
use edgenvr_tests::rtsp_server::RtspServer;
use edgenvr_tests::test_store::{init_store_of_1mib_slots, record_gops, WALL_START_MS};

/// A safety net for each step on a loaded 2-core machine; never a timing assertion.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);
const TOKEN: &str = "hostile-test-token-0123456789";
/// Idle connections opened at once.
const IDLE_CONNECTIONS: usize = 1_000;

/// An HTTP answer: status, headers (lower-case names) and body.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `raw` (a whole request, `Connection: close` or not) and reads the answer to the end of
/// the connection; `None` when the server closed without an answer.
fn exchange(addr: SocketAddr, raw: &[u8]) -> Option<Answer> {
    let mut socket = TcpStream::connect(addr).expect("connect");
    socket.set_read_timeout(Some(STEP_TIMEOUT)).unwrap();
    // The server may answer and close before it read everything (a head over its limit).
    let _ = socket.write_all(raw);
    let mut bytes = Vec::new();
    let _ = socket.read_to_end(&mut bytes);
    parse_answer(&bytes)
}

fn parse_answer(bytes: &[u8]) -> Option<Answer> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Some(Answer {
        status,
        headers,
        body: bytes[end + 4..].to_vec(),
    })
}

fn get(addr: SocketAddr, target: &str, extra_headers: &str) -> Option<Answer> {
    exchange(
        addr,
        format!("GET {target} HTTP/1.1\r\nHost: box\r\nConnection: close\r\n{extra_headers}\r\n")
            .as_bytes(),
    )
}

fn bearer() -> String {
    format!("Authorization: Bearer {TOKEN}\r\n")
}

/// The clip URL of `camera` over the whole recording.
fn clip_target(camera: &str) -> String {
    format!("/api/clip.mp4?camera={camera}&from=0&to=9999999999999")
}

/// Open descriptors of process `pid`.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A socket with a tiny receive buffer, for a client that will not read.
fn small_buffer_socket() -> tokio::net::TcpSocket {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket
}

#[test]
fn hostile_clients_get_errors_and_the_box_keeps_recording() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let clip = make_clip(work.path(), Codec::H264, 4)?;
    let server = RtspServer::start(&[("/cam", &clip)], None)?;
    let store = work.path().join("store");
    init_store(&store, &["--size", "64MiB", "--slot-size", "2MiB"])?;
    let config = work.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\ndir = \"{}\"\nsegment = \"4s\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
             token = \"{TOKEN}\"\n[[camera]]\nname = \"front\"\nurl = \"{}\"\n",
            store.display(),
            server.url("/cam", None)
        ),
    )?;
    let mut edgenvr = spawn_run(&config)?;
    let addr: SocketAddr = edgenvr.wait_for_listener("http", STEP_TIMEOUT)?.parse()?;
    edgenvr.wait_for_line("streaming", STEP_TIMEOUT)?;
    // Two GOPs recorded: the clip requests below have video to plan.
    server.wait_frames("/cam", 3 * u64::from(GOP_FRAMES), STEP_TIMEOUT)?;
    let baseline_fds = open_fds(edgenvr.id());

    // Wrong tokens: 401 (or 431 for a head over the limit), never the listing.
    let long_token = "x".repeat(60_000);
    for extra in [
        String::new(),
        "Authorization: Bearer wrong\r\n".to_owned(),
        format!("Authorization: Bearer {}\r\n", &TOKEN[..TOKEN.len() - 1]),
        format!("Authorization: Bearer {TOKEN}x\r\n"),
        "Authorization: Basic YWRtaW46c2VjcmV0\r\n".to_owned(),
        format!("Authorization: bearer{TOKEN}\r\n"),
        format!("Authorization: Bearer {long_token}\r\n"),
    ] {
        let answer = get(addr, "/api/recordings", &extra).expect("an answer");
        assert!(
            matches!(answer.status, 401 | 431),
            "{extra:.60}: {answer:?}"
        );
    }
    for query in [
        "?token=wrong",
        "?token=",
        "?token=%00",
        "?tok=x&token=wrong",
    ] {
        let answer = get(addr, &format!("/api/recordings{query}"), "").expect("an answer");
        assert_eq!(answer.status, 401, "{query}");
    }

    // Path tricks and odd methods, with the right token: nothing but the two endpoints exists.
    let long_path = format!("/api/{}", "a/".repeat(4_000));
    let huge_path = format!("/{}", "b".repeat(80_000));
    for target in [
        "/api/../api/recordings",
        "/api/recordings/../clip.mp4",
        "/api%2Frecordings",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/..%2f..%2fetc/passwd",
        "//api//recordings",
        "/api/recordings%00",
        long_path.as_str(),
        huge_path.as_str(),
    ] {
        let answer = get(addr, target, &bearer());
        if let Some(answer) = answer {
            assert!(
                matches!(answer.status, 400 | 404 | 414 | 431),
                "{:.80}: {answer:?}",
                target
            );
        }
    }
    for method in ["POST", "PUT", "DELETE", "PATCH", "TRACE", "BREW", "OPTIONS"] {
        let raw = format!(
            "{method} /api/recordings HTTP/1.1\r\nHost: box\r\nConnection: close\r\n{}\
             Content-Length: 0\r\n\r\n",
            bearer()
        );
        let answer = exchange(addr, raw.as_bytes()).expect("an answer");
        assert!(matches!(answer.status, 400 | 405), "{method}: {answer:?}");
    }
    for raw in [
        &b"GET /\r\n\r\n"[..],
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 TLS hello\r\n\r\n",
        b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n",
        b"GET /api/recordings HTTP/9.9\r\nHost: box\r\n\r\n",
    ] {
        // A clean error or a closed connection; the box stays up (checked below).
        if let Some(answer) = exchange(addr, raw) {
            assert!(answer.status >= 400, "{answer:?}");
        }
    }

    // Ranges: absurd, overlapping, many; the answer is whole (200), a part (206) or 416, and
    // the body is exactly as long as the headers say.
    let whole = get(addr, &clip_target("front"), &bearer()).expect("a clip");
    assert_eq!(whole.status, 200, "{:?}", whole.headers);
    let overlapping = format!("bytes={}", vec!["0-1000"; 500].join(","));
    for (range, expected) in [
        (overlapping.as_str(), 200),
        ("bytes=0-0,0-0,1-1", 200),
        ("bytes=99999999999999999999999-", 200),
        ("bytes=0-18446744073709551615", 206),
        ("bytes=18446744073709551615-", 416),
        ("bytes=-18446744073709551615", 206),
        ("bytes=-0", 416),
        ("bytes=5-1", 200),
        ("bytes=", 200),
        ("bytes=--5", 200),
        ("bytes=0x10-0x20", 200),
        ("pages=1-2", 200),
    ] {
        let answer = get(
            addr,
            &clip_target("front"),
            &format!("{}Range: {range}\r\n", bearer()),
        )
        .expect("an answer");
        assert_eq!(answer.status, expected, "{range:.60}");
        if expected != 416 {
            let length: u64 = answer.header("content-length").unwrap().parse()?;
            assert_eq!(answer.body.len() as u64, length, "{range:.60}");
        }
    }

    // 1,000 idle connections: the box holds at most its limit of them, and still answers.
    let mut idle = Vec::with_capacity(IDLE_CONNECTIONS);
    for _ in 0..IDLE_CONNECTIONS {
        idle.push(TcpStream::connect(addr)?);
    }
    let answer = get(addr, "/api/recordings", &bearer()).expect("answered among idle sockets");
    assert_eq!(answer.status, 200);
    let limit = HttpLimits::default().max_connections;
    let held = open_fds(edgenvr.id());
    eprintln!(
        "{held} descriptors open with {IDLE_CONNECTIONS} idle clients (baseline {baseline_fds})"
    );
    assert!(
        held <= baseline_fds + limit + 8,
        "{held} descriptors open with {IDLE_CONNECTIONS} idle clients (baseline {baseline_fds})"
    );

    // A client that starts a clip download and never reads; the others are still served.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let stuck = runtime.block_on(async {
        let socket = small_buffer_socket();
        let mut stream = socket.connect(addr).await?;
        tokio::io::AsyncWriteExt::write_all(
            &mut stream,
            format!(
                "GET {} HTTP/1.1\r\nHost: box\r\n{}\r\n",
                clip_target("front"),
                bearer()
            )
            .as_bytes(),
        )
        .await?;
        anyhow::Ok(stream)
    })?;
    let recordings = get(addr, "/api/recordings", &bearer()).expect("listing");
    assert_eq!(recordings.status, 200);
    let again = get(addr, &clip_target("front"), &bearer()).expect("a second clip");
    assert_eq!(again.status, 200);
    drop(idle);

    // The recording went on through all of it: every frame the camera sent is stored, in one
    // range, but for the GOP in flight when the box stopped.
    let sent_before = server.frames_sent("/cam");
    server.wait_frames("/cam", sent_before + u64::from(GOP_FRAMES), STEP_TIMEOUT)?;
    drop(stuck);
    let status = edgenvr.terminate(STEP_TIMEOUT)?;
    assert!(status.success(), "{status}");
    let sent = server.wait_idle("/cam", 1, STEP_TIMEOUT)?;
    let listing = store_ls(&bins::edgenvr(), &store)?;
    let ranges = listing["cameras"][0]["ranges"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(ranges.len(), 1, "{listing}");
    let frames = ranges[0]["frames"].as_u64().unwrap_or(0);
    assert!(
        frames + 2 * u64::from(GOP_FRAMES) >= sent && frames <= sent,
        "the camera sent {sent} frames, {frames} were recorded: {listing}"
    );
    assert!(
        !edgenvr.stderr().contains("panicked"),
        "{}",
        edgenvr.stderr()
    );
    Ok(())
}

/// A store with `seconds` of synthetic 2 Mbit/s video (1 s GOPs) for the in-process server.
fn synthetic_store(dir: &Path, seconds: i64) -> anyhow::Result<Store> {
    init_store_of_1mib_slots(dir, 48 << 20)?;
    let store = Store::open(dir)?;
    let params = synthetic::h264_params(640, 360);
    let gops: Vec<_> = (0..seconds)
        .map(|n| {
            let payloads = (0..25).map(|i| {
                bytes::Bytes::from(vec![(n + i) as u8; if i == 0 { 40_000 } else { 8_000 }])
            });
            synthetic::gop(
                &params,
                WALL_START_MS + n * 1_000,
                n * 90_000,
                3_600,
                payloads,
            )
        })
        .collect();
    record_gops(&store, WriterOptions::default(), &gops)?;
    Ok(store)
}

/// With short limits, in process: an idle socket is closed after the header timeout; at the
/// connection limit a new client gets room; downloads whose clients stopped reading give their
/// slots back after the write-stall timeout, so a new download is served.
#[test]
fn limits_close_idle_sockets_and_free_stalled_downloads() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let store = synthetic_store(work.path(), 30)?;
    let limits = HttpLimits {
        max_connections: 16,
        header_read_timeout: Duration::from_millis(500),
        write_stall_timeout: Duration::from_millis(500),
    };
    // The server runs on its own thread and runtime; this thread plays the clients.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let serving = std::thread::spawn(move || -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async move {
            let server = HttpServer::bind("127.0.0.1:0".parse()?, store, Token::new(TOKEN))
                .await?
                .with_limits(limits);
            addr_tx.send(server.local_addr()?)?;
            server
                .serve(async {
                    let _ = stop_rx.await;
                })
                .await?;
            anyhow::Ok(())
        })
    });
    let addr = addr_rx.recv_timeout(STEP_TIMEOUT)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    // An idle socket is closed by the server: reading it ends.
    let mut idle = TcpStream::connect(addr)?;
    idle.set_read_timeout(Some(STEP_TIMEOUT))?;
    assert_eq!(
        idle.read(&mut [0u8; 16])?,
        0,
        "the server closed the idle socket"
    );

    // At the limit, a new client is served: the oldest idle connection makes room.
    let full: Vec<TcpStream> = (0..limits.max_connections)
        .map(|_| TcpStream::connect(addr))
        .collect::<Result<_, _>>()?;
    assert_eq!(
        get(addr, "/api/recordings", &bearer()).map(|a| a.status),
        Some(200)
    );
    drop(full);

    // Every download slot taken by a client that never reads: the next download is refused
    // until a stalled one is dropped, then served.
    let clip = format!(
        "/api/clip.mp4?camera=front&from={WALL_START_MS}&to={}",
        WALL_START_MS + 30_000
    );
    let stuck = runtime.block_on(async {
        let mut stuck = Vec::new();
        for _ in 0..MAX_CLIP_DOWNLOADS {
            let mut stream = small_buffer_socket().connect(addr).await?;
            tokio::io::AsyncWriteExt::write_all(
                &mut stream,
                format!("GET {clip} HTTP/1.1\r\nHost: box\r\n{}\r\n", bearer()).as_bytes(),
            )
            .await?;
            stuck.push(stream);
        }
        anyhow::Ok(stuck)
    })?;
    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut refused = 0;
    loop {
        let answer = get(addr, &clip, &bearer()).expect("an answer");
        match answer.status {
            200 => break,
            503 => refused += 1,
            other => panic!("unexpected {other}: {answer:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "the stalled downloads kept their slots"
        );
        // Polling for the stalled downloads to be dropped; the answer is the event awaited.
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("{refused} downloads refused (503) before the stalled ones were dropped");
    // Each stalled download was cut short by the server: reading it now ends before its
    // Content-Length.
    runtime.block_on(async {
        for mut stream in stuck {
            let mut received = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut received).await;
            let answer = parse_answer(&received).expect("a head was sent");
            let length: usize = answer.header("content-length").unwrap().parse().unwrap();
            assert!(
                answer.body.len() < length,
                "{} of {length} bytes",
                answer.body.len()
            );
        }
    });
    let _ = stop_tx.send(());
    serving.join().expect("the server thread")?;
    Ok(())
}
