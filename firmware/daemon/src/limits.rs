//! The process's file-descriptor limit: raised once at start, and asked before a listener takes
//! another client, so sockets can never starve the store of the descriptors it opens slot
//! files with.
//!
//! Owns nothing; reads `getrlimit(RLIMIT_NOFILE)` and `/proc/self/fd`, and sets the soft limit.
//! Synchronous and cheap (a `/proc` directory read is tens of microseconds for a few hundred
//! descriptors).

use std::io;

/// Descriptors the box keeps free for itself whatever clients do: slot files opened per segment,
/// the store's index and lock, a control connection, the HTTP API's clip reads. 64 is several
/// times what a box with a handful of cameras opens at once.
pub const RESERVED_FDS: u64 = 64;

fn get_nofile() -> io::Result<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own and pass by pointer; nothing else.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(limit)
}

/// `rlim_t` is 32 bits on armv7 and 64 on aarch64 and x86_64: a conversion on one, none on the
/// others.
#[allow(clippy::useless_conversion)]
fn widen(value: libc::rlim_t) -> u64 {
    u64::from(value)
}

/// The soft and hard `RLIMIT_NOFILE`.
pub fn nofile_limit() -> io::Result<(u64, u64)> {
    let limit = get_nofile()?;
    Ok((widen(limit.rlim_cur), widen(limit.rlim_max)))
}

/// Raises the soft descriptor limit to the hard one (what servers do: the soft default of 1024
/// is a relic of `select`). Returns the soft limit now in force.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let limit = get_nofile()?;
    if limit.rlim_cur >= limit.rlim_max {
        return Ok(widen(limit.rlim_cur));
    }
    let raised = libc::rlimit {
        rlim_cur: limit.rlim_max,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit reads the struct we pass by pointer; nothing else.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(widen(raised.rlim_cur))
}

/// Descriptors open in this process now.
pub fn open_fds() -> io::Result<u64> {
    // The iterator's own directory descriptor is listed too; it is gone once we return.
    Ok(std::fs::read_dir("/proc/self/fd")?
        .count()
        .saturating_sub(1) as u64)
}

/// How many more descriptors the process may open before it reaches its soft limit, or `None`
/// when that cannot be told (no `/proc`): then callers rely on their own bounds.
pub fn fd_headroom() -> Option<u64> {
    let (soft, _) = nofile_limit().ok()?;
    let open = open_fds().ok()?;
    Some(soft.saturating_sub(open))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headroom_shrinks_as_files_open() {
        let before = fd_headroom().expect("linux has /proc");
        let files: Vec<std::fs::File> = (0..50)
            .map(|_| std::fs::File::open("/proc/self/stat").unwrap())
            .collect();
        let after = fd_headroom().unwrap();
        // Other test threads may close a few files meanwhile; fifty of ours are certain.
        assert!(after + 30 <= before, "{before} -> {after}");
        drop(files);
        let (soft, hard) = nofile_limit().unwrap();
        assert!(soft <= hard);
    }
}
