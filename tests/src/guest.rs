//! The SD image, built and booted: `scripts/package.sh --profile dev` and `scripts/image.sh
//! --no-xz` make the card (`build_image`); a `Card` is a copy of it, enlarged like a bigger
//! card, whose FAT partition is read and written with mtools as a user's computer would; a
//! `Guest` boots a card under `qemu-system-aarch64 -M virt` (Cortex-A72, Debian's arm64 kernel
//! and initrd taken from the card's FAT partition) and runs commands in it over SSH.
//!
//! The guest's network is QEMU's user-mode network with `restrict=on`: it reaches nothing but
//! what the test forwards. `hostfwd` on 127.0.0.1 brings SSH and the box's ports to the host;
//! `guestfwd` brings host services (the test camera) to the guest at [`HOST_ALIAS`], one socat
//! per connection. So the box's own attempts to reach the world (NTP, a placeholder camera)
//! go nowhere.
//!
//! Owns the QEMU child: dropping a `Guest` (or `power_cut`) kills it with SIGKILL, a power cut
//! for the box. The serial console is read on a thread, line by line, so tests wait for what
//! the box prints there. Blocking; one guest at a time is what two cores allow.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};

use crate::bins::workspace_root;

/// The address at which the guest reaches the host services given to [`Guest::boot`].
pub const HOST_ALIAS: &str = "10.0.2.100";
/// Where the image's boot partition starts (`scripts/image.sh`, partition_start_mib).
const FAT_OFFSET_BYTES: u64 = 4 << 20;
/// Logins tried per command before a failure of ssh itself counts.
const SSH_ATTEMPTS: u32 = 3;
/// Guest memory: the box's recorder, sshd and systemd fit in a fraction of a Pi 3's 1 GiB.
const GUEST_MEMORY_MIB: u32 = 1024;
/// The kernel command line the Pi's firmware would take from cmdline.txt, for `-M virt`'s
/// PL011 console.
const KERNEL_CMDLINE: &str = "root=LABEL=edgenvr-root rootwait ro console=ttyAMA0 net.ifnames=0";

/// Runs `command`, failing with its output when it does not succeed; returns stdout.
fn checked(command: &mut Command) -> anyhow::Result<String> {
    let output = command
        .output()
        .with_context(|| format!("cannot run {command:?}"))?;
    ensure!(
        output.status.success(),
        "{command:?}: {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Builds the dev `.deb` and the raw image into `out`; returns the image's path.
pub fn build_image(out: &Path) -> anyhow::Result<PathBuf> {
    let root = workspace_root();
    let dist = out.join("dist");
    checked(
        Command::new(root.join("scripts/package.sh"))
            .args(["--profile", "dev", "--out"])
            .arg(&dist)
            .current_dir(&root)
            .stdout(Stdio::inherit()),
    )?;
    let deb = std::fs::read_dir(&dist)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("edgenvr_") && n.ends_with("_arm64.deb"))
        })
        .context("no edgenvr arm64 .deb from scripts/package.sh")?;
    let status = Command::new(root.join("scripts/image.sh"))
        .arg("--deb")
        .arg(&deb)
        .arg("--out")
        .arg(out)
        .arg("--no-xz")
        .current_dir(&root)
        .status()
        .context("cannot run scripts/image.sh")?;
    ensure!(status.success(), "scripts/image.sh: {status}");
    std::fs::read_dir(out)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "img"))
        .context("scripts/image.sh left no .img")
}

/// A card: a copy of the image, its FAT partition edited with mtools.
pub struct Card {
    path: PathBuf,
}

impl Card {
    /// Copies `image` to `path`, `extra_mib` larger (the room the first boot fills with the
    /// store's partition).
    pub fn flash(image: &Path, path: &Path, extra_mib: u64) -> anyhow::Result<Card> {
        checked(
            Command::new("cp")
                .arg("--sparse=always")
                .arg(image)
                .arg(path),
        )?;
        let size = std::fs::metadata(path)?.len() + (extra_mib << 20);
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)?
            .set_len(size)?;
        Ok(Card {
            path: path.to_owned(),
        })
    }

    /// The card's file path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn mtools_image(&self) -> String {
        format!("{}@@{FAT_OFFSET_BYTES}", self.path.display())
    }

    /// The names in the FAT partition's top directory.
    pub fn boot_files(&self) -> anyhow::Result<Vec<String>> {
        let listing =
            checked(Command::new("mdir").args(["-b", "-i", &self.mtools_image(), "::/"]))?;
        Ok(listing
            .lines()
            .map(|l| l.trim_start_matches("::/").trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect())
    }

    /// Reads a file of the FAT partition.
    pub fn read(&self, name: &str) -> anyhow::Result<Vec<u8>> {
        let output = Command::new("mtype")
            .args(["-i", &self.mtools_image(), &format!("::/{name}")])
            .output()?;
        ensure!(output.status.success(), "mtype {name}: {output:?}");
        Ok(output.stdout)
    }

    /// Writes (replaces) a file of the FAT partition, as a user's computer would.
    pub fn write(&self, name: &str, contents: &[u8]) -> anyhow::Result<()> {
        let staged = tempfile::NamedTempFile::new()?;
        std::fs::write(staged.path(), contents)?;
        checked(
            Command::new("mcopy")
                .args(["-o", "-i", &self.mtools_image()])
                .arg(staged.path())
                .arg(format!("::/{name}")),
        )?;
        Ok(())
    }

    /// Copies the kernel and initrd that raspi-firmware put on the FAT partition into `dir`;
    /// returns their paths.
    pub fn kernel_and_initrd(&self, dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
        let files = self.boot_files()?;
        let pick = |prefix: &str| -> anyhow::Result<PathBuf> {
            let name = files
                .iter()
                .find(|f| f.starts_with(prefix))
                .with_context(|| format!("no {prefix}* on the boot partition: {files:?}"))?;
            let path = dir.join(name);
            std::fs::write(&path, self.read(name)?)?;
            Ok(path)
        };
        Ok((pick("vmlinuz")?, pick("initrd.img")?))
    }
}

/// A free TCP port on 127.0.0.1 (bound then released; QEMU binds it right after).
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[derive(Default)]
struct Console {
    lines: Vec<String>,
    closed: bool,
}

/// A booted card under QEMU; killed (a power cut) on drop.
pub struct Guest {
    child: Child,
    console: Arc<(Mutex<Console>, Condvar)>,
    ssh_port: u16,
    key: PathBuf,
    forwards: Vec<(u16, u16)>,
    booted: Instant,
}

impl Guest {
    /// Boots `card` with `kernel` and `initrd`, SSH forwarded plus each guest port of
    /// `guest_ports` to a free host port on 127.0.0.1, and each `(alias_port, host_port)` of
    /// `host_services` reachable in the guest as `HOST_ALIAS:alias_port`. `key` is the private
    /// key whose public half is in the card's authorized_keys. The console goes to
    /// `console_log` too.
    pub fn boot(
        card: &Card,
        boot_files: (&Path, &Path),
        key: &Path,
        guest_ports: &[u16],
        host_services: &[(u16, u16)],
        console_log: &Path,
    ) -> anyhow::Result<Guest> {
        let (kernel, initrd) = boot_files;
        let ssh_port = free_port()?;
        let mut forwards = Vec::new();
        let mut netdev = format!("user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:{ssh_port}-:22");
        for &guest in guest_ports {
            let host = free_port()?;
            netdev.push_str(&format!(",hostfwd=tcp:127.0.0.1:{host}-:{guest}"));
            forwards.push((guest, host));
        }
        for (alias_port, host_port) in host_services {
            netdev.push_str(&format!(
                ",guestfwd=tcp:{HOST_ALIAS}:{alias_port}-cmd:socat - TCP:127.0.0.1:{host_port}"
            ));
        }
        let mut child = Command::new("qemu-system-aarch64")
            .args(["-M", "virt", "-cpu", "cortex-a72", "-smp", "2"])
            .args(["-m", &GUEST_MEMORY_MIB.to_string()])
            .args(["-display", "none", "-monitor", "none", "-serial", "stdio"])
            .args(["-no-reboot"])
            .arg("-kernel")
            .arg(kernel)
            .arg("-initrd")
            .arg(initrd)
            .args(["-append", KERNEL_CMDLINE])
            .arg("-drive")
            .arg(format!(
                "file={},format=raw,if=none,id=card,cache=writeback",
                card.path().display()
            ))
            .args(["-device", "virtio-blk-pci,drive=card"])
            // No option ROM: the kernel is loaded directly (and ipxe-qemu need not be installed).
            .args([
                "-netdev",
                &netdev,
                "-device",
                "virtio-net-pci,netdev=net0,romfile=",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start qemu-system-aarch64")?;
        let stdout = child.stdout.take().context("no QEMU stdout")?;
        let console = Arc::new((Mutex::new(Console::default()), Condvar::new()));
        let thread_console = console.clone();
        let mut log = std::fs::File::create(console_log)?;
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut raw = Vec::new();
            while reader.read_until(b'\n', &mut raw).unwrap_or(0) > 0 {
                let _ = log.write_all(&raw);
                let line = String::from_utf8_lossy(&raw)
                    .trim_end_matches(['\r', '\n'])
                    .to_owned();
                raw.clear();
                let (lock, changed) = &*thread_console;
                lock.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .lines
                    .push(line);
                changed.notify_all();
            }
            let (lock, changed) = &*thread_console;
            lock.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
            changed.notify_all();
        });
        Ok(Guest {
            child,
            console,
            ssh_port,
            key: key.to_owned(),
            forwards,
            booted: Instant::now(),
        })
    }

    /// Time since QEMU was started.
    pub fn uptime(&self) -> Duration {
        self.booted.elapsed()
    }

    /// The host port (on 127.0.0.1) forwarded to `guest_port`.
    pub fn host_port(&self, guest_port: u16) -> u16 {
        self.forwards
            .iter()
            .find(|(g, _)| *g == guest_port)
            .map(|(_, h)| *h)
            .unwrap_or_else(|| panic!("guest port {guest_port} is not forwarded"))
    }

    /// Waits for a console line containing `needle`; returns it.
    pub fn wait_console(&self, needle: &str, timeout: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        let (lock, changed) = &*self.console;
        let mut console = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(line) = console.lines.iter().find(|l| l.contains(needle)) {
                return Ok(line.clone());
            }
            ensure!(
                !console.closed,
                "QEMU exited before the console showed {needle:?}"
            );
            let left = deadline.saturating_duration_since(Instant::now());
            ensure!(
                !left.is_zero(),
                "no {needle:?} on the console within {timeout:?}"
            );
            console = changed
                .wait_timeout(console, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Everything the console showed so far.
    pub fn console(&self) -> String {
        let (lock, _) = &*self.console;
        lock.lock()
            .unwrap_or_else(|e| e.into_inner())
            .lines
            .join("\n")
    }

    /// `ssh` to the guest as root with the test's key, through the shared connection when
    /// [`Guest::wait_ssh`] has opened it; `args` go before the destination.
    fn ssh_base(&self, args: &[&str]) -> Command {
        let mut ssh = Command::new("ssh");
        ssh.arg("-i")
            .arg(&self.key)
            .args(["-p", &self.ssh_port.to_string()])
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "-o",
                "ConnectTimeout=60",
                "-o",
            ])
            .arg(format!("ControlPath={}", self.control_path().display()))
            .args(args)
            .arg("root@127.0.0.1");
        ssh
    }

    /// The socket of the shared SSH connection.
    fn control_path(&self) -> PathBuf {
        self.key.with_extension(format!("ssh-{}", self.ssh_port))
    }

    fn ssh_command(&self, command: &str) -> Command {
        let mut ssh = self.ssh_base(&["-o", "ControlMaster=no"]);
        ssh.arg(command);
        ssh
    }

    /// Waits until sshd is started (its line on the console) and a login works, then opens
    /// one connection in the background that every later command shares: a key exchange
    /// costs seconds on an emulated CPU.
    pub fn wait_ssh(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        self.wait_console("OpenBSD Secure Shell server", timeout)?;
        loop {
            // -f: into the background once logged in; -N: no command, only the connection.
            let output = self
                .ssh_base(&["-o", "ControlMaster=yes", "-f", "-N"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output()?;
            if output.status.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("no SSH login within {timeout:?}: {output:?}");
            }
            // sshd said it started; the forwarded connection can still race its listen().
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Runs `command` in the guest (as root, through a shell) and returns its output. A login
    /// that fails in ssh itself (exit 255: an emulated guest busy zero-filling its store can miss
    /// the banner timeout) is tried again, up to [`SSH_ATTEMPTS`] times.
    pub fn ssh(&self, command: &str) -> anyhow::Result<Output> {
        let mut attempt = 1;
        loop {
            let output = self.ssh_command(command).stdin(Stdio::null()).output()?;
            if output.status.code() != Some(255) || attempt == SSH_ATTEMPTS {
                return Ok(output);
            }
            eprintln!(
                "guest: ssh failed ({}), trying again",
                String::from_utf8_lossy(&output.stderr).trim()
            );
            attempt += 1;
        }
    }

    /// Runs `command` in the guest; fails unless it succeeds; returns stdout.
    pub fn ssh_ok(&self, command: &str) -> anyhow::Result<String> {
        let output = self.ssh(command)?;
        ensure!(
            output.status.success(),
            "ssh {command}: {}\nstdout: {}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Runs `command` in the guest with `input` on its stdin; fails unless it succeeds.
    pub fn ssh_with_input(&self, command: &str, input: &[u8]) -> anyhow::Result<String> {
        let mut child = self
            .ssh_command(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        child.stdin.take().context("no stdin")?.write_all(input)?;
        let output = child.wait_with_output()?;
        ensure!(output.status.success(), "ssh {command}: {output:?}");
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Kills QEMU with SIGKILL: the box loses power mid-whatever it was doing.
    pub fn power_cut(mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // The shared connection's process ends with the guest; this only tidies its socket.
        let _ = self
            .ssh_base(&["-O", "exit"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Makes an ed25519 key pair at `path` (and `path`.pub) with ssh-keygen; returns the public line.
pub fn ssh_key(path: &Path) -> anyhow::Result<String> {
    checked(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "image-test", "-f"])
            .arg(path),
    )?;
    Ok(std::fs::read_to_string(path.with_extension("pub"))?)
}
