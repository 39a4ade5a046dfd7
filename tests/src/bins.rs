//! Locating the workspace's binaries for end-to-end tests. `CARGO_BIN_EXE_*` is only set for the
//! package that defines a binary, so this crate builds `edgenvr` once (a no-op when
//! `scripts/test.sh` built it already) and finds it in the target directory.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// The debug `edgenvr` binary, built on first use.
pub fn edgenvr() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let root = workspace_root();
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "edgenvr", "--bin", "edgenvr"])
            .current_dir(&root)
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "cargo build -p edgenvr failed"
        );
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        target.join("debug").join("edgenvr")
    })
    .clone()
}
