//! The store's one error type: a kind the caller can act on (retry, give up, tell the user) and
//! the path and problem a person needs to fix it.

use std::path::PathBuf;

/// Everything that can go wrong in the store. Every variant names the path it is about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The directory is not an initialised store (no marker, a foreign marker, or an init that
    /// did not finish). Recording there is refused so an unmounted USB mount point never fills
    /// the SD card underneath it.
    #[error("{path}: not an edgenvr store: {reason}")]
    NotAStore {
        /// The directory.
        path: PathBuf,
        /// What is missing or wrong, and what to do.
        reason: String,
    },
    /// Another process has the store open.
    #[error("{path}: store is in use by another process (lock held)")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// A system call failed.
    #[error("{path}: {op}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the store was doing.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// No slot can be taken for a new segment (every slot is being written by some camera).
    #[error(
        "{path}: store full: all {slot_count} slots are being written; add slots or cameras fewer"
    )]
    Full {
        /// The store directory.
        path: PathBuf,
        /// How many slots it has.
        slot_count: u32,
    },
    /// Store files are damaged beyond what recovery repairs (e.g. a slot file missing).
    #[error("{path}: store damaged: {problem}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A request the store cannot honour as asked (bad size, bad camera name, layout mismatch).
    #[error("{path}: {problem}")]
    Invalid {
        /// The store directory.
        path: PathBuf,
        /// What is wrong with the request.
        problem: String,
    },
    /// A GOP could not be written: it is malformed, or larger than an empty slot.
    #[error("{path}: camera {camera}: GOP rejected: {problem}")]
    BadGop {
        /// The store directory.
        path: PathBuf,
        /// The camera whose GOP it was.
        camera: String,
        /// Why.
        problem: String,
    },
    /// A fragment being read was overwritten by newer video since it was listed.
    #[error("{path}: fragment at byte {offset} was overwritten since it was listed")]
    Overwritten {
        /// The slot file.
        path: PathBuf,
        /// Where the fragment was.
        offset: u64,
    },
    /// The store detached from its directory (vanished, renamed, unmounted, failing or
    /// read-only; see `attach.rs`): nothing is written until it is back.
    #[error("{path}: store unavailable ({status}); recording resumes by itself when it is back")]
    Unavailable {
        /// The store directory.
        path: PathBuf,
        /// Why, as the status word (`missing`, `io_error`, `read_only`, `full`).
        status: &'static str,
    },
    /// A second writer was requested for a camera that already has one.
    #[error("{path}: camera {camera} already has a writer open")]
    CameraBusy {
        /// The store directory.
        path: PathBuf,
        /// The camera.
        camera: String,
    },
}

impl StoreError {
    /// Wraps an I/O error with the path and the operation.
    pub(crate) fn io(path: impl Into<PathBuf>, op: &'static str, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            op,
            source,
        }
    }
}
