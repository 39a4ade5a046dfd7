//! Locating the workspace's binaries for end-to-end tests. `CARGO_BIN_EXE_*` is only set for the
//! package that defines a binary, so this crate finds them in the shared target directory and
//! builds them (`cargo build --bins -p PACKAGE`) when they are missing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Serialises builds: tests in one binary run in parallel threads.
static BUILD_LOCK: Mutex<()> = Mutex::new(());

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// The debug target directory (honours `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
        .join("debug")
}

/// Path of binary `name` from `package`, built first when missing.
pub fn binary(package: &str, name: &str) -> anyhow::Result<PathBuf> {
    let path = target_dir().join(name);
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(workspace_root())
            .args(["build", "--bins", "-p", package])
            .status()?;
        anyhow::ensure!(status.success(), "cargo build -p {package} failed");
    }
    anyhow::ensure!(path.exists(), "{} missing after building", path.display());
    Ok(path)
}

/// The `edgenvr` binary.
pub fn edgenvr() -> anyhow::Result<PathBuf> {
    binary("edgenvr", "edgenvr")
}

/// The `nvrctl` binary.
pub fn nvrctl() -> anyhow::Result<PathBuf> {
    binary("nvrctl", "nvrctl")
}
