//! The C allocator's settings for the box (glibc; with other C libraries these do nothing).
//! Holds no state: `cli::main` applies [`tune`] (and, for `edgenvr run`, [`restart_with_tunables`])
//! before any thread starts, and the daemon calls [`trim`] every [`TRIM_EVERY`].
//!
//! Why each setting, from the 16-camera soak (`scripts/soak.sh`, README "Soak"): glibc keeps what
//! is freed for reuse, in several places, and each of them made the box's resident memory creep
//! while its live heap (heaptrack) stayed flat. Video stays out of glibc's heaps altogether
//! ([`MMAP_THRESHOLD`]); what is left is small blocks, kept from creeping by the rest.

use std::time::Duration;

/// C allocator arenas the process may use (glibc's `M_ARENA_MAX`). glibc gives each thread that
/// allocates its own arena, up to 8 per core, and keeps freed memory in each: the blocking pool's
/// threads that serve clip pieces and the cameras' writer threads each held some, so a one-hour
/// clip download peaked at 1.3-2.6 MiB above idle, varying with how many pool threads it touched;
/// with two arenas, 0.8-1.9 MiB (`scripts/bench-clip.sh`). The box allocates little per second
/// (no allocation per frame on its own path), so two arenas are not contended.
pub const ARENAS: i32 = 2;

/// Allocations this large or larger are each their own mapping (glibc's `M_MMAP_THRESHOLD`):
/// half a frame chunk, so every chunk of video ([`crate::ingest::CHUNK_BYTES`]) goes back to the
/// kernel when its last frame is dropped instead of leaving a hole in the heap. It is glibc's own
/// default, 128 KiB, but fixed: glibc otherwise raises it to the size of each mapped block freed,
/// after which chunks would come from the heap again. The 64 KiB pieces of a clip download stay
/// below it, as before.
pub const MMAP_THRESHOLD: usize = crate::ingest::CHUNK_BYTES / 2;

/// How often freed heap memory goes back to the kernel. glibc keeps what its arenas freed (GOPs
/// are allocated on the camera's task and freed on its writer thread), so without this the box's
/// resident memory crept up by 3–4 % in half an hour of the 16-camera soak while its live heap
/// stayed flat (heaptrack: within 1.5 %); a trim a minute costs a walk over a few MB of free
/// lists.
pub const TRIM_EVERY: Duration = Duration::from_secs(60);

/// The environment variable glibc reads its tunables from, once, when a process starts.
pub const TUNABLES_ENV: &str = "GLIBC_TUNABLES";

/// Turns off glibc's per-thread caches of freed blocks (tcache). Each thread keeps up to seven
/// freed blocks of every small size for itself, whichever arena they came from, and a trim cannot
/// give back a page that holds one. The writer threads free the GOPs the camera tasks allocate,
/// so their caches filled, size class by size class, with blocks of the main heap: in the
/// 16-camera soak hour `[heap]` grew 24.8 % (five-minute means, 2,410 → 3,007 KiB) while
/// heaptrack saw the live heap grow ~1.3 KiB a minute, and glibc's own count of the main heap's
/// blocks in use (`malloc_info`) rose ~360 KiB in 30 minutes; with the caches off, `[heap]` grew
/// 1.2 % (1,857 → 1,879 KiB) and the blocks in use stayed flat. Every allocation then takes its
/// arena's lock: ~540 a second with 16 cameras (heaptrack), and the soak's CPU was 1.44 % of a
/// core with the caches off against 1.54 % with them on.
pub const TCACHE_OFF: &str = "glibc.malloc.tcache_count=0";

/// The value `GLIBC_TUNABLES` should have for the box, given its value now; `None` when it is
/// already right, or when the user chose a tcache setting of their own.
pub fn tunables_for_box(current: Option<&str>) -> Option<String> {
    match current.filter(|c| !c.is_empty()) {
        None => Some(TCACHE_OFF.to_owned()),
        Some(current)
            if current
                .split(':')
                .any(|t| t.starts_with("glibc.malloc.tcache_count=")) =>
        {
            None
        }
        Some(current) => Some(format!("{current}:{TCACHE_OFF}")),
    }
}

/// Starts this program again, in place (same process id, arguments and everything else), with
/// [`TCACHE_OFF`] added to `GLIBC_TUNABLES`, since glibc reads tunables only at start. Returns
/// nothing to do (`Ok`) when the setting is already there or the C library is not glibc, and
/// the error when the restart failed; it does not return when it succeeded.
pub fn restart_with_tunables() -> std::io::Result<()> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;

        let current = std::env::var(TUNABLES_ENV).ok();
        let Some(tunables) = tunables_for_box(current.as_deref()) else {
            return Ok(());
        };
        let mut args = std::env::args_os();
        let mut command = std::process::Command::new(std::env::current_exe()?);
        if let Some(arg0) = args.next() {
            command.arg0(arg0);
        }
        // exec returns only on failure.
        Err(command.args(args).env(TUNABLES_ENV, tunables).exec())
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    Ok(())
}

/// Logs how the allocator is set up (once the log is up), or why the restart failed.
pub fn log_setup(restart: std::io::Result<()>) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    match restart {
        Ok(()) => tracing::info!(
            arenas = ARENAS,
            mmap_threshold = MMAP_THRESHOLD,
            "C allocator: {TUNABLES_ENV}={}",
            std::env::var(TUNABLES_ENV).unwrap_or_default()
        ),
        Err(error) => tracing::warn!(
            %error,
            "could not restart with {TUNABLES_ENV}={TCACHE_OFF}: glibc's per-thread caches \
             stay on, and resident memory may creep"
        ),
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = restart;
}

/// Sets the C allocator up: at most [`ARENAS`] arenas and a fixed [`MMAP_THRESHOLD`]. Call
/// first thing in `main`, before any thread starts. It overrides `MALLOC_ARENA_MAX` and
/// `MALLOC_MMAP_THRESHOLD_` from the environment (read by glibc at start-up, before this call).
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets tuning parameters of the allocator; it is called before any
    // other thread of this process exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
        let threshold = libc::c_int::try_from(MMAP_THRESHOLD).unwrap_or(libc::c_int::MAX);
        libc::mallopt(libc::M_MMAP_THRESHOLD, threshold);
    }
}

/// Hands the allocator's free memory back to the kernel (glibc only: other C libraries return
/// memory themselves or have no such call).
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers; it only releases free pages.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thread_caches_are_turned_off_unless_the_user_set_them() {
        assert_eq!(tunables_for_box(None).as_deref(), Some(TCACHE_OFF));
        assert_eq!(tunables_for_box(Some("")).as_deref(), Some(TCACHE_OFF));
        assert_eq!(
            tunables_for_box(Some("glibc.malloc.check=3")),
            Some(format!("glibc.malloc.check=3:{TCACHE_OFF}"))
        );
        assert_eq!(tunables_for_box(Some(TCACHE_OFF)), None);
        assert_eq!(
            tunables_for_box(Some("glibc.malloc.check=3:glibc.malloc.tcache_count=7")),
            None
        );
    }
}
