//! Locates the workspace's binaries for end-to-end tests.
//!
//! `CARGO_BIN_EXE_<name>` exists only for integration tests of the package that defines the
//! binary, so this crate finds `edgenvr` and `nvrctl` in the target directory it was built into,
//! building them first when they are missing (scripts/test.sh builds them before the tests).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// The target directory the tests run from: the test executable lives in `<target>/<profile>/deps`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| workspace_root().join("target/debug"))
}

/// Path to a workspace binary (`edgenvr` or `nvrctl`), built with `cargo build` if missing.
pub fn bin(name: &str) -> PathBuf {
    let path = profile_dir().join(name);
    if !path.exists() {
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--bin", name])
            .current_dir(workspace_root())
            .status();
        assert!(
            matches!(status, Ok(s) if s.success()),
            "building {name} failed: {status:?}"
        );
    }
    assert!(path.exists(), "{} not found after building", path.display());
    path
}

/// `edgenvr`.
pub fn edgenvr() -> PathBuf {
    bin("edgenvr")
}

/// `nvrctl`.
pub fn nvrctl() -> PathBuf {
    bin("nvrctl")
}
