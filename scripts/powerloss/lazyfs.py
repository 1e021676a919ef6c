"""A FUSE file system that loses every write not yet fsync'd when the power is cut.

In the spirit of LazyFS (https://github.com/dsrhaslab/lazyfs): file data written through the
mount is kept in memory, page by page, and reaches the backing directory only when the file
is fsync'd (fsync or fdatasync). Creating the file `/.power-cut` in the mount is the power
cut: every unsynced page and size change is dropped, as a machine's page cache is lost (the
creation fails, and nothing is created). Namespace operations (create, unlink,
rename, mkdir, chmod) reach the backing directory at once, which is kinder than a real disk
only for metadata; orderflow's durability rests on fsync'd data, which is what this tests.

Usage: python lazyfs.py BACKING_DIR MOUNT_POINT   (runs in the foreground until unmounted)
"""

import errno
import os
import sys
import threading

import mfusepy as fuse

PAGE = 4096
CUT_PATH = "/.power-cut"


class Dirty:
    """The unsynced state of one file: whole pages and, if it changed, its size."""

    def __init__(self, size):
        self.pages = {}
        self.size = size


class LazyFS(fuse.Operations):
    use_ns = True

    def __init__(self, root):
        self.root = root
        self.mutex = threading.RLock()
        self.dirty = {}
        self.dropped_pages = 0

    def _p(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    # ---------------------------------------------------------------- the power cut
    def cut(self, *_):
        with self.mutex:
            self.dropped_pages += sum(len(d.pages) for d in self.dirty.values())
            self.dirty.clear()
        sys.stderr.write("lazyfs: power cut, %d unsynced pages dropped\n" % self.dropped_pages)
        sys.stderr.flush()

    # ---------------------------------------------------------------- logical content
    def _backing_size(self, real):
        try:
            return os.stat(real).st_size
        except FileNotFoundError:
            return 0

    def _size(self, real):
        d = self.dirty.get(real)
        return d.size if d is not None else self._backing_size(real)

    def _page(self, real, fd, index):
        """Page `index` as the file reads now (unsynced writes included)."""
        d = self.dirty.get(real)
        if d is not None and index in d.pages:
            return bytearray(d.pages[index])
        size = self._size(real)
        start = index * PAGE
        data = bytearray(PAGE)
        if start < size:
            got = os.pread(fd, min(PAGE, size - start), start)
            data[: len(got)] = got
        return data

    def _dirty(self, real):
        d = self.dirty.get(real)
        if d is None:
            d = Dirty(self._backing_size(real))
            self.dirty[real] = d
        return d

    # ---------------------------------------------------------------- data
    def read(self, path, size, offset, fh):
        with self.mutex:
            real = self._p(path)
            end = min(offset + size, self._size(real))
            out = bytearray()
            pos = offset
            while pos < end:
                index = pos // PAGE
                page = self._page(real, fh, index)
                lo = pos - index * PAGE
                hi = min(PAGE, end - index * PAGE)
                out += page[lo:hi]
                pos = index * PAGE + hi
            return bytes(out)

    def write(self, path, data, offset, fh):
        with self.mutex:
            real = self._p(path)
            d = self._dirty(real)
            pos, i = offset, 0
            while i < len(data):
                index = pos // PAGE
                page = self._page(real, fh, index)
                lo = pos - index * PAGE
                n = min(PAGE - lo, len(data) - i)
                page[lo : lo + n] = data[i : i + n]
                d.pages[index] = page
                pos += n
                i += n
            d.size = max(d.size, offset + len(data))
            return len(data)

    def truncate(self, path, length, fh=None):
        with self.mutex:
            real = self._p(path)
            fd = fh if fh is not None else os.open(real, os.O_RDONLY)
            try:
                tail = self._page(real, fd, length // PAGE) if length % PAGE else None
            finally:
                if fh is None:
                    os.close(fd)
            d = self._dirty(real)
            d.pages = {i: p for i, p in d.pages.items() if i < length // PAGE}
            if tail is not None:
                tail[length % PAGE :] = bytes(PAGE - length % PAGE)
                d.pages[length // PAGE] = tail
            d.size = length

    def fsync(self, path, datasync, fh):
        with self.mutex:
            real = self._p(path)
            d = self.dirty.pop(real, None)
            if d is not None:
                for index in sorted(d.pages):
                    start = index * PAGE
                    if start < d.size:
                        os.pwrite(fh, bytes(d.pages[index][: min(PAGE, d.size - start)]), start)
                os.ftruncate(fh, d.size)
            os.fsync(fh)
            return 0

    def flush(self, path, fh):
        return 0

    # ---------------------------------------------------------------- files and names
    def getattr(self, path, fh=None):
        with self.mutex:
            real = self._p(path)
            st = os.lstat(real)
            attrs = {
                k: getattr(st, k)
                for k in ("st_atime_ns", "st_ctime_ns", "st_mtime_ns", "st_gid", "st_mode", "st_nlink", "st_uid")
            }
            attrs = {k.replace("_ns", ""): v for k, v in attrs.items()}
            attrs["st_size"] = self._size(real) if os.path.isfile(real) else st.st_size
            return attrs

    def access(self, path, amode):
        if not os.access(self._p(path), amode):
            raise fuse.FuseOSError(errno.EACCES)
        return 0

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._p(path))

    def open(self, path, flags):
        # Always read-write on the backing file: a write fills its page from it.
        keep = flags & ~(os.O_ACCMODE | os.O_APPEND | os.O_TRUNC | os.O_CREAT | os.O_EXCL)
        fd = os.open(self._p(path), keep | os.O_RDWR)
        if flags & os.O_TRUNC:
            self.truncate(path, 0, fd)
        return fd

    def create(self, path, mode, fi=None):
        if path == CUT_PATH:
            self.cut()
            raise fuse.FuseOSError(errno.ECONNRESET)
        real = self._p(path)
        fd = os.open(real, os.O_RDWR | os.O_CREAT, mode)
        with self.mutex:
            self.dirty.pop(real, None)
        return fd

    def release(self, path, fh):
        os.close(fh)
        return 0

    def unlink(self, path):
        with self.mutex:
            real = self._p(path)
            os.unlink(real)
            self.dirty.pop(real, None)

    def rename(self, old, new):
        with self.mutex:
            a, b = self._p(old), self._p(new)
            os.rename(a, b)
            self.dirty.pop(b, None)
            if a in self.dirty:
                self.dirty[b] = self.dirty.pop(a)

    def mkdir(self, path, mode):
        return os.mkdir(self._p(path), mode)

    def rmdir(self, path):
        return os.rmdir(self._p(path))

    def chmod(self, path, mode):
        return os.chmod(self._p(path), mode)

    def chown(self, path, uid, gid):
        return os.chown(self._p(path), uid, gid)

    def utimens(self, path, times=None):
        return os.utime(self._p(path), ns=times) if times else os.utime(self._p(path))

    def fsyncdir(self, path, datasync, fh):
        return 0

    def statfs(self, path):
        st = os.statvfs(self._p(path))
        return {k: getattr(st, k) for k in ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax")}


def main():
    backing, mount = sys.argv[1], sys.argv[2]
    fs = LazyFS(os.path.abspath(backing))
    fuse.FUSE(fs, mount, foreground=True, nothreads=False)


if __name__ == "__main__":
    main()
