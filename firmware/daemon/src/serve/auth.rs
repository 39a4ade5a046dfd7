//! The API token: where it comes from (`[http] token`, `token_file`, or one generated at first
//! start), and the check every request passes (`Authorization: Bearer T`, `?token=T`, or the
//! page's login cookie [`COOKIE_NAME`], compared in constant time).
//!
//! [`resolve_token`] does blocking file I/O once at start-up; [`Token::matches_request`] is pure
//! and called from the router's middleware on every request.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::config::{HttpConfig, MIN_HTTP_TOKEN_CHARS};

/// File name of the generated token inside the store directory.
pub const GENERATED_TOKEN_FILE: &str = "http-token";

/// The cookie the page's login sets: the token itself, percent-encoded (a configured token may
/// hold characters a cookie value cannot).
pub const COOKIE_NAME: &str = "edgenvr_token";

/// Random bytes in a generated token: 24 bytes are 192 bits, 32 base64url characters.
const GENERATED_TOKEN_BYTES: usize = 24;

/// The secret every request must present. `Debug` does not show it.
#[derive(Clone)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

/// Why the token could not be found or made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token file could not be read or written.
    #[error("{path}: {op}: {source}")]
    Io {
        /// The token file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The token file holds something unusable.
    #[error("{path}: {problem}")]
    Invalid {
        /// The token file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
}

impl Token {
    /// A token from its text (surrounding whitespace removed).
    pub fn new(text: &str) -> Token {
        Token(text.trim().to_owned())
    }

    /// The token text (for tests and for printing where it was generated).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this token, in time independent of where they differ.
    pub fn matches(&self, presented: &str) -> bool {
        constant_time_eq(self.0.as_bytes(), presented.as_bytes())
    }

    /// Whether a request carries this token: `Authorization: Bearer T` or a `token=T` query
    /// parameter (what a player such as VLC can send).
    pub fn matches_request(&self, authorization: Option<&str>, query: Option<&str>) -> bool {
        let bearer = authorization
            .and_then(|value| value.trim().strip_prefix("Bearer "))
            .map(str::trim);
        if bearer.is_some_and(|t| self.matches(t)) {
            return true;
        }
        query.is_some_and(|query| {
            url::form_urlencoded::parse(query.as_bytes())
                .any(|(key, value)| key == "token" && self.matches(&value))
        })
    }

    /// Whether a `Cookie` header carries this token as [`COOKIE_NAME`] (set by the page's login).
    pub fn matches_cookie(&self, cookie_header: Option<&str>) -> bool {
        cookie_header.is_some_and(|header| {
            header
                .split(';')
                .filter_map(|pair| pair.trim().split_once('='))
                .filter(|(name, _)| *name == COOKIE_NAME)
                .any(|(_, value)| {
                    // The value is percent-encoded form text, as `cookie_value` wrote it.
                    url::form_urlencoded::parse(format!("t={value}").as_bytes())
                        .any(|(_, decoded)| self.matches(&decoded))
                })
        })
    }

    /// The value of the login cookie for this token (percent-encoded).
    pub fn cookie_value(&self) -> String {
        url::form_urlencoded::byte_serialize(self.0.as_bytes()).collect()
    }
}

/// Compares two byte strings without an early exit on the first difference, so response times
/// do not reveal how much of a guess was right. (Lengths may differ in time; they are not
/// secret: generated tokens all have one length.)
pub fn constant_time_eq(expected: &[u8], presented: &[u8]) -> bool {
    let mut difference = u8::from(expected.len() != presented.len());
    for (index, byte) in expected.iter().enumerate() {
        let other = presented.get(index).copied().unwrap_or(!byte);
        difference |= byte ^ other;
    }
    std::hint::black_box(difference) == 0
}

/// The token of `config`: `token`, else the content of `token_file`, else the generated token in
/// `store_dir`/[`GENERATED_TOKEN_FILE`] (created with mode 0600 on first start). Returns where
/// it came from for the start-up log.
pub fn resolve_token(config: &HttpConfig, store_dir: &Path) -> Result<(Token, String), TokenError> {
    if let Some(token) = &config.token {
        return Ok((Token::new(token), "[http] token".into()));
    }
    if let Some(path) = &config.token_file {
        let token = read_token_file(path)?;
        return Ok((token, path.display().to_string()));
    }
    let path = store_dir.join(GENERATED_TOKEN_FILE);
    match read_token_file(&path) {
        Ok(token) => Ok((token, path.display().to_string())),
        Err(TokenError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            let token = generate_token_file(&path)?;
            tracing::info!(path = %path.display(), "generated the HTTP API token");
            Ok((token, path.display().to_string()))
        }
        Err(error) => Err(error),
    }
}

fn read_token_file(path: &Path) -> Result<Token, TokenError> {
    let text = std::fs::read_to_string(path).map_err(|source| TokenError::Io {
        path: path.to_owned(),
        op: "read token",
        source,
    })?;
    let token = Token::new(&text);
    if token.0.chars().count() < MIN_HTTP_TOKEN_CHARS {
        return Err(TokenError::Invalid {
            path: path.to_owned(),
            problem: format!("the token must be at least {MIN_HTTP_TOKEN_CHARS} characters"),
        });
    }
    Ok(token)
}

/// Writes a new random token to `path`, readable only by this user; refuses to replace a file.
fn generate_token_file(path: &Path) -> Result<Token, TokenError> {
    let io = |op| {
        move |source| TokenError::Io {
            path: path.to_owned(),
            op,
            source,
        }
    };
    let mut random = [0u8; GENERATED_TOKEN_BYTES];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut random))
        .map_err(io("read /dev/urandom"))?;
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io("create token file"))?;
    file.write_all(format!("{token}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io("write token file"))?;
    Ok(Token(token))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn equal_only_when_every_byte_and_the_length_match() {
        assert!(constant_time_eq(b"secret-token", b"secret-token"));
        assert!(!constant_time_eq(b"secret-token", b"secret-tokex"));
        assert!(!constant_time_eq(b"secret-token", b"Secret-token"));
        assert!(!constant_time_eq(b"secret-token", b"secret-toke"));
        assert!(!constant_time_eq(b"secret-token", b"secret-token2"));
        assert!(!constant_time_eq(b"secret-token", b""));
        // A presented byte equal to !expected must not pass as "missing".
        assert!(!constant_time_eq(&[0x00], &[]));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn bearer_header_or_query_parameter() {
        let token = Token::new("0123456789abcdef");
        assert!(token.matches_request(Some("Bearer 0123456789abcdef"), None));
        assert!(token.matches_request(None, Some("camera=a&token=0123456789abcdef")));
        assert!(!token.matches_request(Some("Bearer 0123456789abcdeX"), None));
        assert!(!token.matches_request(Some("Basic 0123456789abcdef"), None));
        assert!(!token.matches_request(None, Some("camera=a")));
        assert!(!token.matches_request(None, None));
        // Percent-encoded query values are decoded first.
        let token = Token::new("a+b/c=d-0123456789");
        assert!(token.matches_request(None, Some("token=a%2Bb%2Fc%3Dd-0123456789")));
    }

    #[test]
    fn login_cookie_round_trips_any_token() {
        for text in ["0123456789abcdef", "a b;c,d=\"e\"%+é-0123456789"] {
            let token = Token::new(text);
            let header = format!(
                "theme=dark; {COOKIE_NAME}={}; other=1",
                token.cookie_value()
            );
            assert!(token.matches_cookie(Some(&header)), "{header}");
            assert!(!token.cookie_value().contains([';', ',', ' ', '"']));
        }
        let token = Token::new("0123456789abcdef");
        assert!(!token.matches_cookie(Some("edgenvr_token=0123456789abcdeX")));
        assert!(!token.matches_cookie(Some("other_token=0123456789abcdef")));
        assert!(!token.matches_cookie(Some("edgenvr_token")));
        assert!(!token.matches_cookie(None));
    }

    #[test]
    fn generated_once_with_mode_0600_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let config = HttpConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            token: None,
            token_file: None,
            ui: true,
        };
        let (first, _) = resolve_token(&config, dir.path()).unwrap();
        assert_eq!(first.expose().len(), 32);
        let path = dir.path().join(GENERATED_TOKEN_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, _) = resolve_token(&config, dir.path()).unwrap();
        assert_eq!(again.expose(), first.expose());
    }

    #[test]
    fn a_missing_or_short_token_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let config = HttpConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            token: None,
            token_file: Some(path.clone()),
            ui: true,
        };
        assert!(matches!(
            resolve_token(&config, dir.path()),
            Err(TokenError::Io { .. })
        ));
        std::fs::write(&path, "short\n").unwrap();
        let error = resolve_token(&config, dir.path()).unwrap_err();
        assert!(error.to_string().contains("at least 16"), "{error}");
        std::fs::write(&path, "  0123456789abcdef  \n").unwrap();
        let (token, _) = resolve_token(&config, dir.path()).unwrap();
        assert_eq!(token.expose(), "0123456789abcdef");
    }
}
