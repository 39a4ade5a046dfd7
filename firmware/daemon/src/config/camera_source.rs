//! Where a camera is and how to log in: the RTSP URL split from its credentials, and the one
//! place URLs are redacted for logs, errors and listings.
//!
//! Receives a URL string (possibly `rtsp://user:pass@host/path`) and an optional password from
//! elsewhere (environment, config); emits a [`CameraSource`] whose URL carries no credentials, so
//! nothing downstream can print the password by accident. No I/O.

use std::fmt;

use url::Url;

/// How RTP travels from the camera.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Interleaved in the RTSP TCP connection: passes NAT and firewalls, no loss reordering.
    #[default]
    Tcp,
    /// Separate UDP ports (LAN only: retina has no reorder buffer).
    Udp,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        })
    }
}

impl std::str::FromStr for Transport {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tcp" => Ok(Transport::Tcp),
            "udp" => Ok(Transport::Udp),
            other => Err(format!("unknown transport {other:?} (expected tcp or udp)")),
        }
    }
}

/// A user name and password for basic or digest authentication. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password; never printed.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// A camera's URL that could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SourceError {
    /// Not a URL at all (the message says why, without repeating the URL: it may hold a password).
    #[error("camera URL is not a valid URL: {0}")]
    Invalid(String),
    /// A URL, but not `rtsp://` (or `rtsps://`).
    #[error("camera URL {redacted} is not rtsp:// or rtsps://")]
    NotRtsp {
        /// The URL with its password hidden.
        redacted: String,
    },
    /// A password without a user name cannot be sent.
    #[error("camera URL {redacted} has a password but no user name")]
    PasswordWithoutUser {
        /// The URL with its password hidden.
        redacted: String,
    },
}

/// One camera: its name, its URL without credentials, the credentials and the transport.
#[derive(Clone, Debug)]
pub struct CameraSource {
    /// The camera's name (the store's camera key, log field `camera`).
    pub name: String,
    /// The RTSP URL with user name and password removed.
    pub url: Url,
    /// Credentials for the camera, when it wants them.
    pub credentials: Option<Credentials>,
    /// How RTP should travel.
    pub transport: Transport,
}

impl CameraSource {
    /// Splits `url` into a credential-free URL and credentials. `password` (from
    /// `EDGENVR_RTSP_PASSWORD` or a config) overrides a password in the URL; a password needs a
    /// user name in the URL. Percent-escapes in the user name and password are decoded.
    pub fn new(
        name: &str,
        url: &str,
        password: Option<&str>,
        transport: Transport,
    ) -> Result<Self, SourceError> {
        let mut parsed = Url::parse(url).map_err(|e| SourceError::Invalid(e.to_string()))?;
        if !matches!(parsed.scheme(), "rtsp" | "rtsps") {
            return Err(SourceError::NotRtsp {
                redacted: redact_url(url),
            });
        }
        let username = percent_decode(parsed.username());
        let url_password = parsed.password().map(percent_decode);
        let password = password.map(str::to_owned).or(url_password);
        let credentials = match (username.is_empty(), password) {
            (true, None) => None,
            (true, Some(_)) => {
                return Err(SourceError::PasswordWithoutUser {
                    redacted: redact_url(url),
                })
            }
            (false, password) => Some(Credentials {
                username,
                password: password.unwrap_or_default(),
            }),
        };
        // Both setters fail only for URLs that cannot have credentials, which rtsp:// can.
        let _ = parsed.set_username("");
        let _ = parsed.set_password(None);
        Ok(Self {
            name: name.to_owned(),
            url: parsed,
            credentials,
            transport,
        })
    }

    /// Replaces the password with `***` wherever it occurs in `text` (an error message from a
    /// library that may have echoed it).
    pub fn scrub(&self, text: &str) -> String {
        match &self.credentials {
            Some(c) if !c.password.is_empty() => text.replace(&c.password, "***"),
            _ => text.to_owned(),
        }
    }
}

/// `url` with any password replaced by `***`, for logs and errors. A string that does not parse
/// is shown only up to its scheme, since it may hold a password in a shape the parser missed.
pub fn redact_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => match url.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://<unparseable>"),
            None => "<unparseable>".to_owned(),
        },
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes.get(i), hex) {
            (Some(b'%'), Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (Some(&b), _) => {
                out.push(b);
                i += 1;
            }
            (None, _) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_credentials_from_the_url() {
        let s = CameraSource::new(
            "front",
            "rtsp://admin:s%40cret@cam.lan:554/stream1",
            None,
            Transport::Tcp,
        )
        .unwrap();
        assert_eq!(s.url.as_str(), "rtsp://cam.lan:554/stream1");
        let c = s.credentials.unwrap();
        assert_eq!(c.username, "admin");
        assert_eq!(c.password, "s@cret");
    }

    #[test]
    fn password_from_elsewhere_overrides_the_url() {
        let s =
            CameraSource::new("f", "rtsp://admin@cam/s", Some("envpw"), Transport::Udp).unwrap();
        assert_eq!(s.credentials.unwrap().password, "envpw");
        let s = CameraSource::new(
            "f",
            "rtsp://admin:urlpw@cam/s",
            Some("envpw"),
            Transport::Tcp,
        )
        .unwrap();
        assert_eq!(s.credentials.unwrap().password, "envpw");
    }

    #[test]
    fn no_user_no_credentials() {
        let s = CameraSource::new("f", "rtsp://cam/s", None, Transport::Tcp).unwrap();
        assert!(s.credentials.is_none());
        assert_eq!(
            CameraSource::new("f", "rtsp://cam/s", Some("pw"), Transport::Tcp).unwrap_err(),
            SourceError::PasswordWithoutUser {
                redacted: "rtsp://cam/s".into()
            }
        );
    }

    #[test]
    fn errors_and_debug_never_show_the_password() {
        let err = CameraSource::new("f", "http://u:hunter2@cam/s", None, Transport::Tcp)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("***"), "{err}");
        let s = CameraSource::new("f", "rtsp://u:hunter2@cam/s", None, Transport::Tcp).unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(s.scrub("bad hunter2 here"), "bad *** here");
        assert!(!redact_url("rtsp://u:hunter2@[bad/").contains("hunter2"));
    }

    #[test]
    fn redacts_only_the_password() {
        assert_eq!(
            redact_url("rtsp://u:hunter2@cam:554/s"),
            "rtsp://u:***@cam:554/s"
        );
        assert_eq!(redact_url("rtsp://cam/s"), "rtsp://cam/s");
    }

    #[test]
    fn transport_parses() {
        assert_eq!("udp".parse::<Transport>(), Ok(Transport::Udp));
        assert!("sctp".parse::<Transport>().is_err());
    }
}
