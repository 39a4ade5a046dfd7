//! Locating the workspace's binaries for end-to-end tests. `CARGO_BIN_EXE_*` is only set for the
//! package that defines a binary, so this crate runs `cargo build --workspace --bins` once per
//! test process (a quick no-op when `scripts/test.sh` built them already, and never a stale
//! binary) and finds them in the shared target directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Whether this test process built the binaries; the lock also serialises test threads' builds.
static BUILT: Mutex<bool> = Mutex::new(false);

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

/// Set to a directory of already built binaries (e.g. `target/release`) to use those instead of
/// building the debug ones: what the benchmarks do.
pub const BIN_DIR_ENV: &str = "EDGENVR_BIN_DIR";

/// Path of binary `name`, with the workspace's binaries built (once per test process) first.
///
/// Builds `--workspace --bins`, exactly as scripts/test.sh does before the tests: building one
/// package alone would unify dependency features differently and relink the binary every time.
/// With [`BIN_DIR_ENV`] set, takes the binary from there and builds nothing.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV) {
        let path = PathBuf::from(dir).join(name);
        anyhow::ensure!(path.exists(), "{} missing ({BIN_DIR_ENV})", path.display());
        return Ok(path);
    }
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !*built {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(workspace_root())
            .args(["build", "--quiet", "--workspace", "--bins"])
            .status()?;
        anyhow::ensure!(status.success(), "cargo build --workspace --bins failed");
        *built = true;
    }
    let path = target_dir().join(name);
    anyhow::ensure!(path.exists(), "{} missing after building", path.display());
    Ok(path)
}

/// The `edgenvr` binary; panics (failing the test) when it cannot be built.
pub fn edgenvr() -> PathBuf {
    match binary("edgenvr") {
        Ok(path) => path,
        Err(e) => panic!("cannot build edgenvr: {e:#}"),
    }
}

/// The `nvrctl` binary; panics (failing the test) when it cannot be built.
pub fn nvrctl() -> PathBuf {
    match binary("nvrctl") {
        Ok(path) => path,
        Err(e) => panic!("cannot build nvrctl: {e:#}"),
    }
}

/// An `nvrctl` of an earlier commit (for protocol compatibility tests), built once from the
/// repository's history into `target/compat/`: `git archive COMMIT` unpacked there, its binary
/// renamed `nvrctl-<tag>` so it never replaces the current one, and built into the shared
/// target directory so the dependencies it shares with the current build are not rebuilt.
/// Needs `git` and a clone that holds `commit`.
pub fn old_nvrctl(commit: &str, tag: &str) -> anyhow::Result<PathBuf> {
    let _serial = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let target_root = target_dir()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| workspace_root().join("target"));
    let bin_name = format!("nvrctl-{tag}");
    let source = target_root.join("compat").join(&bin_name);
    if !source.join("Cargo.toml").exists() {
        std::fs::create_dir_all(&source)?;
        let archive = Command::new("git")
            .current_dir(workspace_root())
            .args(["archive", "--format=tar", commit])
            .output()?;
        anyhow::ensure!(
            archive.status.success(),
            "git archive {commit}: {} (a shallow clone lacks the history this test needs)",
            String::from_utf8_lossy(&archive.stderr).trim()
        );
        let mut tar = Command::new("tar")
            .current_dir(&source)
            .args(["-x", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()?;
        if let Some(stdin) = tar.stdin.as_mut() {
            std::io::Write::write_all(stdin, &archive.stdout)?;
        }
        anyhow::ensure!(tar.wait()?.success(), "unpacking {commit} failed");
        let manifest = source.join("host/Cargo.toml");
        let text = std::fs::read_to_string(&manifest)?;
        let renamed = text.replace(
            "[[bin]]\nname = \"nvrctl\"",
            &format!("[[bin]]\nname = \"{bin_name}\""),
        );
        anyhow::ensure!(
            renamed != text,
            "{commit}: host/Cargo.toml has no [[bin]] nvrctl"
        );
        std::fs::write(&manifest, renamed)?;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&source)
        .env("CARGO_TARGET_DIR", &target_root)
        .args(["build", "--quiet", "-p", "nvrctl", "--bin", &bin_name])
        .status()?;
    anyhow::ensure!(status.success(), "building nvrctl of {commit} failed");
    let path = target_root.join("debug").join(&bin_name);
    anyhow::ensure!(path.exists(), "{} missing after building", path.display());
    Ok(path)
}
