//! The whole box, booted: `scripts/image.sh` builds the SD image (with the dev `.deb`), and the
//! card boots under `qemu-system-aarch64 -M virt` (Cortex-A72, Debian's arm64 kernel and initrd
//! from the card's boot partition, user-mode networking restricted to what the test forwards;
//! the guest reaches the host's test camera at `HOST_ALIAS`). Everything is the real thing: systemd, the image's first-boot units,
//! edgenvr's package and unit, gst-rtsp-server on the host, `nvrctl` and ffprobe.
//!
//! Two boots of one card:
//! 1. First boot with a broken `edgenvr.toml` on the card (written with mtools, as a user's
//!    computer would): the store's partition is made to fill the card and provisioned, the SSH
//!    key from the card lets us in, the reason the config is refused is on the console and in
//!    the journal, and edgenvr is not running. The card-friendly settings hold (noatime, /tmp in
//!    RAM, no swap, the journal in /run). The fixed config is written to the card and applied as
//!    a boot applies it (edgenvr-card.service, then edgenvr.service); the box records the host's
//!    camera, a sim PIR set in the guest (`edgenvr sim set`) reaches `nvrctl watch` on the host
//!    and switches an output on the PL061 GPIO chip through the gpiocdev backend (seen in the
//!    kernel's /sys/kernel/debug/gpio), `nvrctl pull` gets a clip ffprobe decodes. Then QEMU is
//!    killed mid-recording: a power cut.
//! 2. The next boot applies the card's (fixed) config at boot: systemd starts edgenvr, the
//!    hostname is the box's name, the recordings from before the cut are still listed and pull
//!    as clips that decode, at most the sync interval (plus the GOP in flight) is lost, recording
//!    resumes, and `edgenvr store fsck` finds the store usable.
//!
//! `#[ignore]`: needs root, qemu-system-aarch64 and minutes; `scripts/test.sh` runs it in its
//! own step (`EDGENVR_SKIP_IMAGE=1` skips it). Each phase prints its duration, and the guest's
//! `systemd-analyze` output is printed for the boot-time figures in the README.

use std::path::Path;
use std::time::{Duration, Instant};

use edgenvr_tests::bins::{self, target_dir};
use edgenvr_tests::clips::{make_clip, Codec, FPS, GOP_FRAMES};
use edgenvr_tests::ffprobe::{count_video_frames, decode_errors};
use edgenvr_tests::guest::{build_image, ssh_key, Card, Guest, HOST_ALIAS};
use edgenvr_tests::nvrctl_cli::nvrctl;
use edgenvr_tests::rtsp_server::RtspServer;
use edgenvr_tests::watcher::Watcher;

/// Hang guards only: emulated ARM on a loaded two-core machine is slow.
const BOOT_GUARD: Duration = Duration::from_secs(600);
const STEP_GUARD: Duration = Duration::from_secs(240);
const TOKEN: &str = "image-test-token-0123456789";
const STATE_PORT: u16 = 7420;
const HTTP_PORT: u16 = 7421;
/// The card is this much larger than the image: the store's partition on first boot.
const CARD_EXTRA_MIB: u64 = 128;
/// `[storage] sync_interval` below, in milliseconds.
const SYNC_INTERVAL_MS: i64 = 1_000;
const GOP_MS: i64 = GOP_FRAMES as i64 * 1000 / FPS as i64;

/// Prints how long a phase took.
struct Phase {
    name: &'static str,
    started: Instant,
}

impl Phase {
    fn start(name: &'static str) -> Phase {
        eprintln!("image_boot: {name} ...");
        Phase {
            name,
            started: Instant::now(),
        }
    }
}

impl Drop for Phase {
    fn drop(&mut self) {
        eprintln!(
            "image_boot: {} took {:.1} s",
            self.name,
            self.started.elapsed().as_secs_f64()
        );
    }
}

fn config(camera_url: &str, broken: bool) -> String {
    // The broken one has a key edgenvr does not know, the commonest mistake in a hand edit.
    let box_extra = if broken { "colour = \"red\"\n" } else { "" };
    format!(
        r#"[box]
name = "image-box"
{box_extra}
[storage]
dir = "/srv/edgenvr/store"
segment = "4s"
sync_interval = "1s"

[state]
listen = "0.0.0.0:{STATE_PORT}"

[http]
listen = "0.0.0.0:{HTTP_PORT}"
token = "{TOKEN}"

[[sensor]]
name = "pir-hall"
kind = "pir"
backend = "sim"
debounce = "50ms"

[[output]]
name = "light"
backend = "gpiocdev"
chip = "gpiochip0"
line = 0

[[rule]]
when = "pir-hall"
then = "light"
for = "10m"

[[camera]]
name = "front"
url = "{camera_url}"
mode = "continuous"
"#
    )
}

/// `nvrctl recordings ... --json` for camera `front`: the ranges as (start, end) in ms, or
/// why there are none yet (the box still starting, the camera not yet listed).
fn ranges(http: &str) -> Result<Vec<(i64, i64)>, String> {
    let listed = nvrctl(
        &["recordings", http, "--camera", "front", "--json"],
        Some(TOKEN),
    )
    .map_err(|e| e.to_string())?;
    if !listed.status.success() {
        return Err(format!("{listed:?}"));
    }
    let json: serde_json::Value =
        serde_json::from_slice(&listed.stdout).map_err(|e| e.to_string())?;
    let camera = json["cameras"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["camera"] == "front"))
        .ok_or_else(|| format!("no camera front in {json}"))?;
    let ranges = camera["ranges"]
        .as_array()
        .ok_or_else(|| format!("no ranges in {camera}"))?;
    ranges
        .iter()
        .map(|r| match (r["start_ms"].as_i64(), r["end_ms"].as_i64()) {
            (Some(start), Some(end)) => Ok((start, end)),
            _ => Err(format!("a range without start_ms and end_ms: {r}")),
        })
        .collect()
}

/// Waits until the listing holds at least `ms` of video ending after `after_ms`; returns it.
fn wait_recorded(http: &str, after_ms: i64, ms: i64) -> Vec<(i64, i64)> {
    let deadline = Instant::now() + STEP_GUARD;
    loop {
        let listed = ranges(http);
        if let Ok(listed) = &listed {
            if listed
                .iter()
                .any(|&(start, end)| end > after_ms && end - start.max(after_ms) >= ms)
            {
                return listed.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "no {ms} ms recorded after {after_ms}: {listed:?}"
        );
        // Video reaches the listing a GOP at a time; there is no event to await from outside.
        std::thread::sleep(Duration::from_millis(GOP_MS as u64));
    }
}

/// Pulls `from..to` (ms) and checks the clip decodes with frames in it.
fn pull_and_probe(http: &str, from_ms: i64, to_ms: i64, out: &Path) -> u64 {
    let rfc3339 = |ms: i64| jiff::Timestamp::from_millisecond(ms).unwrap().to_string();
    let pull = nvrctl(
        &[
            "pull",
            http,
            "--camera",
            "front",
            "--from",
            &rfc3339(from_ms),
            "--to",
            &rfc3339(to_ms),
            "-o",
            out.to_str().unwrap(),
        ],
        Some(TOKEN),
    )
    .unwrap();
    assert!(pull.status.success(), "nvrctl pull: {pull:?}");
    let frames = count_video_frames(out).unwrap();
    assert!(frames > 0, "the pulled clip holds no frames");
    assert_eq!(
        decode_errors(out).unwrap(),
        "",
        "the pulled clip does not decode cleanly"
    );
    frames
}

/// The guest's clock (what its recordings are stamped with), in ms since the epoch.
fn guest_now_ms(guest: &Guest) -> i64 {
    let out = guest.ssh_ok("date +%s%3N").unwrap();
    out.trim()
        .parse()
        .unwrap_or_else(|e| panic!("guest date {out:?}: {e}"))
}

fn print_boot_figures(guest: &Guest, what: &str) {
    // One call: each command costs a round trip through an emulated CPU.
    let command = "systemd-analyze time; systemd-analyze blame | head -n 12; \
                   systemd-analyze critical-chain edgenvr.service";
    match guest.ssh(command) {
        Ok(out) => eprintln!(
            "image_boot: {what}: {command}\n{}",
            String::from_utf8_lossy(&out.stdout)
        ),
        Err(e) => eprintln!("image_boot: {what}: {command}: {e}"),
    }
}

#[test]
#[ignore = "boots the SD image under qemu-system-aarch64: root and minutes; scripts/test.sh runs it"]
fn image_boots_records_and_survives_a_power_cut() {
    if std::env::var_os("EDGENVR_SKIP_IMAGE").is_some_and(|v| v == "1") {
        eprintln!("image_boot: NOT RUN (EDGENVR_SKIP_IMAGE=1)");
        return;
    }
    let work_dir = target_dir().join("image-test");
    std::fs::create_dir_all(&work_dir).unwrap();
    let work = tempfile::tempdir_in(&work_dir).unwrap();
    // The host side first: the binaries, the camera, the key.
    let _ = bins::nvrctl();
    let clip = make_clip(work.path(), Codec::H264, 10).unwrap();
    let server = RtspServer::start(&[("/front", &clip)], None).unwrap();
    // The camera as the guest sees it: HOST_ALIAS:554, forwarded to the server's port.
    let camera_url = format!("rtsp://{HOST_ALIAS}/front");
    let camera_forward = [(554, server.port())];
    let key = work.path().join("id_image");
    let public_key = ssh_key(&key).unwrap();

    let image = {
        let _phase = Phase::start("building the image (scripts/image.sh --no-xz)");
        build_image(&work_dir.join("out")).unwrap()
    };
    let card = Card::flash(&image, &work.path().join("card.img"), CARD_EXTRA_MIB).unwrap();
    let files = card.boot_files().unwrap();
    for expected in [
        "config.txt",
        "cmdline.txt",
        "edgenvr.toml",
        "authorized_keys",
        "wpa_supplicant.conf",
    ] {
        assert!(
            files.iter().any(|f| f == expected),
            "no {expected} on the boot partition: {files:?}"
        );
    }
    let cmdline = String::from_utf8(card.read("cmdline.txt").unwrap()).unwrap();
    assert!(
        cmdline.contains("root=LABEL=edgenvr-root"),
        "cmdline.txt: {cmdline}"
    );
    // As a user would: the key and a config (broken, this time) written on the FAT partition.
    card.write("authorized_keys", public_key.as_bytes())
        .unwrap();
    card.write("edgenvr.toml", config(&camera_url, true).as_bytes())
        .unwrap();
    let (kernel, initrd) = card.kernel_and_initrd(work.path()).unwrap();
    let ports = [STATE_PORT, HTTP_PORT];

    // Boot 1: first boot, broken config.
    let guest = {
        let _phase = Phase::start("boot 1 (first boot) to SSH");
        let guest = Guest::boot(
            &card,
            (&kernel, &initrd),
            &key,
            &ports,
            &camera_forward,
            &work.path().join("console-1.log"),
        )
        .unwrap();
        guest.wait_ssh(BOOT_GUARD).unwrap();
        guest
    };
    {
        let _phase =
            Phase::start("first-boot setup (store partition, store init) until boot is complete");
        // `--wait` returns once the boot's jobs are done: running, or degraded if a unit failed.
        let state = guest.ssh("systemctl is-system-running --wait").unwrap();
        let state = String::from_utf8_lossy(&state.stdout).trim().to_owned();
        let failed = guest.ssh_ok("systemctl --failed --no-legend").unwrap();
        assert_eq!(
            state,
            "running",
            "failed units: {failed}\nconsole:\n{}",
            guest.console()
        );
    }
    let http = format!("127.0.0.1:{}", guest.host_port(HTTP_PORT));
    let state_addr = format!("127.0.0.1:{}", guest.host_port(STATE_PORT));
    {
        let _phase = Phase::start("checks after the first boot");
        // The reason for refusing the config, on the console and in the journal.
        let reason = guest
            .wait_console("unknown field `colour`", STEP_GUARD)
            .unwrap();
        assert!(reason.contains("edgenvr-card"), "{reason}");
        guest
            .wait_console("edgenvr.toml on the card is not usable", STEP_GUARD)
            .unwrap();
        let journal = guest
            .ssh_ok("journalctl -b -u edgenvr-card -u edgenvr --no-pager")
            .unwrap();
        assert!(journal.contains("unknown field `colour`"), "{journal}");
        let active = guest.ssh("systemctl is-active edgenvr").unwrap();
        assert_eq!(String::from_utf8_lossy(&active.stdout).trim(), "inactive");
        assert_eq!(
            guest
                .ssh_ok("systemctl show -P ConditionResult edgenvr")
                .unwrap()
                .trim(),
            "no",
            "edgenvr.service was started with a broken config"
        );
        // The store: partition 3 fills the card, mounted at /srv/edgenvr, provisioned.
        let mount = guest
            .ssh_ok("findmnt -n -o SOURCE,OPTIONS /srv/edgenvr")
            .unwrap();
        assert!(mount.starts_with("/dev/vda3 "), "{mount}");
        assert!(mount.contains("noatime"), "{mount}");
        let part_mib: u64 = guest
            .ssh_ok("echo $(( $(blockdev --getsize64 /dev/vda3) >> 20 ))")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            part_mib + 8 >= CARD_EXTRA_MIB,
            "partition 3 is {part_mib} MiB, the card had {CARD_EXTRA_MIB} MiB free"
        );
        // Provisioned, sized to the partition: the slots are zero-filled, so they occupy it.
        let store_mib: u64 = guest
            .ssh_ok("du -sm /srv/edgenvr/store | cut -f1")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The size chosen from the file system's free space (less 2 % and 16 MiB of room).
        let chosen = guest
            .ssh_ok("cat /var/lib/edgenvr-image/store-size")
            .unwrap();
        let chosen_mib: u64 = chosen
            .trim()
            .strip_suffix("MiB")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("store-size {chosen:?}"));
        assert!(
            chosen_mib * 10 >= part_mib * 7,
            "a {chosen_mib} MiB store on a {part_mib} MiB partition"
        );
        // Whole slots only: up to one slot (16 MiB at most) less than asked.
        assert!(
            store_mib + 16 >= chosen_mib,
            "the store holds {store_mib} MiB of the {chosen_mib} MiB asked"
        );
        guest
            .ssh_ok("runuser -u edgenvr -- edgenvr store ls /srv/edgenvr/store")
            .unwrap();
        // Kind to the card.
        let root_options = guest.ssh_ok("findmnt -n -o OPTIONS /").unwrap();
        assert!(root_options.contains("noatime"), "/: {root_options}");
        assert_eq!(
            guest.ssh_ok("findmnt -n -o FSTYPE /tmp").unwrap().trim(),
            "tmpfs"
        );
        assert_eq!(
            guest.ssh_ok("tail -n +2 /proc/swaps").unwrap().trim(),
            "",
            "swap is on"
        );
        let journals = guest
            .ssh_ok("find /run/log/journal /var/log/journal -name '*.journal' 2>/dev/null; true")
            .unwrap();
        assert!(journals.contains("/run/log/journal/"), "{journals}");
        assert!(
            !journals.contains("/var/log/journal/"),
            "the journal is on the card: {journals}"
        );
        print_boot_figures(&guest, "boot 1");
    }

    // The fixed config, written to the card and applied as a boot applies it.
    let pre_cut_end = {
        let _phase = Phase::start("fixed config: recording, PIR, watch, pull");
        // Synced, as ejecting the card from the computer that edited it would: the power cut
        // below comes seconds later, well before the kernel would write the file back.
        guest
            .ssh_with_input(
                "cat >/boot/firmware/edgenvr.toml && sync /boot/firmware/edgenvr.toml",
                config(&camera_url, false).as_bytes(),
            )
            .unwrap();
        guest
            .ssh_ok("systemctl restart edgenvr-card.service && systemctl start edgenvr.service")
            .unwrap();
        assert_recorder_active(&guest);
        let started_ms = guest_now_ms(&guest);
        let watch = Watcher::start(&["watch", &state_addr]);
        watch.wait_for(STEP_GUARD, "pir-hall", serde_json::json!(false));
        guest.ssh_ok("edgenvr sim set pir-hall high").unwrap();
        watch.wait_for(STEP_GUARD, "pir-hall", serde_json::json!(true));
        watch.wait_for(STEP_GUARD, "light", serde_json::json!(true));
        // The rule's output, as the kernel's PL061 driver has it: a line driven high.
        let gpio = guest.ssh_ok("cat /sys/kernel/debug/gpio").unwrap();
        assert!(
            gpio.lines().any(|l| l.contains(" out hi")),
            "no GPIO line driven high:
{gpio}"
        );
        guest.ssh_ok("edgenvr sim set pir-hall low").unwrap();
        watch.wait_for(STEP_GUARD, "pir-hall", serde_json::json!(false));
        let listed = wait_recorded(&http, started_ms, 4 * GOP_MS);
        let &(start, end) = listed.last().unwrap();
        let frames = pull_and_probe(
            &http,
            start.max(end - 3 * GOP_MS),
            end,
            &work.path().join("before.mp4"),
        );
        eprintln!("image_boot: pulled {frames} frames before the power cut");
        // Let more video reach the card, then cut the power mid-recording.
        let listed = wait_recorded(&http, end, 2 * GOP_MS);
        listed.iter().map(|r| r.1).max().unwrap()
    };
    guest.power_cut().unwrap();

    // Boot 2: after the power cut, the card's fixed config applied at boot.
    let guest = {
        let _phase = Phase::start("boot 2 (after the power cut) to SSH");
        let guest = Guest::boot(
            &card,
            (&kernel, &initrd),
            &key,
            &ports,
            &camera_forward,
            &work.path().join("console-2.log"),
        )
        .unwrap();
        guest.wait_ssh(BOOT_GUARD).unwrap();
        let state = guest.ssh("systemctl is-system-running --wait").unwrap();
        assert_eq!(String::from_utf8_lossy(&state.stdout).trim(), "running");
        guest
    };
    let http = format!("127.0.0.1:{}", guest.host_port(HTTP_PORT));
    {
        let _phase = Phase::start("checks after the power cut");
        assert_recorder_active(&guest);
        assert_eq!(guest.ssh_ok("hostname").unwrap().trim(), "image-box");
        let mdns = guest.ssh_ok("resolvectl status eth0").unwrap();
        assert!(mdns.contains("+mDNS"), "mDNS is off on eth0:\n{mdns}");
        let boot_ms = guest_now_ms(&guest);
        // Recording resumes ...
        let listed = wait_recorded(&http, boot_ms, 2 * GOP_MS);
        // ... and what was recorded before the cut is still there, up to the last sync.
        let before: Vec<_> = listed.iter().filter(|r| r.0 < pre_cut_end).collect();
        let recovered_end = before
            .iter()
            .map(|r| r.1)
            .max()
            .expect("nothing listed from before the cut");
        assert!(
            recovered_end >= pre_cut_end - SYNC_INTERVAL_MS - GOP_MS,
            "lost {} ms at the power cut, more than the sync interval and a GOP",
            pre_cut_end - recovered_end
        );
        let first = before.first().unwrap();
        pull_and_probe(
            &http,
            first.0,
            first.1.min(first.0 + 3 * GOP_MS),
            &work.path().join("after.mp4"),
        );
        print_boot_figures(&guest, "boot 2");
        // The store's own check, with the box stopped.
        guest.ssh_ok("systemctl stop edgenvr").unwrap();
        let fsck = guest
            .ssh("runuser -u edgenvr -- edgenvr store fsck /srv/edgenvr/store")
            .unwrap();
        assert!(fsck.status.success(), "store fsck: {fsck:?}");
    }
    guest.power_cut().unwrap();
    drop(server);
}

/// Fails, with the boot's journal of the card settings and the recorder, unless
/// edgenvr.service is active.
fn assert_recorder_active(guest: &Guest) {
    let active = guest.ssh("systemctl is-active edgenvr").unwrap();
    let state = String::from_utf8_lossy(&active.stdout).trim().to_owned();
    if state != "active" {
        let journal = guest
            .ssh("journalctl -b -u edgenvr-card -u edgenvr-store -u edgenvr --no-pager")
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_else(|e| format!("(no journal: {e})"));
        panic!("edgenvr.service is {state}, not active; the boot's journal:\n{journal}");
    }
}
