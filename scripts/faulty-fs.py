#!/usr/bin/python3
"""A disk that starts failing: a FUSE file system passing BACKING through at MOUNTPOINT, whose
writes and syncs fail with EIO (the error a dying SD card or a pulled USB disk gives) while the
file FAIL exists. Used by tests/tests/store_faults.rs.

Usage: faulty-fs.py BACKING MOUNTPOINT FAIL   (root; Debian's python3-fusepy; runs in the
foreground, prints "mounted" on stderr once the mount answers; `umount MOUNTPOINT` ends it).
A file rather than a signal switches it: Python runs signal handlers only between bytecodes of
the main thread, which sits in libfuse's loop.

Only what the store does at run time is passed through: lookups, listing, open, positioned reads
and writes, fsync, statfs, and locks (the kernel keeps flock locks itself). Nothing is created,
removed or renamed.
"""

import errno
import os
import sys
import threading

import fusepy as fuse


class Faulty(fuse.Operations):
    def __init__(self, backing, fail):
        self.backing = backing
        self.fail = fail

    def _path(self, path):
        return os.path.join(self.backing, path.lstrip("/"))

    def _check(self):
        if os.path.exists(self.fail):
            raise fuse.FuseOSError(errno.EIO)

    def getattr(self, path, fh=None):
        st = os.lstat(self._path(path))
        keys = ("st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime", "st_nlink", "st_size",
                "st_uid", "st_blocks")
        return {key: getattr(st, key) for key in keys}

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._path(path))

    def access(self, path, mode):
        if not os.access(self._path(path), mode):
            raise fuse.FuseOSError(errno.EACCES)

    def statfs(self, path):
        st = os.statvfs(self._path(path))
        keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files",
                "f_flag", "f_frsize", "f_namemax")
        return {key: getattr(st, key) for key in keys}

    def open(self, path, flags):
        return os.open(self._path(path), flags & ~os.O_CREAT)

    def read(self, path, size, offset, fh):
        return os.pread(fh, size, offset)

    def write(self, path, data, offset, fh):
        self._check()
        return os.pwrite(fh, data, offset)

    def truncate(self, path, length, fh=None):
        self._check()
        os.truncate(self._path(path), length)

    def fsync(self, path, datasync, fh):
        self._check()
        if datasync:
            os.fdatasync(fh)
        else:
            os.fsync(fh)

    def flush(self, path, fh):
        return 0

    def release(self, path, fh):
        os.close(fh)


def main():
    backing, mountpoint, fail = sys.argv[1], sys.argv[2], sys.argv[3]

    def announce():
        # The mount answers once libfuse serves it.
        while not os.path.ismount(mountpoint):
            threading.Event().wait(0.02)
        print("mounted", file=sys.stderr, flush=True)

    threading.Thread(target=announce, daemon=True).start()
    fuse.FUSE(Faulty(backing, fail), mountpoint, foreground=True, nothreads=False,
              allow_other=True)


if __name__ == "__main__":
    main()
