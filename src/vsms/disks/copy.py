"""Sparse-aware copying and hashing of (big, mostly empty) disk image files.

Only the data extents of a file cost anything: they are found with SEEK_DATA/SEEK_HOLE, copied
with ``copy_file_range`` (in the kernel, in chunks of at most 64 MiB) or read for hashing; holes
are never read or written. Progress is counted in bytes of data (``data_bytes`` gives the total)
and cancellation is checked before every chunk.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import stat
import threading
from collections.abc import Iterator

from vsms.disks.api import ProgressFn, require_file, translate_oserror
from vsms.errors import InvalidParameter, JobCancelled, OperationFailed

CHUNK = 64 * 1024 * 1024
HASH_BUFFER = 4 * 1024 * 1024
_FICLONE = 0x40049409  # _IOW(0x94, 9, int): share all extents (reflink filesystems only)
_NO_CLONE = {errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS,
             errno.EPERM, errno.EBADF}
_NO_COPY_RANGE = {errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL}


class _Progress:
    """Cumulative, monotonic progress reporting; ``finish`` makes sure the final total is sent."""

    def __init__(self, fn: ProgressFn | None) -> None:
        self.fn = fn
        self.done = 0
        self.reported: int | None = None

    def add(self, n: int) -> None:
        self.done += n
        if self.fn is not None:
            self.fn(self.done)
            self.reported = self.done

    def finish(self) -> None:
        if self.fn is not None and self.reported != self.done:
            self.fn(self.done)
            self.reported = self.done


def _check_cancel(cancel: threading.Event | None, what: str) -> None:
    if cancel is not None and cancel.is_set():
        raise JobCancelled(f"{what} was cancelled on request")


def _extents(fd: int, size: int) -> Iterator[tuple[int, int]]:
    """(start, end) of every data extent below ``size``; the whole file if holes are unknown."""
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                return
            if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP) and pos == 0:
                yield 0, size
                return
            raise
        if start >= size:
            return
        end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        yield start, end
        pos = end


def _open_source(path: str) -> tuple[int, os.stat_result]:
    require_file(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        raise translate_oserror(exc, f"open {path}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise InvalidParameter(f"{path} is not a regular file; pass the path of a disk image")
    return fd, st


def data_bytes(path: str) -> int:
    """The number of bytes in the data extents of ``path`` (what copying it costs)."""
    fd, st = _open_source(path)
    try:
        return sum(end - start for start, end in _extents(fd, st.st_size))
    except OSError as exc:
        raise translate_oserror(exc, f"map the data extents of {path}") from None
    finally:
        os.close(fd)


def _create_target(dst: str, mode: int) -> int:
    if not isinstance(dst, str) or not dst or "\x00" in dst:
        raise InvalidParameter(f"the copy target {dst!r} is not a valid path")
    exists = (f"the copy target {dst} already exists; a copy never overwrites a file: choose "
              "another path or delete the old file first")
    if os.path.lexists(dst):
        raise InvalidParameter(exists)
    folder = os.path.dirname(os.path.abspath(dst))
    if not os.path.isdir(folder):
        raise InvalidParameter(f"the folder {folder} for the copy target does not exist; "
                               "create it first or choose another path")
    try:
        return os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    except FileExistsError:
        raise InvalidParameter(exists) from None
    except OSError as exc:
        raise translate_oserror(exc, f"create {dst}") from None


def _try_clone(sfd: int, dfd: int) -> bool:
    try:
        fcntl.ioctl(dfd, _FICLONE, sfd)
    except OSError as exc:
        if exc.errno in _NO_CLONE:
            os.ftruncate(dfd, 0)
            return False
        raise
    return True


def _copy_extents(sfd: int, dfd: int, size: int, progress: _Progress,
                  cancel: threading.Event | None, what: str) -> None:
    in_kernel = True
    for start, end in _extents(sfd, size):
        offset = start
        while offset < end:
            _check_cancel(cancel, what)
            count = min(CHUNK, end - offset)
            done = 0
            if in_kernel:
                try:
                    done = os.copy_file_range(sfd, dfd, count, offset, offset)
                except OSError as exc:
                    if exc.errno not in _NO_COPY_RANGE:
                        raise
                    in_kernel = False
            if not in_kernel:
                data = os.pread(sfd, min(count, HASH_BUFFER), offset)
                written = 0
                while written < len(data):
                    written += os.pwrite(dfd, data[written:], offset + written)
                done = len(data)
            if done == 0:
                raise OperationFailed(f"{what} failed: the source shrank while it was being "
                                      "copied; copy it again when nothing writes to it")
            offset += done
            progress.add(done)


def _fsync_folder(path: str) -> None:
    """Make the new directory entry durable too (best effort: some filesystems refuse)."""
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def copy_file(src: str, dst: str, *, progress: ProgressFn | None = None,
              cancel: threading.Event | None = None) -> int:
    """Copy ``src`` to the new file ``dst`` keeping its holes; return the bytes of data copied.

    FICLONE is tried first (instant on reflink filesystems); otherwise every data extent is
    copied with ``copy_file_range`` (read/write where the kernel cannot) in chunks of at most
    64 MiB, then ``dst`` is truncated to the full size and fsynced. ``progress`` receives the
    bytes of data done so far (monotonic, ending at the value returned); ``cancel`` is checked
    before every chunk. An existing ``dst`` is refused (InvalidParameter); on cancellation
    (JobCancelled) or any error the partial ``dst`` is removed.
    """
    what = f"the copy of {src} to {dst}"
    _check_cancel(cancel, what)
    sfd, st = _open_source(src)
    try:
        dfd = _create_target(dst, stat.S_IMODE(st.st_mode) & 0o666 | 0o600)
        counter = _Progress(progress)
        try:
            if _try_clone(sfd, dfd):
                counter.add(sum(end - start for start, end in _extents(sfd, st.st_size)))
            else:
                _copy_extents(sfd, dfd, st.st_size, counter, cancel, what)
            os.ftruncate(dfd, st.st_size)
            os.fsync(dfd)
            counter.finish()
        except BaseException as exc:
            os.close(dfd)
            dfd = -1
            with contextlib.suppress(OSError):  # the first error is the one to report
                os.unlink(dst)
            if isinstance(exc, OSError):
                raise translate_oserror(exc, f"copy {src} to {dst}") from exc
            raise
        finally:
            if dfd >= 0:
                os.close(dfd)
        _fsync_folder(dst)
        return counter.done
    finally:
        os.close(sfd)


def _hash_zeros(h: hashlib._Hash, count: int, zeros: memoryview,
                cancel: threading.Event | None, what: str) -> None:
    while count > 0:
        _check_cancel(cancel, what)
        n = min(count, len(zeros))
        h.update(zeros[:n])
        count -= n


def sha256_file(path: str, *, progress: ProgressFn | None = None,
                cancel: threading.Event | None = None) -> str:
    """The hex SHA-256 of the whole content of ``path`` (the same digest as ``sha256sum``).

    Data extents are read; holes are hashed from a buffer of zeros without touching the disk.
    ``progress`` receives the bytes of data read so far (ending at ``data_bytes(path)``);
    ``cancel`` is checked every 4 MiB and raises JobCancelled.
    """
    what = f"the checksum of {path}"
    _check_cancel(cancel, what)
    fd, st = _open_source(path)
    counter = _Progress(progress)
    h = hashlib.sha256()
    zeros = memoryview(bytes(HASH_BUFFER))
    buffer = memoryview(bytearray(HASH_BUFFER))
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        pos = 0
        for start, end in _extents(fd, st.st_size):
            _hash_zeros(h, start - pos, zeros, cancel, what)
            offset = start
            while offset < end:
                _check_cancel(cancel, what)
                n = os.preadv(fd, [buffer[:min(HASH_BUFFER, end - offset)]], offset)
                if n == 0:
                    raise OperationFailed(f"{what} failed: the file shrank while it was being "
                                          "read; try again when nothing writes to it")
                h.update(buffer[:n])
                offset += n
                counter.add(n)
            pos = end
        _hash_zeros(h, st.st_size - pos, zeros, cancel, what)
        counter.finish()
    except OSError as exc:
        raise translate_oserror(exc, f"read {path}") from None
    finally:
        os.close(fd)
    return h.hexdigest()
