//! Both binaries answer `--help` and `--version`, as a newcomer's first commands.

use std::process::Command;

use edgenvr_tests::bins;

fn run(bin: &std::path::Path, arg: &str) -> String {
    let out = Command::new(bin).arg(arg).output().expect("spawn binary");
    assert!(
        out.status.success(),
        "{} {arg} failed: {out:?}",
        bin.display()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn edgenvr_answers_help_and_version() {
    let bin = bins::edgenvr();
    assert!(run(&bin, "--help").contains("Usage: edgenvr"));
    assert_eq!(
        run(&bin, "--version").trim(),
        format!("edgenvr {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn nvrctl_answers_help_and_version() {
    let bin = bins::nvrctl();
    assert!(run(&bin, "--help").contains("Usage: nvrctl"));
    assert_eq!(
        run(&bin, "--version").trim(),
        format!("nvrctl {}", env!("CARGO_PKG_VERSION"))
    );
}
