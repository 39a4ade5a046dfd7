//! The page's routes, the login and the live stream against a real [`HttpServer`] on a
//! loopback port, spoken to in raw HTTP/1.1 (what a browser sends, without a browser: the
//! browser itself is driven in `tests/tests/ui_browser.rs`).

use std::time::Duration;

use edgenvr_proto::Role;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::serve::{HttpServer, Token};
use crate::state::{SensorSpec, SensorValue, StateBus};
use crate::store::{init_store, InitOptions, Store};

const TOKEN: &str = "page-test-token-0123456789";
/// Guards against a hang only.
const HANG_GUARD: Duration = Duration::from_secs(10);

struct Running {
    addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn start(bus: &StateBus, ui: bool) -> Running {
    let dir = tempfile::tempdir().unwrap();
    init_store(
        dir.path(),
        &InitOptions {
            size_bytes: 2 << 20,
            slot_bytes: Some(1 << 20),
            slot_count: None,
        },
        &mut |_| {},
    )
    .unwrap();
    let store = Store::open(dir.path()).unwrap();
    let server = HttpServer::bind("127.0.0.1:0".parse().unwrap(), store, Token::new(TOKEN))
        .await
        .unwrap()
        .with_live_state(bus.clone())
        .with_ui(ui);
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stop,
        served,
        _dir: dir,
    }
}

/// A parsed answer: status, headers (names lower-case), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn parse(raw: &str) -> Answer {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// One request with `Connection: close`; the whole answer.
async fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        text.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    text.push_str("\r\n");
    text.push_str(body);
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(HANG_GUARD, stream.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    parse(&String::from_utf8_lossy(&raw))
}

async fn get(addr: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> Answer {
    request(addr, "GET", path, headers, "").await
}

/// The `name=value` of the login cookie in a `Set-Cookie` header.
fn cookie_pair(answer: &Answer) -> String {
    let set_cookie = answer.header("set-cookie").expect("a Set-Cookie header");
    set_cookie.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn login_sets_an_http_only_strict_cookie_that_opens_the_page_and_the_api() {
    let bus = StateBus::new();
    let server = start(&bus, true).await;
    let addr = server.addr;

    // Without a token: the page sends to the login, its script and the API refuse.
    let page = get(addr, "/", &[]).await;
    assert_eq!(page.status, 303);
    assert_eq!(page.header("location"), Some("/login"));
    assert_eq!(get(addr, "/app.js", &[]).await.status, 401);
    assert_eq!(get(addr, "/api/recordings", &[]).await.status, 401);
    assert_eq!(get(addr, "/api/live", &[]).await.status, 401);

    // The login page and its assets are public, and carry the policy like every response.
    let login = get(addr, "/login", &[]).await;
    assert_eq!(login.status, 200);
    assert!(login.body.contains("name=\"token\""));
    for path in ["/login.js", "/style.css", "/icon.svg"] {
        assert_eq!(get(addr, path, &[]).await.status, 200, "{path}");
    }
    let csp = login.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'self'") && csp.contains("script-src 'self'"));
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    assert!(csp.contains("media-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(login.header("x-content-type-options"), Some("nosniff"));
    let refused_api = get(addr, "/api/recordings", &[]).await;
    assert!(refused_api.header("content-security-policy").is_some());

    // A wrong token: 401, the form again with its note shown, and no cookie.
    let wrong = request(addr, "POST", "/login", &[], "token=not-the-token-0000").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("<body class=\"refused\">"));
    assert!(wrong.header("set-cookie").is_none());

    // The right token (form-encoded): the cookie, and on to the page.
    let body = format!(
        "token={}",
        url::form_urlencoded::byte_serialize(TOKEN.as_bytes()).collect::<String>()
    );
    let good = request(addr, "POST", "/login", &[], &body).await;
    assert_eq!(good.status, 303);
    assert_eq!(good.header("location"), Some("/"));
    let set_cookie = good.header("set-cookie").unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(flag), "{set_cookie}");
    }
    let cookie = cookie_pair(&good);

    let page = get(addr, "/", &[("Cookie", &cookie)]).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<script src=\"/app.js\""));
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    let etag = page.header("etag").unwrap().to_owned();
    let again = get(addr, "/", &[("Cookie", &cookie), ("If-None-Match", &etag)]).await;
    assert_eq!(again.status, 304);
    assert_eq!(
        get(addr, "/app.js", &[("Cookie", &cookie)]).await.status,
        200
    );
    let listing = get(addr, "/api/recordings", &[("Cookie", &cookie)]).await;
    assert_eq!(listing.status, 200, "{}", listing.body);
    // Logged in, the login page sends on to the page.
    assert_eq!(
        get(addr, "/login", &[("Cookie", &cookie)]).await.status,
        303
    );

    // The bearer header and ?token= keep working for the API.
    let bearer = format!("Bearer {TOKEN}");
    let by_header = get(addr, "/api/recordings", &[("Authorization", &bearer)]).await;
    assert_eq!(by_header.status, 200);
    let by_query = get(addr, &format!("/api/recordings?token={TOKEN}"), &[]).await;
    assert_eq!(by_query.status, 200);
    // A bookmark with the token logs in and drops it from the address.
    let bookmark = get(addr, &format!("/?token={TOKEN}"), &[]).await;
    assert_eq!(bookmark.status, 303);
    assert_eq!(bookmark.header("location"), Some("/"));
    assert_eq!(cookie_pair(&bookmark), cookie);

    // A forged cookie is no login.
    let forged = get(addr, "/", &[("Cookie", "edgenvr_token=guess-0123456789")]).await;
    assert_eq!(forged.status, 303);
    // A change authenticated by the cookie from another site is refused; from the page it
    // passes the check (and meets the 404 of a route this server does not have).
    let cross_site = [
        ("Cookie", cookie.as_str()),
        ("Origin", "http://evil.example"),
        ("Sec-Fetch-Site", "cross-site"),
    ];
    let forbidden = request(addr, "POST", "/api/outputs/light?state=on", &cross_site, "").await;
    assert_eq!(forbidden.status, 403);
    let origin = format!("http://{addr}");
    let same_site = [
        ("Cookie", cookie.as_str()),
        ("Origin", origin.as_str()),
        ("Sec-Fetch-Site", "same-origin"),
    ];
    let passed = request(addr, "POST", "/api/outputs/light?state=on", &same_site, "").await;
    assert_ne!(passed.status, 403);
    assert_ne!(passed.status, 401);

    // Logging out clears the cookie.
    let out = request(addr, "POST", "/logout", &[("Cookie", &cookie)], "").await;
    assert_eq!(out.status, 303);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));

    server.stop.send(()).unwrap();
    server.served.await.unwrap().unwrap();
}

#[tokio::test]
async fn without_ui_there_is_no_page_but_the_api_and_live_state_stay() {
    let bus = StateBus::new();
    let server = start(&bus, false).await;
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("Authorization", bearer.as_str())];
    assert_eq!(get(server.addr, "/", &auth).await.status, 404);
    assert_eq!(get(server.addr, "/login", &[]).await.status, 401);
    assert_eq!(get(server.addr, "/api/recordings", &auth).await.status, 200);
    server.stop.send(()).unwrap();
    server.served.await.unwrap().unwrap();
}

/// Reads the stream until `text` has arrived (or the guard runs out); returns all read so far.
async fn read_until(stream: &mut TcpStream, seen: &mut String, text: &str) {
    let mut buffer = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    while !seen.contains(text) {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buffer))
            .await
            .unwrap_or_else(|_| panic!("no {text:?} in {seen:?}"))
            .unwrap();
        assert!(n > 0, "stream closed before {text:?}: {seen:?}");
        seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
}

#[tokio::test]
async fn the_live_stream_sends_a_snapshot_then_each_change_and_ends_at_shutdown() {
    let bus = StateBus::new();
    let pir = bus
        .register(SensorSpec::binary("pir-hall", Role::Sensor))
        .unwrap();
    bus.set(pir, SensorValue::Binary(false), 1_000).unwrap();
    let server = start(&bus, true).await;

    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "GET /api/live?token={TOKEN} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
        server.addr
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, "\n\n").await;
    read_until(&mut stream, &mut seen, "event: snapshot").await;
    read_until(&mut stream, &mut seen, "\"pir-hall\"").await;
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    assert!(seen
        .to_ascii_lowercase()
        .contains("content-type: text/event-stream"));
    assert!(seen.contains("retry: 2000"), "{seen}");

    bus.set(pir, SensorValue::Binary(true), 2_000).unwrap();
    read_until(&mut stream, &mut seen, "event: change").await;
    read_until(&mut stream, &mut seen, "\"time_ms\":2000").await;
    let change_line = seen
        .lines()
        .skip_while(|l| *l != "event: change")
        .nth(1)
        .unwrap();
    let change: serde_json::Value =
        serde_json::from_str(change_line.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(change["id"], pir.0);
    assert_eq!(change["value"], true);

    // A sensor that joins later is announced before its first change.
    let door = bus
        .register(SensorSpec::binary("door", Role::Sensor))
        .unwrap();
    bus.set(door, SensorValue::Binary(true), 3_000).unwrap();
    read_until(&mut stream, &mut seen, "\"time_ms\":3000").await;
    let sensor_at = seen.find("event: sensor").expect("a sensor event");
    assert!(sensor_at < seen.rfind("event: change").unwrap());

    // Shutdown ends the stream (the server does not wait on an open page).
    server.stop.send(()).unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(HANG_GUARD, stream.read_to_end(&mut rest))
        .await
        .expect("the stream ends at shutdown")
        .unwrap();
    tokio::time::timeout(HANG_GUARD, server.served)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn live_streams_are_bounded() {
    let bus = StateBus::new();
    let pir = bus
        .register(SensorSpec::binary("pir-hall", Role::Sensor))
        .unwrap();
    let server = start(&bus, true).await;
    let mut open = Vec::new();
    for _ in 0..crate::serve::live::MAX_LIVE_CLIENTS {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let request = format!(
            "GET /api/live?token={TOKEN} HTTP/1.1\r\nHost: {}\r\n\r\n",
            server.addr
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut seen = String::new();
        read_until(&mut stream, &mut seen, "event: snapshot").await;
        open.push(stream);
    }
    let refused = get(server.addr, &format!("/api/live?token={TOKEN}"), &[]).await;
    assert_eq!(refused.status, 503);
    drop(open.pop());
    // The freed place is taken again once the server noticed the close: at its next write,
    // which a change makes happen now rather than at the next keep-alive.
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    let mut level = false;
    loop {
        level = !level;
        bus.set_now(pir, SensorValue::Binary(level)).unwrap();
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let request = format!(
            "GET /api/live?token={TOKEN} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            server.addr
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut first = [0u8; 12];
        stream.read_exact(&mut first).await.unwrap();
        if &first == b"HTTP/1.1 200" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the place never came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(open);
    server.stop.send(()).unwrap();
    server.served.await.unwrap().unwrap();
}
