//! A blocking client of a box's HTTP API (ureq, plain HTTP: the API lives on the LAN), and where
//! its token comes from: `--token`, `EDGENVR_TOKEN`, or `token = "..."` in
//! `~/.config/nvrctl/config.toml`.
//!
//! Owns one connection pool per [`BoxClient`]; every request carries the token as
//! `Authorization: Bearer`. Non-2xx answers become [`HttpError::Status`] with the box's JSON
//! error message.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The box's HTTP port when `HOST` has no `:PORT`.
pub const DEFAULT_HTTP_PORT: u16 = 7421;

/// The environment variable holding the token.
pub const TOKEN_ENV: &str = "EDGENVR_TOKEN";

/// Connecting gives up after this long: a box on the LAN answers in milliseconds, one behind a
/// slow uplink within a few seconds.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// No byte for this long means the box or the link is gone (planning an hour-long clip reads a
/// few hundred init segments: well under a second on an SD card).
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Transport failure: resolve, connect, timeout, broken connection.
    #[error("{url}: {source}")]
    Transport {
        /// The URL (without the token).
        url: String,
        /// What ureq said.
        #[source]
        source: Box<ureq::Error>,
    },
    /// The box answered with an error status.
    #[error("{url}: {status}: {message}")]
    Status {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The box's `error` message (or the body as text).
        message: String,
    },
    /// No token anywhere.
    #[error(
        "no API token: pass --token, set {TOKEN_ENV}, or put token = \"...\" in {config}; \
         the box's token is in its [http] config or in STORE_DIR/http-token"
    )]
    NoToken {
        /// The config file looked at.
        config: String,
    },
    /// The config file is unreadable or malformed.
    #[error("{path}: {problem}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
}

/// `HOST[:PORT]` with the default HTTP port filled in (bare IPv6 addresses bracketed).
pub fn with_http_port(target: &str) -> String {
    let colons = target.matches(':').count();
    if target.starts_with('[') {
        if target.contains("]:") {
            target.to_owned()
        } else {
            format!("{target}:{DEFAULT_HTTP_PORT}")
        }
    } else if colons == 1 {
        target.to_owned()
    } else if colons > 1 {
        format!("[{target}]:{DEFAULT_HTTP_PORT}")
    } else {
        format!("{target}:{DEFAULT_HTTP_PORT}")
    }
}

/// `~/.config/nvrctl/config.toml` (honouring `XDG_CONFIG_HOME`).
pub fn default_config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(base.join("nvrctl").join("config.toml"))
}

/// The token: `flag`, else `env`, else the config file's `token` key.
pub fn resolve_token(
    flag: Option<&str>,
    env: Option<&str>,
    config: Option<&Path>,
) -> Result<String, HttpError> {
    if let Some(token) = flag.or(env).map(str::trim).filter(|t| !t.is_empty()) {
        return Ok(token.to_owned());
    }
    let shown = config.map_or_else(
        || "~/.config/nvrctl/config.toml".to_owned(),
        |p| p.display().to_string(),
    );
    let Some(path) = config else {
        return Err(HttpError::NoToken { config: shown });
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(HttpError::NoToken { config: shown })
        }
        Err(e) => {
            return Err(HttpError::Config {
                path: path.to_owned(),
                problem: e.to_string(),
            })
        }
    };
    #[derive(serde::Deserialize)]
    struct ConfigFile {
        token: Option<String>,
    }
    let parsed: ConfigFile = toml::from_str(&text).map_err(|e| HttpError::Config {
        path: path.to_owned(),
        problem: e.message().to_owned(),
    })?;
    parsed
        .token
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .ok_or(HttpError::NoToken { config: shown })
}

/// A client of one box.
pub struct BoxClient {
    agent: ureq::Agent,
    base: String,
    token: String,
}

impl BoxClient {
    /// A client of `target` (`HOST[:PORT]`) presenting `token`.
    pub fn new(target: &str, token: String) -> BoxClient {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_recv_response(Some(RECEIVE_TIMEOUT))
            .build();
        BoxClient {
            agent: config.into(),
            base: format!("http://{}", with_http_port(target)),
            token,
        }
    }

    /// `http://HOST:PORT`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The URL of `path` with `query` pairs (percent-encoded).
    pub fn url(&self, path: &str, query: &[(&str, String)]) -> String {
        let mut serializer = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in query {
            serializer.append_pair(key, value);
        }
        let query = serializer.finish();
        if query.is_empty() {
            format!("{}{path}", self.base)
        } else {
            format!("{}{path}?{query}", self.base)
        }
    }

    /// GET `url` with the token and `extra` headers; any status is returned as a response.
    pub fn get(
        &self,
        url: &str,
        extra: &[(&str, String)],
    ) -> Result<ureq::http::Response<ureq::Body>, HttpError> {
        let mut request = self
            .agent
            .get(url)
            .header("Authorization", format!("Bearer {}", self.token));
        for (name, value) in extra {
            request = request.header(*name, value);
        }
        request.call().map_err(|source| HttpError::Transport {
            url: url.to_owned(),
            source: Box::new(source),
        })
    }

    /// GET `url` and parse a 200 answer as JSON.
    pub fn get_json(&self, url: &str) -> Result<serde_json::Value, HttpError> {
        let response = self.get(url, &[])?;
        json_answer(url, response)
    }

    /// POST an empty body to `url` and parse a 200 answer as JSON.
    pub fn post_json(&self, url: &str) -> Result<serde_json::Value, HttpError> {
        let response = self
            .agent
            .post(url)
            .header("Authorization", format!("Bearer {}", self.token))
            .send_empty()
            .map_err(|source| HttpError::Transport {
                url: url.to_owned(),
                source: Box::new(source),
            })?;
        json_answer(url, response)
    }
}

/// A 200 answer's body as JSON, or the box's error.
fn json_answer(
    url: &str,
    mut response: ureq::http::Response<ureq::Body>,
) -> Result<serde_json::Value, HttpError> {
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .map_err(|source| HttpError::Transport {
            url: url.to_owned(),
            source: Box::new(source),
        })?;
    if status != 200 {
        return Err(status_error(url, status, &text));
    }
    serde_json::from_str(&text).map_err(|e| HttpError::Status {
        url: url.to_owned(),
        status,
        message: format!("not JSON: {e}"),
    })
}

/// The error for a non-2xx answer whose body is `text` (`{"error": ...}` from the box).
pub fn status_error(url: &str, status: u16, text: &str) -> HttpError {
    let message = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| text.trim().chars().take(200).collect());
    HttpError::Status {
        url: url.to_owned(),
        status,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_port_is_added_only_when_missing() {
        assert_eq!(with_http_port("box.lan"), "box.lan:7421");
        assert_eq!(with_http_port("box.lan:8080"), "box.lan:8080");
        assert_eq!(with_http_port("::1"), "[::1]:7421");
        assert_eq!(with_http_port("[::1]"), "[::1]:7421");
        assert_eq!(with_http_port("[::1]:80"), "[::1]:80");
    }

    #[test]
    fn token_from_flag_then_env_then_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(&config, "token = \"from-file\"\n").unwrap();
        let resolve = |flag, env| resolve_token(flag, env, Some(&config)).unwrap();
        assert_eq!(resolve(Some("from-flag"), Some("from-env")), "from-flag");
        assert_eq!(resolve(None, Some("from-env")), "from-env");
        assert_eq!(resolve(None, None), "from-file");
        let missing = dir.path().join("none.toml");
        assert!(matches!(
            resolve_token(None, None, Some(&missing)),
            Err(HttpError::NoToken { .. })
        ));
        std::fs::write(&config, "token = [").unwrap();
        assert!(matches!(
            resolve_token(None, None, Some(&config)),
            Err(HttpError::Config { .. })
        ));
    }

    #[test]
    fn the_box_error_message_is_shown() {
        let error = status_error("u", 404, r#"{"error":"no video of camera \"x\""}"#);
        assert_eq!(error.to_string(), "u: 404: no video of camera \"x\"");
        let error = status_error("u", 502, "Bad Gateway\n");
        assert_eq!(error.to_string(), "u: 502: Bad Gateway");
    }
}
