//! Crashing a recording box and judging what survived: the listing just before the crash, and
//! after it `edgenvr store fsck`, the listing again, what must have survived, the order of each
//! camera's video, a full ffprobe decode of every listed segment, and how much of a camera's
//! video before the crash is missing.
//!
//! What must survive depends on the crash. A killed process (`kill -9`) loses nothing it wrote:
//! the page cache outlives it. A power cut loses what was not synced; a fragment was synced
//! before the snapshot if a later fragment of its segment in the snapshot counts more syncs of
//! the segment (`segment_syncs`), or if its camera had already started a newer segment (a
//! segment ends with a sync). Either way a segment whose slot a newer segment took since the
//! snapshot is gone for a good reason.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use edgenvr::store::format::SlotHeader;
use edgenvr::store::{SegmentInfo, Store};

use crate::bins;
use crate::clips::{make_clip_sized, Codec};
use crate::ffprobe::{count_video_frames, decode_errors};
use crate::process::run;
use crate::rtsp_server::RtspServer;

/// What kind of crash happened, which decides what must survive it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crash {
    /// The process was killed: everything it wrote survives.
    Kill,
    /// The power was cut: everything synced before the snapshot survives.
    PowerCut,
}

/// What one crash cost.
#[derive(Clone, Debug)]
pub struct CrashReport {
    /// Fragments listed after recovery, all cameras.
    pub fragments: usize,
    /// Per camera, ms of wall time between the end of its last listed fragment and the crash:
    /// the GOP being assembled, GOPs queued, and (power cut) what was not synced.
    pub lost_ms: BTreeMap<String, i64>,
}

/// Unix ms now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The store's segments as a reader sees them now (no lock, no repair: works while a box
/// records).
pub fn listing(store: &Path) -> anyhow::Result<Vec<SegmentInfo>> {
    Ok(Store::open_read_only(store)?.segments())
}

/// Runs `edgenvr store fsck`, then checks the store against `before` (the listing taken just
/// before a crash at `crash_ms`).
pub fn check_after_crash(
    store: &Path,
    before: &[SegmentInfo],
    crash: Crash,
    crash_ms: i64,
) -> anyhow::Result<CrashReport> {
    let store_arg = store.to_str().context("store path is not UTF-8")?;
    let (status, out, err) = run(&bins::edgenvr(), &["store", "fsck", store_arg])?;
    anyhow::ensure!(status.success(), "store fsck failed: {out}{err}");
    let after = listing(store)?;
    let by_id: BTreeMap<u64, &SegmentInfo> = after.iter().map(|s| (s.segment_id, s)).collect();

    // What must have survived did.
    for segment in before {
        let newest_of_camera = before
            .iter()
            .filter(|s| s.camera == segment.camera)
            .all(|s| s.segment_id <= segment.segment_id);
        let must_keep = match crash {
            Crash::Kill => segment.fragments.len(),
            Crash::PowerCut if !newest_of_camera => segment.fragments.len(),
            Crash::PowerCut => {
                let last_syncs = segment.fragments.last().map_or(0, |f| f.segment_syncs);
                segment
                    .fragments
                    .iter()
                    .take_while(|f| f.segment_syncs < last_syncs)
                    .count()
            }
        };
        match by_id.get(&segment.segment_id) {
            Some(now) => {
                let kept = now.fragments.len().min(must_keep);
                anyhow::ensure!(
                    now.fragments.len() >= must_keep
                        && now.fragments[..kept] == segment.fragments[..kept],
                    "{crash:?}: segment {} of {} listed {} fragment(s) before, {} must survive, \
                     {} did",
                    segment.segment_id,
                    segment.camera,
                    segment.fragments.len(),
                    must_keep,
                    now.fragments.len()
                );
            }
            None => {
                // A newer segment took the slot: its header is on the card (it is synced before
                // anything else goes over an older segment), its fragments maybe not.
                let reused =
                    slot_segment_id(&segment.path).is_some_and(|id| id > segment.segment_id);
                anyhow::ensure!(
                    reused || must_keep == 0,
                    "{crash:?}: segment {} of {} (slot {}) is gone, {must_keep} fragment(s) of \
                     it must have survived",
                    segment.segment_id,
                    segment.camera,
                    segment.slot
                );
            }
        }
    }

    // Each camera's video in recording order runs forward in time: nothing stale listed as
    // newer. Every listed segment plays to its end.
    let mut last_end: BTreeMap<String, i64> = BTreeMap::new();
    let mut fragments = 0;
    for segment in &after {
        for fragment in &segment.fragments {
            let previous = last_end.get(&segment.camera).copied().unwrap_or(i64::MIN);
            anyhow::ensure!(
                fragment.wall_ms >= previous.saturating_sub(1),
                "{crash:?}: camera {} fragment {} of segment {} starts at {} before the \
                 previous one ended ({previous})",
                segment.camera,
                fragment.index,
                segment.segment_id,
                fragment.wall_ms
            );
            last_end.insert(
                segment.camera.clone(),
                fragment.wall_ms + i64::from(fragment.duration_90k) / 90,
            );
        }
        fragments += segment.fragments.len();
        let frames: u64 = segment
            .fragments
            .iter()
            .map(|f| u64::from(f.frame_count))
            .sum();
        let errors = decode_errors(&segment.path)?;
        anyhow::ensure!(
            errors.is_empty(),
            "{crash:?}: segment {} ({}) does not decode: {errors}",
            segment.segment_id,
            segment.path.display()
        );
        let decoded = count_video_frames(&segment.path)?;
        anyhow::ensure!(
            decoded == frames,
            "{crash:?}: segment {} decodes {decoded} frames, lists {frames}",
            segment.segment_id
        );
    }
    let lost_ms = last_end
        .into_iter()
        .map(|(camera, end)| (camera, crash_ms - end))
        .collect();
    Ok(CrashReport { fragments, lost_ms })
}

/// The crash and storage fault tests' camera: the test RTSP server looping a 10 s 320x240
/// H.264 clip (25 fps, a key frame a second) at `/cam`.
pub fn test_camera(work: &Path) -> anyhow::Result<RtspServer> {
    let clip = make_clip_sized(work, Codec::H264, 10, (320, 240))?;
    RtspServer::start(&[("/cam", &clip)], None)
}

/// The segment id in a slot file's header, if it has a valid one.
fn slot_segment_id(path: &Path) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    SlotHeader::decode(&bytes).ok().map(|h| h.segment_id)
}

/// The config of the crash and storage fault tests' box: camera `front` records `url`
/// continuously in 2 s segments, camera `back` in events mode on the simulated PIR `pir`; data
/// is synced every second; `extra` (TOML sections) is appended.
pub fn crash_box_config(
    work: &Path,
    store: &Path,
    url: &str,
    extra: &str,
) -> anyhow::Result<PathBuf> {
    let config = work.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[box]\nname = \"crash\"\n[storage]\ndir = \"{store}\"\nsegment = \"2s\"\n\
             sync_interval = \"1s\"\n[control]\nsocket = \"{socket}\"\n\
             [[sensor]]\nname = \"pir\"\nkind = \"pir\"\nbackend = \"sim\"\n\
             [[camera]]\nname = \"front\"\nurl = \"{url}\"\n\
             [[camera]]\nname = \"back\"\nurl = \"{url}\"\nmode = \"events\"\n\
             pre_roll = \"2s\"\npost_roll = \"2s\"\ntriggers = [\"pir\"]\n{extra}",
            store = store.display(),
            socket = work.join("control.sock").display(),
        ),
    )?;
    Ok(config)
}

/// An ext4 file system on a loop device over an image file, mounted at `mount` (root only).
///
/// A simulated power cut ([`LoopDisk::power_cut`]) copies the image as the loop device has
/// written it — what the kernel has sent to "the card" — while the file system's dirty pages,
/// everything written but not yet synced or written back, are still only in RAM; then it drops
/// the file system (its late writeback goes into the discarded image) and mounts the copy,
/// replaying ext4's journal as a reboot would. Dirty pages are written back only after 30 s
/// (`vm.dirty_expire_centisecs`) or on a sync, so with a 1 s sync interval the copy lacks
/// exactly what the recorder had not synced, at most with some pages the kernel happened to be
/// writing at that moment: what a card that lost power mid-write keeps.
pub struct LoopDisk {
    image: PathBuf,
    /// Where the file system is mounted.
    pub mount: PathBuf,
    device: Option<String>,
}

impl LoopDisk {
    /// Makes a `size_mib` image in `dir`, an ext4 file system on it (inode tables initialised
    /// now, not by a background thread during the test), attaches and mounts it.
    pub fn new(dir: &Path, size_mib: u64) -> anyhow::Result<LoopDisk> {
        let image = dir.join("disk.img");
        std::fs::File::create(&image)?.set_len(size_mib << 20)?;
        let image_arg = image.to_str().context("image path is not UTF-8")?;
        command(
            "mkfs.ext4",
            &[
                "-q",
                "-F",
                "-E",
                "lazy_itable_init=0,lazy_journal_init=0",
                image_arg,
            ],
        )?;
        let mount = dir.join("mnt");
        std::fs::create_dir_all(&mount)?;
        let mut disk = LoopDisk {
            image,
            mount,
            device: None,
        };
        disk.attach()?;
        Ok(disk)
    }

    fn attach(&mut self) -> anyhow::Result<()> {
        let image_arg = self.image.to_str().context("image path is not UTF-8")?;
        let device = command("losetup", &["-f", "--show", image_arg])?;
        let device = device.trim().to_owned();
        self.device = Some(device.clone());
        let mount_arg = self.mount.to_str().context("mount path is not UTF-8")?;
        command("mount", &["-o", "noatime", &device, mount_arg])?;
        Ok(())
    }

    fn detach(&mut self) -> anyhow::Result<()> {
        if let Some(device) = self.device.take() {
            let mount_arg = self.mount.to_str().context("mount path is not UTF-8")?;
            command("umount", &[mount_arg])?;
            command("losetup", &["-d", &device])?;
        }
        Ok(())
    }

    /// `umount -l`: the file system leaves the directory tree at once (files still open keep it
    /// alive, unreachable), and the mount point shows what is underneath.
    pub fn unmount_lazily(&self) -> anyhow::Result<()> {
        let mount_arg = self.mount.to_str().context("mount path is not UTF-8")?;
        command("umount", &["-l", mount_arg])?;
        Ok(())
    }

    /// Mounts the device again after [`LoopDisk::unmount_lazily`].
    pub fn mount_again(&self) -> anyhow::Result<()> {
        let device = self.device.as_deref().context("no loop device")?;
        let mount_arg = self.mount.to_str().context("mount path is not UTF-8")?;
        command("mount", &["-o", "noatime", device, mount_arg])?;
        Ok(())
    }

    /// Cuts the power (see the type's doc): nothing may still have a file open on the disk.
    pub fn power_cut(&mut self) -> anyhow::Result<()> {
        let cut = self.image.with_extension("cut");
        std::fs::copy(&self.image, &cut)?;
        self.detach()?;
        std::fs::rename(&cut, &self.image)?;
        self.attach()
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        if let Err(error) = self.detach() {
            eprintln!("leaving loop disk {}: {error}", self.image.display());
        }
    }
}

/// Runs a system command, returning its stdout; fails with its output.
fn command(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let (status, out, err) = run(Path::new(program), args)?;
    anyhow::ensure!(status.success(), "{program} {}: {out}{err}", args.join(" "));
    Ok(out)
}
