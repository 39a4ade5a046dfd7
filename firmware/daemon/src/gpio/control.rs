//! The local control socket: a Unix socket at `[control] socket` through which `edgenvr sim`
//! sets and reads simulated pin levels in the running box.
//!
//! Protocol: one request per line, one reply line each; a connection may send several.
//!
//! ```text
//! set NAME high|low   ->  ok
//! get NAME            ->  ok high | ok low
//! anything else       ->  err MESSAGE
//! ```
//!
//! [`Request`]/[`Reply`] parse and format lines without I/O. [`ControlServer`] owns the listening
//! socket (and removes its file when dropped) and serves [`SimPins`]; it trusts nothing: long
//! lines, bad UTF-8, unknown verbs or names get an `err` reply or a closed connection, never a
//! panic. [`request`] is the client that `edgenvr sim` and the tests use.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;

use super::sim::SimPins;
use crate::config::gpio::ControlConfig;

/// Socket file name inside the runtime directory.
pub const SOCKET_FILE: &str = "control.sock";
/// Longest request line accepted, newline included: a name plus a verb fits many times over.
pub const MAX_LINE_BYTES: usize = 512;
/// Connections served at once; the socket is for a person or a script, so a few suffice, and
/// the bound keeps a misbehaving client from exhausting file descriptors.
pub const MAX_CONNECTIONS: usize = 8;
/// A connection that sends no complete line for this long is closed, freeing its slot.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The socket path when `[control] socket` is not set, in order: `$RUNTIME_DIRECTORY` (systemd's
/// `RuntimeDirectory=`), `/run/edgenvr` if it exists, `$XDG_RUNTIME_DIR/edgenvr`, and
/// `/run/edgenvr` — each with `control.sock`. The box and `edgenvr sim` compute it the same
/// way; when they run as different users, set `[control] socket` explicitly.
pub fn default_socket_path() -> PathBuf {
    let system_dir = Path::new("/run/edgenvr");
    let dir = if let Some(dir) = std::env::var_os("RUNTIME_DIRECTORY").filter(|d| !d.is_empty()) {
        // systemd may pass several, colon-separated; the first is ours.
        let first = dir
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or_default()
            .to_owned();
        PathBuf::from(first)
    } else if system_dir.is_dir() {
        system_dir.to_owned()
    } else if let Some(xdg) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        PathBuf::from(xdg).join("edgenvr")
    } else {
        system_dir.to_owned()
    };
    dir.join(SOCKET_FILE)
}

/// The configured socket path, or the default.
pub fn socket_path(config: &ControlConfig) -> PathBuf {
    config.socket.clone().unwrap_or_else(default_socket_path)
}

/// One request line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Set a simulated sensor's raw level.
    Set {
        /// The sensor.
        name: String,
        /// High (`true`) or low.
        high: bool,
    },
    /// Read a simulated sensor's or output's raw level.
    Get {
        /// The sensor or output.
        name: String,
    },
}

impl Request {
    /// Parses one line (without its newline). The error is the message for the `err` reply.
    pub fn parse(line: &str) -> Result<Self, String> {
        let mut words = line.split_ascii_whitespace();
        let verb = words.next();
        let name = words.next();
        let level = words.next();
        let extra = words.next();
        let request = match (verb, name, level, extra) {
            (Some("set"), Some(name), Some(level), None) => Request::Set {
                name: name.to_owned(),
                high: parse_level(level)?,
            },
            (Some("get"), Some(name), None, None) => Request::Get {
                name: name.to_owned(),
            },
            _ => return Err("expected `set NAME high|low` or `get NAME`".to_owned()),
        };
        Ok(request)
    }

    /// The request as a line, newline included. Names cannot contain whitespace (config rule).
    pub fn to_line(&self) -> String {
        match self {
            Request::Set { name, high } => format!("set {name} {}\n", level_word(*high)),
            Request::Get { name } => format!("get {name}\n"),
        }
    }
}

/// One reply line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Done; for `get`, the level.
    Ok(Option<bool>),
    /// Refused, with the reason.
    Err(String),
}

impl Reply {
    /// The reply as a line, newline included. Newlines in a message are flattened.
    pub fn to_line(&self) -> String {
        match self {
            Reply::Ok(None) => "ok\n".to_owned(),
            Reply::Ok(Some(high)) => format!("ok {}\n", level_word(*high)),
            Reply::Err(message) => format!("err {}\n", message.replace(['\n', '\r'], " ")),
        }
    }

    /// Parses a reply line (without its newline).
    pub fn parse(line: &str) -> Result<Self, String> {
        match line.split_once(' ') {
            None if line == "ok" => Ok(Reply::Ok(None)),
            Some(("ok", level)) => Ok(Reply::Ok(Some(parse_level(level)?))),
            Some(("err", message)) => Ok(Reply::Err(message.to_owned())),
            _ => Err(format!("unexpected reply {line:?}")),
        }
    }
}

fn parse_level(word: &str) -> Result<bool, String> {
    match word {
        "high" | "1" => Ok(true),
        "low" | "0" => Ok(false),
        other => Err(format!("level must be `high` or `low`, not {other:?}")),
    }
}

fn level_word(high: bool) -> &'static str {
    if high {
        "high"
    } else {
        "low"
    }
}

/// Answers one request against the simulated pins.
pub fn answer(sim: &SimPins, request: &Request) -> Reply {
    match request {
        Request::Set { name, high } => match sim.set(name, *high) {
            Ok(()) => Reply::Ok(None),
            Err(e) => Reply::Err(e.to_string()),
        },
        Request::Get { name } => match sim.get(name) {
            Ok(high) => Reply::Ok(Some(high)),
            Err(e) => Reply::Err(e.to_string()),
        },
    }
}

/// The control socket could not be set up or reached.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// Another process is serving this socket.
    #[error("control socket {0}: another edgenvr is already listening there")]
    InUse(PathBuf),
    /// Creating the directory or binding failed.
    #[error("control socket {path}: cannot listen: {error}")]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// Why (in the message, so not also a `source`).
        error: std::io::Error,
    },
    /// The client could not connect.
    #[error(
        "control socket {path}: cannot connect ({error}); is `edgenvr run` running with this config?"
    )]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// Why (in the message, so not also a `source`).
        error: std::io::Error,
    },
    /// The connection broke or the box answered nonsense.
    #[error("control socket {path}: {reason}")]
    Protocol {
        /// The socket path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Removes the socket file when the server goes away, so the next start finds no stale file.
#[derive(Debug)]
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A bound control socket, ready to serve.
#[derive(Debug)]
pub struct ControlServer {
    listener: UnixListener,
    file: SocketFile,
}

impl ControlServer {
    /// Binds `path`, creating its directory if needed. A stale socket file (no one answering) is
    /// replaced; a live one is refused with [`ControlError::InUse`]. Logs `listening control PATH`.
    pub async fn bind(path: &Path) -> Result<Self, ControlError> {
        let bind_error = |error| ControlError::Bind {
            path: path.to_owned(),
            error,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(bind_error)?;
        }
        if path.exists() {
            if UnixStream::connect(path).await.is_ok() {
                return Err(ControlError::InUse(path.to_owned()));
            }
            std::fs::remove_file(path).map_err(bind_error)?;
        }
        let listener = UnixListener::bind(path).map_err(bind_error)?;
        tracing::info!("listening control {}", path.display());
        Ok(ControlServer {
            listener,
            file: SocketFile(path.to_owned()),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.file.0
    }

    /// Serves connections until the future is dropped (then the socket file is removed).
    pub async fn serve(self, sim: SimPins) {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let _file = self.file;
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            match self.listener.accept().await {
                Ok((stream, _)) => {
                    let sim = sim.clone();
                    tokio::spawn(async move {
                        if let Err(e) = serve_connection(stream, &sim).await {
                            tracing::debug!(error = %e, "control connection ended");
                        }
                        drop(permit);
                    });
                }
                Err(e) => {
                    // EMFILE and the like: wait a little instead of spinning.
                    tracing::warn!(error = %e, "control socket accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Serves on a new task.
    pub fn spawn(self, sim: SimPins) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.serve(sim))
    }
}

async fn serve_connection(stream: UnixStream, sim: &SimPins) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::with_capacity(MAX_LINE_BYTES);
    loop {
        line.clear();
        let limit = u64::try_from(MAX_LINE_BYTES).unwrap_or(u64::MAX);
        let read = tokio::time::timeout(
            IDLE_TIMEOUT,
            (&mut reader).take(limit).read_until(b'\n', &mut line),
        )
        .await;
        let n = match read {
            Ok(result) => result?,
            Err(_elapsed) => return Ok(()),
        };
        if n == 0 {
            return Ok(());
        }
        if line.last() != Some(&b'\n') {
            let reply = if n >= MAX_LINE_BYTES {
                Reply::Err(format!("request longer than {MAX_LINE_BYTES} bytes"))
            } else {
                Reply::Err("request not terminated by a newline".to_owned())
            };
            // The rest of an over-long line cannot be resynchronised: answer and hang up.
            write.write_all(reply.to_line().as_bytes()).await?;
            return Ok(());
        }
        let reply = match std::str::from_utf8(&line) {
            Ok(text) => match Request::parse(text.trim_end_matches(['\n', '\r'])) {
                Ok(request) => {
                    let reply = answer(sim, &request);
                    tracing::debug!(?request, ?reply, "control request");
                    reply
                }
                Err(message) => Reply::Err(message),
            },
            Err(_) => Reply::Err("request is not UTF-8".to_owned()),
        };
        write.write_all(reply.to_line().as_bytes()).await?;
    }
}

/// Sends one request to the box listening on `path` and returns its reply.
pub async fn request(path: &Path, request: &Request) -> Result<Reply, ControlError> {
    let protocol = |reason: String| ControlError::Protocol {
        path: path.to_owned(),
        reason,
    };
    let stream = UnixStream::connect(path)
        .await
        .map_err(|error| ControlError::Connect {
            path: path.to_owned(),
            error,
        })?;
    let (read, mut write) = stream.into_split();
    write
        .write_all(request.to_line().as_bytes())
        .await
        .map_err(|e| protocol(format!("sending the request failed: {e}")))?;
    let mut line = String::new();
    let limit = u64::try_from(MAX_LINE_BYTES).unwrap_or(u64::MAX);
    BufReader::new(read)
        .take(limit)
        .read_line(&mut line)
        .await
        .map_err(|e| protocol(format!("reading the reply failed: {e}")))?;
    if !line.ends_with('\n') {
        return Err(protocol(
            "the box closed the connection without a reply".into(),
        ));
    }
    Reply::parse(line.trim_end_matches(['\n', '\r'])).map_err(protocol)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::gpio::{Backend, OutputConfig, Pull, SensorConfig, SensorKind};

    #[test]
    fn requests_and_replies_round_trip_and_garbage_is_refused() {
        for request in [
            Request::Set {
                name: "pir-hall".into(),
                high: true,
            },
            Request::Set {
                name: "x".into(),
                high: false,
            },
            Request::Get { name: "x".into() },
        ] {
            let line = request.to_line();
            assert_eq!(Request::parse(line.trim_end()), Ok(request));
        }
        for reply in [
            Reply::Ok(None),
            Reply::Ok(Some(true)),
            Reply::Ok(Some(false)),
            Reply::Err("no such thing".into()),
        ] {
            assert_eq!(Reply::parse(reply.to_line().trim_end()), Ok(reply));
        }
        for garbage in [
            "",
            "set",
            "set a",
            "set a up",
            "get",
            "get a b",
            "frobnicate a",
            "set a high x",
        ] {
            assert!(Request::parse(garbage).is_err(), "{garbage:?}");
        }
        assert_eq!(Reply::Err("a\nb".into()).to_line(), "err a b\n");
    }

    fn sim_pins() -> SimPins {
        let sensor = SensorConfig {
            name: "pir".into(),
            kind: SensorKind::Pir,
            backend: Backend::Sim,
            pin: None,
            chip: None,
            line: None,
            active_low: false,
            pull: Pull::None,
            debounce: Duration::ZERO,
            hold: Duration::ZERO,
            warmup: None,
        };
        let output = OutputConfig {
            name: "light".into(),
            backend: Backend::Sim,
            pin: None,
            chip: None,
            line: None,
            active_low: false,
        };
        SimPins::from_config(&[sensor], &[output])
    }

    async fn raw_exchange(path: &Path, bytes: &[u8]) -> String {
        let mut stream = UnixStream::connect(path).await.unwrap();
        stream.write_all(bytes).await.unwrap();
        stream.shutdown().await.unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.unwrap();
        reply
    }

    #[tokio::test]
    async fn the_server_answers_good_requests_and_refuses_garbage_without_dying() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/control.sock");
        let sim = sim_pins();
        let server = ControlServer::bind(&path).await.unwrap();
        let task = server.spawn(sim.clone());

        let set = Request::Set {
            name: "pir".into(),
            high: true,
        };
        assert_eq!(request(&path, &set).await.unwrap(), Reply::Ok(None));
        assert_eq!(sim.get("pir"), Ok(true));
        let get = Request::Get { name: "pir".into() };
        assert_eq!(request(&path, &get).await.unwrap(), Reply::Ok(Some(true)));

        let unknown = Request::Get {
            name: "nope".into(),
        };
        assert_eq!(
            request(&path, &unknown).await.unwrap(),
            Reply::Err("no simulated sensor or output named \"nope\"".into())
        );
        let output = Request::Set {
            name: "light".into(),
            high: true,
        };
        assert!(
            matches!(request(&path, &output).await.unwrap(), Reply::Err(m) if m.contains("is an output"))
        );

        let replies = raw_exchange(&path, b"hello\n\xff\xfe\nget pir\nset pir sideways\n").await;
        assert_eq!(
            replies,
            "err expected `set NAME high|low` or `get NAME`\n\
             err request is not UTF-8\n\
             ok high\n\
             err level must be `high` or `low`, not \"sideways\"\n"
        );
        let long = vec![b'a'; MAX_LINE_BYTES * 4];
        let reply = raw_exchange(&path, &long).await;
        assert_eq!(
            reply,
            format!("err request longer than {MAX_LINE_BYTES} bytes\n")
        );
        let reply = raw_exchange(&path, b"get pir").await;
        assert_eq!(reply, "err request not terminated by a newline\n");

        // Still serving after all that.
        assert_eq!(request(&path, &get).await.unwrap(), Reply::Ok(Some(true)));

        assert!(matches!(
            ControlServer::bind(&path).await,
            Err(ControlError::InUse(_))
        ));
        task.abort();
        let _ = task.await;
        assert!(
            !path.exists(),
            "the socket file is removed when the server stops"
        );
    }

    #[tokio::test]
    async fn a_stale_socket_file_is_replaced_and_a_missing_server_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let err = request(&path, &Request::Get { name: "x".into() })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("cannot connect"), "{err}");
        // A socket file left behind by a killed box.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let server = ControlServer::bind(&path).await.unwrap();
        assert_eq!(server.path(), path);
    }
}
