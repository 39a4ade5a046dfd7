//! The Debian packages as a Pi owner gets them: `scripts/package.sh --profile dev` builds the four
//! `.deb` files once (into `target/package-test/`), and the tests look inside with `dpkg-deb`
//! (files, control fields, conffiles, maintainer scripts, the binaries' ELF machine), run the
//! packaged ARM binaries under qemu-user (`edgenvr --version`, `edgenvr check-config` on the
//! shipped default config), have `systemd-analyze verify` check the shipped unit, and run the
//! maintainer scripts through install, upgrade, remove and purge in a throw-away mount namespace.
//!
//! The dev profile keeps this cheap: the ARM builds reuse the target directories of
//! `scripts/test.sh`'s ARM step, and the packages are gzip-compressed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use edgenvr_tests::bins::workspace_root;

/// ELF `e_machine` values (System V ABI): what a packaged binary must be built for.
const EM_ARM: u16 = 40;
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;

/// One package the script must build.
struct Deb {
    package: &'static str,
    arch: &'static str,
    machine: u16,
}

const DEBS: [Deb; 4] = [
    Deb {
        package: "edgenvr",
        arch: "arm64",
        machine: EM_AARCH64,
    },
    Deb {
        package: "edgenvr",
        arch: "armhf",
        machine: EM_ARM,
    },
    Deb {
        package: "nvrctl",
        arch: "amd64",
        machine: EM_X86_64,
    },
    Deb {
        package: "nvrctl",
        arch: "arm64",
        machine: EM_AARCH64,
    },
];

fn version() -> String {
    let text = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
    let manifest: toml::Value = toml::from_str(&text).unwrap();
    manifest["workspace"]["package"]["version"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn work_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
        .join("package-test")
}

/// Runs `scripts/package.sh --profile dev` once for every test in this file; returns dist/.
fn dist() -> &'static Path {
    static DIST: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let result = DIST.get_or_init(|| {
        let out = work_dir().join("dist");
        if out.exists() {
            std::fs::remove_dir_all(&out).map_err(|e| e.to_string())?;
        }
        let status = Command::new(workspace_root().join("scripts/package.sh"))
            .args(["--profile", "dev", "--out"])
            .arg(&out)
            .current_dir(workspace_root())
            .status()
            .map_err(|e| format!("cannot run scripts/package.sh: {e}"))?;
        if !status.success() {
            return Err(format!("scripts/package.sh --profile dev: {status}"));
        }
        Ok(out)
    });
    match result {
        Ok(path) => path,
        Err(e) => panic!("{e}"),
    }
}

fn deb_path(deb: &Deb) -> PathBuf {
    dist().join(format!("{}_{}_{}.deb", deb.package, version(), deb.arch))
}

fn checked(output: Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what}: {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn dpkg_deb(args: &[&str], deb: &Path) -> String {
    let output = Command::new("dpkg-deb")
        .args(args)
        .arg(deb)
        .output()
        .unwrap();
    checked(
        output,
        &format!("dpkg-deb {} {}", args.join(" "), deb.display()),
    )
}

/// Unpacks `deb` (files and control area) into a fresh directory named after it and the test
/// (tests run in parallel and each gets its own copy).
fn extract(deb: &Deb, test: &str) -> PathBuf {
    let root = work_dir().join(format!("{test}-{}-{}", deb.package, deb.arch));
    if root.exists() {
        std::fs::remove_dir_all(&root).unwrap();
    }
    let path = deb_path(deb);
    let path_arg = path.to_str().unwrap();
    let root_arg = root.to_str().unwrap();
    checked(
        Command::new("dpkg-deb")
            .args(["-x", path_arg, root_arg])
            .output()
            .unwrap(),
        "dpkg-deb -x",
    );
    checked(
        Command::new("dpkg-deb")
            .args(["-e", path_arg])
            .arg(root.join("DEBIAN"))
            .output()
            .unwrap(),
        "dpkg-deb -e",
    );
    root
}

fn elf_machine(binary: &Path) -> u16 {
    let bytes = std::fs::read(binary).unwrap();
    assert_eq!(
        bytes.get(..4),
        Some(&b"\x7fELF"[..]),
        "{}",
        binary.display()
    );
    // e_machine: a little-endian u16 at offset 18 in both ELF32 and ELF64 headers.
    u16::from_le_bytes([bytes[18], bytes[19]])
}

/// Runs an ARM binary of a package under qemu-user, with the cross libc as its root for the
/// dynamic loader (binfmt_misc is not assumed).
fn qemu(deb: &Deb, binary: &Path, args: &[&str]) -> Output {
    let (emulator, sysroot) = match deb.arch {
        "arm64" => ("qemu-aarch64", "/usr/aarch64-linux-gnu"),
        "armhf" => ("qemu-arm", "/usr/arm-linux-gnueabihf"),
        other => panic!("no emulator for {other}"),
    };
    Command::new(emulator)
        .args(["-L", sysroot])
        .arg(binary)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_four_packages_hold_what_they_should() {
    let version = version();
    for deb in &DEBS {
        let path = deb_path(deb);
        assert!(path.exists(), "{} was not built", path.display());
        let fields = dpkg_deb(&["-f"], &path);
        assert!(
            fields.contains(&format!("Package: {}\n", deb.package)),
            "{fields}"
        );
        assert!(
            fields.contains(&format!("Version: {version}\n")),
            "{fields}"
        );
        assert!(
            fields.contains(&format!("Architecture: {}\n", deb.arch)),
            "{fields}"
        );
        assert!(fields.contains("Depends: libc6 (>= 2."), "{fields}");

        let listing = dpkg_deb(&["-c"], &path);
        let binary_entry = format!("./usr/bin/{}\n", deb.package);
        assert!(
            listing
                .lines()
                .any(|l| l.starts_with("-rwxr-xr-x root/root")
                    && l.ends_with(binary_entry.trim_end())),
            "{listing}"
        );
        assert!(
            listing.contains(&format!("./usr/share/doc/{}/copyright", deb.package)),
            "{listing}"
        );
        let root = extract(deb, "contents");
        assert_eq!(
            elf_machine(&root.join("usr/bin").join(deb.package)),
            deb.machine,
            "{} binary built for the wrong machine",
            path.display()
        );
        if deb.package == "edgenvr" {
            assert!(
                listing.contains("./usr/lib/systemd/system/edgenvr.service"),
                "{listing}"
            );
            assert!(listing.contains("./etc/edgenvr/config.toml"), "{listing}");
            let conffiles = std::fs::read_to_string(root.join("DEBIAN/conffiles")).unwrap();
            assert_eq!(conffiles, "/etc/edgenvr/config.toml\n");
            for script in ["postinst", "prerm", "postrm"] {
                let script_path = root.join("DEBIAN").join(script);
                let mode = std::fs::metadata(&script_path).unwrap().permissions();
                assert_eq!(
                    std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
                    0o755,
                    "{script}"
                );
                let syntax = Command::new("sh")
                    .arg("-n")
                    .arg(&script_path)
                    .output()
                    .unwrap();
                checked(syntax, &format!("sh -n {script}"));
            }
            let unit = std::fs::read_to_string(root.join("usr/lib/systemd/system/edgenvr.service"))
                .unwrap();
            for line in [
                "Type=notify",
                "WatchdogSec=",
                "User=edgenvr",
                "ProtectSystem=strict",
                "ReadWritePaths=/srv/edgenvr/store",
                "RequiresMountsFor=/srv/edgenvr/store",
                "NoNewPrivileges=yes",
                "ExecStartPre=/usr/bin/edgenvr check-config",
            ] {
                assert!(unit.lines().any(|l| l.starts_with(line)), "{line}");
            }
            // The unit, the config and the postinst agree on where the store is.
            let config = std::fs::read_to_string(root.join("etc/edgenvr/config.toml")).unwrap();
            assert!(config.contains("dir = \"/srv/edgenvr/store\""));
            let postinst = std::fs::read_to_string(root.join("DEBIAN/postinst")).unwrap();
            assert!(postinst.contains("STORE_DIR=/srv/edgenvr/store"));
        } else {
            assert!(!root.join("DEBIAN/postinst").exists());
        }
    }
}

#[test]
fn packaged_binaries_run_and_accept_the_shipped_config() {
    let version = version();
    for deb in &DEBS {
        let root = extract(deb, "run");
        let binary = root.join("usr/bin").join(deb.package);
        let output = if deb.arch == "amd64" {
            Command::new(&binary).arg("--version").output().unwrap()
        } else {
            qemu(deb, &binary, &["--version"])
        };
        let shown = checked(output, &format!("{} --version", binary.display()));
        assert_eq!(shown.trim(), format!("{} {version}", deb.package));
        if deb.package == "edgenvr" {
            let config = root.join("etc/edgenvr/config.toml");
            let output = qemu(
                deb,
                &binary,
                &["check-config", "--config", config.to_str().unwrap()],
            );
            let shown = checked(output, &format!("{} check-config", deb.arch));
            assert!(shown.contains(": ok ("), "{shown}");
        }
    }
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let available = Command::new("sh")
        .args(["-c", "command -v systemd-analyze"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        eprintln!("systemd-analyze is not installed: the unit is not verified on this machine");
        return;
    }
    let root = extract(&DEBS[0], "verify");
    // verify --root resolves the unit's dependencies (sysinit.target, network-online.target...)
    // inside the root: give it the host's own units beside the packaged one.
    let units = root.join("usr/lib/systemd/system");
    let host_units = ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.join("sysinit.target").exists())
        .expect("systemd-analyze is installed but no systemd units were found");
    for entry in std::fs::read_dir(host_units).unwrap() {
        let entry = entry.unwrap();
        let target = units.join(entry.file_name());
        if entry.file_name() != "edgenvr.service" && entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .arg("/usr/lib/systemd/system/edgenvr.service")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Unknown keys and unparsable values are only warnings (exit 0): the output must be empty.
    assert!(
        output.status.success() && stdout.trim().is_empty() && stderr.trim().is_empty(),
        "systemd-analyze verify: {}\n{stdout}{stderr}",
        output.status
    );
}

/// Runs the packaged maintainer scripts as dpkg would (install, upgrade, remove, purge) in a
/// private mount namespace whose /etc, /var/lib and /srv are overlays on a tmpfs: the scripts
/// really create the user, the directories and the statoverride, and the machine is untouched.
/// Prints `key=value` lines for the test to check. Arguments: extracted package root, scratch
/// directory, `with-gpio` or `without-gpio` (whether the board has a gpio group).
const MAINTAINER_SCRIPTS_RUN: &str = r#"
set -eu
root=$1 scratch=$2 gpio=$3
mount -t tmpfs tmpfs "$scratch"
for d in /etc /var/lib /srv; do
  mkdir -p "$scratch/upper$d" "$scratch/work$d"
  mount -t overlay overlay -o "lowerdir=$d,upperdir=$scratch/upper$d,workdir=$scratch/work$d" "$d"
done
if getent passwd edgenvr >/dev/null || [ -e /srv/edgenvr ]; then
  echo "this machine already has an edgenvr user or /srv/edgenvr" >&2; exit 97
fi
if [ "$gpio" = with-gpio ]; then
  getent group gpio >/dev/null || groupadd --system gpio
elif getent group gpio >/dev/null; then
  groupdel gpio
fi
# What dpkg unpacks before it runs postinst.
mkdir -p /etc/edgenvr && cp "$root/etc/edgenvr/config.toml" /etc/edgenvr/config.toml
"$root/DEBIAN/postinst" configure
echo "home-shell=$(getent passwd edgenvr | cut -d: -f6,7)"
echo "groups=$(id -nG edgenvr)"
stat -c 'stat=%n %U:%G %a' /var/lib/edgenvr /srv/edgenvr /srv/edgenvr/store /etc/edgenvr/config.toml
echo "override=$(dpkg-statoverride --list /etc/edgenvr/config.toml)"
"$root/DEBIAN/postinst" configure 0.0.9 >/dev/null
echo "users-after-upgrade=$(getent passwd | grep -c '^edgenvr:')"
echo "override-after-upgrade=$(dpkg-statoverride --list /etc/edgenvr/config.toml)"
"$root/DEBIAN/prerm" remove
"$root/DEBIAN/postrm" remove
"$root/DEBIAN/postrm" purge
echo "override-after-purge=$(dpkg-statoverride --list /etc/edgenvr/config.toml || true)"
if [ -e /var/lib/edgenvr ]; then echo "state-after-purge=present"; else echo "state-after-purge=gone"; fi
if [ -d /srv/edgenvr/store ]; then echo "store-after-purge=kept"; else echo "store-after-purge=gone"; fi
"#;

#[test]
fn maintainer_scripts_install_upgrade_and_purge_cleanly() {
    let isolated = Command::new("unshare")
        .args(["--mount", "true"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !isolated {
        eprintln!(
            "cannot make a mount namespace here (needs root and unshare): the maintainer \
             scripts are not run on this machine"
        );
        return;
    }
    let root = extract(&DEBS[0], "scripts");
    for (gpio, expected_groups) in [
        ("with-gpio", &["edgenvr", "gpio", "video"][..]),
        ("without-gpio", &["edgenvr", "video"][..]),
    ] {
        let scratch = work_dir().join(format!("scripts-scratch-{gpio}"));
        std::fs::create_dir_all(&scratch).unwrap();
        let output = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(MAINTAINER_SCRIPTS_RUN)
            .arg("sh")
            .arg(&root)
            .arg(&scratch)
            .arg(gpio)
            .output()
            .unwrap();
        let shown = checked(output, &format!("maintainer scripts ({gpio})"));
        let value = |key: &str| -> Vec<String> {
            shown
                .lines()
                .filter_map(|l| l.strip_prefix(&format!("{key}=")))
                .map(str::to_owned)
                .collect()
        };
        assert!(
            shown.contains("systemctl enable --now edgenvr"),
            "a fresh install says how to start: {shown}"
        );
        assert_eq!(value("home-shell"), ["/var/lib/edgenvr:/usr/sbin/nologin"]);
        let mut groups: Vec<String> = value("groups")[0]
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        groups.sort();
        assert_eq!(groups, expected_groups, "{gpio}");
        assert_eq!(
            value("stat"),
            [
                "/var/lib/edgenvr edgenvr:edgenvr 750",
                "/srv/edgenvr root:root 755",
                "/srv/edgenvr/store edgenvr:edgenvr 750",
                "/etc/edgenvr/config.toml root:edgenvr 640",
            ]
        );
        let override_line = ["root edgenvr 640 /etc/edgenvr/config.toml"];
        assert_eq!(value("override"), override_line);
        assert_eq!(value("users-after-upgrade"), ["1"]);
        assert_eq!(value("override-after-upgrade"), override_line);
        assert_eq!(value("override-after-purge"), [""]);
        assert_eq!(value("state-after-purge"), ["gone"]);
        // Recordings are never deleted by the package.
        assert_eq!(value("store-after-purge"), ["kept"]);
    }
}
