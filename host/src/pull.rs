//! `nvrctl pull`: downloads one clip (`GET /api/clip.mp4`) to a file, with a progress bar, and
//! resumes an interrupted download.
//!
//! The bytes go to `FILE.part`, the clip's entity tag to `FILE.part.etag`; only a complete
//! download is renamed to `FILE`. A second run finds the part, asks for the rest
//! (`Range: bytes=N-`) under `If-Range: ETAG`, and the box answers with the rest of the same
//! clip (206) — or, when the ring has overwritten part of it meanwhile, with the whole new clip
//! (200), which restarts the file. Blocking I/O on the caller's thread; memory is one 64 KiB
//! buffer whatever the clip's length.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};

use crate::http::{status_error, BoxClient, HttpError};

/// Bytes per read from the socket and write to the file: large enough that syscalls do not
/// matter next to the network, small enough to be nothing in memory.
const COPY_BUFFER_BYTES: usize = 64 * 1024;

/// Which clip: a camera's time range, or one event's video (pre-roll to post-roll).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClipSelector {
    /// A time range of one camera.
    Range {
        /// The camera.
        camera: String,
        /// Start, Unix ms.
        from_ms: i64,
        /// End, Unix ms.
        to_ms: i64,
    },
    /// An event by its id (`nvrctl recordings` lists it), optionally checked against a camera.
    Event {
        /// The event's id.
        id: u64,
        /// The camera it must belong to, if given.
        camera: Option<String>,
    },
}

impl ClipSelector {
    /// The query parameters of `GET /api/clip.mp4`.
    fn query(&self) -> Vec<(&'static str, String)> {
        match self {
            ClipSelector::Range {
                camera,
                from_ms,
                to_ms,
            } => vec![
                ("camera", camera.clone()),
                ("from", from_ms.to_string()),
                ("to", to_ms.to_string()),
            ],
            ClipSelector::Event { id, camera } => {
                let mut query = vec![("event", id.to_string())];
                if let Some(camera) = camera {
                    query.push(("camera", camera.clone()));
                }
                query
            }
        }
    }
}

/// What to pull.
#[derive(Clone, Debug)]
pub struct PullRequest {
    /// The clip.
    pub clip: ClipSelector,
    /// The final file.
    pub output: PathBuf,
    /// Draw a progress bar (on stderr).
    pub progress: bool,
}

/// What a finished pull got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullReport {
    /// Size of the file.
    pub total_bytes: u64,
    /// Bytes that were already in the part file and not fetched again.
    pub resumed_from: u64,
    /// The clip's first and last wall times as the box reported them (RFC 3339).
    pub clip_start: Option<String>,
    /// See `clip_start`.
    pub clip_end: Option<String>,
    /// Set when the box cut the clip short (stream parameters changed), with its reason.
    pub truncated: Option<String>,
}

/// Why a pull failed.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The request failed or the box refused.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// Reading the response failed part-way (the part file keeps what arrived).
    #[error("download interrupted after {received} bytes ({source}); run the same command again to resume")]
    Interrupted {
        /// Bytes in the part file now.
        received: u64,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The output could not be written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The box answered something this client cannot use.
    #[error("unexpected answer: {0}")]
    Protocol(String),
}

/// `FILE.part` and `FILE.part.etag`.
pub fn part_paths(output: &Path) -> (PathBuf, PathBuf) {
    let mut part = output.as_os_str().to_owned();
    part.push(".part");
    let mut etag = part.clone();
    etag.push(".etag");
    (PathBuf::from(part), PathBuf::from(etag))
}

/// Downloads the clip, resuming a previous part when there is one.
pub fn pull(client: &BoxClient, request: &PullRequest) -> Result<PullReport, PullError> {
    let (part_path, etag_path) = part_paths(&request.output);
    let file_error = |path: &Path| {
        let path = path.to_owned();
        move |source| PullError::File { path, source }
    };
    let have = std::fs::metadata(&part_path).map_or(0, |m| m.len());
    let saved_etag = std::fs::read_to_string(&etag_path)
        .ok()
        .map(|t| t.trim().to_owned());
    let url = client.url("/api/clip.mp4", &request.clip.query());
    let mut headers = Vec::new();
    if let (true, Some(etag)) = (have > 0, &saved_etag) {
        headers.push(("Range", format!("bytes={have}-")));
        headers.push(("If-Range", etag.clone()));
    }
    let mut response = client.get(&url, &headers)?;
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let etag = header("etag");
    let clip_start = header("x-clip-start");
    let clip_end = header("x-clip-end");
    let truncated = header("x-clip-truncated");
    let content_length: Option<u64> = header("content-length").and_then(|v| v.parse().ok());
    let content_range = header("content-range");

    let (resumed_from, total_bytes) = match status {
        200 => (0, content_length),
        206 => {
            let (first, total) = content_range
                .as_deref()
                .and_then(parse_content_range)
                .ok_or_else(|| {
                    PullError::Protocol(format!("206 with Content-Range {content_range:?}"))
                })?;
            if first != have {
                return Err(PullError::Protocol(format!(
                    "asked for bytes from {have}, got them from {first}"
                )));
            }
            (first, Some(total))
        }
        416 if have > 0 => {
            // The part already holds the whole clip: only the rename was missing.
            let total = content_range
                .as_deref()
                .and_then(|r| r.strip_prefix("bytes */"))
                .and_then(|t| t.parse::<u64>().ok());
            if total == Some(have) {
                finish(&part_path, &etag_path, &request.output)?;
                return Ok(PullReport {
                    total_bytes: have,
                    resumed_from: have,
                    clip_start,
                    clip_end,
                    truncated,
                });
            }
            // A part longer than the clip is from another clip: start over.
            std::fs::remove_file(&part_path).map_err(file_error(&part_path))?;
            let _ = std::fs::remove_file(&etag_path);
            return pull(client, request);
        }
        _ => {
            let text = response.body_mut().read_to_string().unwrap_or_default();
            return Err(status_error(&url, status, &text).into());
        }
    };
    let total_bytes =
        total_bytes.ok_or_else(|| PullError::Protocol("no Content-Length for the clip".into()))?;

    let mut file = if resumed_from == 0 {
        File::create(&part_path)
    } else {
        OpenOptions::new().append(true).open(&part_path)
    }
    .map_err(file_error(&part_path))?;
    match &etag {
        Some(etag) if saved_etag.as_ref() != Some(etag) || resumed_from == 0 => {
            std::fs::write(&etag_path, etag).map_err(file_error(&etag_path))?
        }
        Some(_) => {}
        None => {
            let _ = std::fs::remove_file(&etag_path);
        }
    }

    let bar = if request.progress {
        let bar = ProgressBar::new(total_bytes).with_position(resumed_from);
        if let Ok(style) = ProgressStyle::with_template(
            "{bytes:>10}/{total_bytes:<10} [{bar:30}] {bytes_per_sec:>12} eta {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut reader = response.body_mut().as_reader();
    let mut buffer = vec![0u8; COPY_BUFFER_BYTES];
    let mut received = resumed_from;
    loop {
        let read = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                bar.abandon();
                let _ = file.flush();
                return Err(PullError::Interrupted { received, source });
            }
        };
        let chunk = buffer.get(..read).unwrap_or_default();
        file.write_all(chunk).map_err(file_error(&part_path))?;
        received += read as u64;
        bar.set_position(received);
    }
    if received != total_bytes {
        bar.abandon();
        return Err(PullError::Interrupted {
            received,
            source: io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the box promised {total_bytes} bytes"),
            ),
        });
    }
    file.sync_all().map_err(file_error(&part_path))?;
    drop(file);
    bar.finish();
    finish(&part_path, &etag_path, &request.output)?;
    Ok(PullReport {
        total_bytes,
        resumed_from,
        clip_start,
        clip_end,
        truncated,
    })
}

fn finish(part_path: &Path, etag_path: &Path, output: &Path) -> Result<(), PullError> {
    std::fs::rename(part_path, output).map_err(|source| PullError::File {
        path: output.to_owned(),
        source,
    })?;
    let _ = std::fs::remove_file(etag_path);
    Ok(())
}

/// `bytes FIRST-LAST/TOTAL` → (FIRST, TOTAL).
fn parse_content_range(value: &str) -> Option<(u64, u64)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let (first, _) = span.split_once('-')?;
    Some((first.trim().parse().ok()?, total.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_gives_first_byte_and_total() {
        assert_eq!(parse_content_range("bytes 100-199/200"), Some((100, 200)));
        assert_eq!(parse_content_range("bytes */200"), None);
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }

    #[test]
    fn part_files_sit_beside_the_output() {
        let (part, etag) = part_paths(Path::new("/tmp/clip.mp4"));
        assert_eq!(part, Path::new("/tmp/clip.mp4.part"));
        assert_eq!(etag, Path::new("/tmp/clip.mp4.part.etag"));
    }
}
