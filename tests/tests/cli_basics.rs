//! Both binaries answer `--help` and `--version`, as a newcomer's first commands; `edgenvr run`
//! starts with glibc set up for the box (`malloc.rs`).

use std::process::Command;
use std::time::Duration;

use edgenvr_tests::bins;
use edgenvr_tests::edgenvr_box::BoxDir;
use edgenvr_tests::process::Process;

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

#[test]
fn the_box_runs_without_glibcs_thread_caches_unless_the_user_set_them() {
    // Given empty, as unset (and whatever the environment running the tests holds is replaced).
    let cases = [
        ("", "glibc.malloc.tcache_count=0"),
        (
            "glibc.malloc.check=0",
            "glibc.malloc.check=0:glibc.malloc.tcache_count=0",
        ),
        ("glibc.malloc.tcache_count=3", "glibc.malloc.tcache_count=3"),
    ];
    for (given, expected) in cases {
        let box_dir = BoxDir::new(
            "malloc",
            &["--size", "1MiB", "--slots", "4"],
            "",
            "[state]\nlisten = \"127.0.0.1:0\"\n",
        );
        let config = box_dir.config.to_str().unwrap();
        let envs = [("RUST_LOG", "info"), ("GLIBC_TUNABLES", given)];
        let mut edgenvr =
            Process::spawn(&bins::edgenvr(), &["run", "--config", config], &envs).unwrap();
        // As the box's C library reads them (not `/proc/PID/environ`: glibc cuts the string it
        // was given at the first tunable while parsing it).
        let line = edgenvr
            .wait_for_line("C allocator: ", Duration::from_secs(30))
            .unwrap();
        let logged = format!("GLIBC_TUNABLES={expected} arenas=2 mmap_threshold=131072");
        assert!(line.ends_with(&logged), "{given:?}: {line}");
        // Up and serving after whatever restart there was.
        edgenvr
            .wait_for_listener("state", Duration::from_secs(30))
            .unwrap();
        edgenvr.signal("TERM").unwrap();
        assert!(edgenvr.wait(Duration::from_secs(30)).unwrap().success());
        assert!(
            !edgenvr.stderr().contains("could not restart"),
            "{}",
            edgenvr.stderr()
        );
    }
}
