"""Sparse-aware copying (and hashing while copying) of (big, mostly empty) disk image files.

Only the data extents of a file cost anything: they are found with SEEK_DATA/SEEK_HOLE, copied
with ``copy_file_range`` (in the kernel, in chunks of at most 64 MiB); holes are never read or
written. Progress is counted in bytes of data (``data_bytes`` gives the total) and cancellation
is checked before every chunk. ``data_bytes`` and ``sha256_file`` live in
``vsms.disks.reading`` and are importable from here too.

``copy_and_hash`` copies and computes the SHA-256 of the content in one pass: one thread copies
in the kernel in chunks of 4 MiB while the calling thread hashes each chunk just copied (read
again from the page cache, so the disk is read once); on a reflink filesystem the clone is
instant and only the hash reads the data. Both copies queue every 64 MiB they copied for
writeback at once (``sync_file_range``), so the final fsync finds little left to write.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import queue
import stat
import threading
from collections.abc import Callable
from typing import cast

from vsms.disks import digests
from vsms.disks.api import ProgressFn, translate_oserror
from vsms.disks.digests import DigestBook
from vsms.disks.reading import (
    Progress,
    Sha256,
    check_cancel,
    data_bytes,
    extents,
    hash_fd,
    open_source,
    sha256_file,
)
from vsms.errors import InvalidParameter, OperationFailed

__all__ = ["CHUNK", "copy_and_hash", "copy_file", "data_bytes", "sha256_file"]

CHUNK = 64 * 1024 * 1024
HASH_BUFFER = 4 * 1024 * 1024  # the read/write fallback's buffer and copy_and_hash's chunk
AHEAD = 16  # chunks the copying thread of copy_and_hash may be ahead of the hashing one
WRITEBACK = 64 * 1024 * 1024  # each such run of a copy is queued for writeback at once
_FICLONE = 0x40049409  # _IOW(0x94, 9, int): share all extents (reflink filesystems only)
_NO_CLONE = {errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS,
             errno.EPERM, errno.EBADF}
_NO_COPY_RANGE = {errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL}


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


def _copy_extents(sfd: int, dfd: int, size: int, cancel: threading.Event | None, what: str,
                  chunk: int, on_chunk: Callable[[int, int], None]) -> None:
    """Copy every data extent in chunks of at most ``chunk`` bytes; ``on_chunk(offset, n)``
    after each one. ``cancel`` is checked before every chunk."""
    in_kernel = True
    for start, end in extents(sfd, size):
        offset = start
        while offset < end:
            check_cancel(cancel, what)
            count = min(chunk, end - offset)
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
            on_chunk(offset, done)
            offset += done


def _fsync_folder(path: str) -> None:
    """Make the new directory entry durable too (best effort: some filesystems refuse)."""
    with contextlib.suppress(OSError):
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """libc's sync_file_range(2) (the os module has no binding), or None where it is missing."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return cast(Callable[[int, int, int, int], int], fn)


_SYNC_FILE_RANGE = _load_sync_file_range()  # a function, loaded once; never changes
_SYNC_FILE_RANGE_WRITE = 2


class _WriteBack:
    """Queues each WRITEBACK bytes of a copy for writing as soon as they are copied:
    ``sync_file_range(SYNC_FILE_RANGE_WRITE)`` returns at once, the disk works while the copy
    (and its hash) go on, the pages stay cached. Errors are left to the final fsync."""

    def __init__(self, fd: int) -> None:
        self.fd, self.start, self.end = fd, 0, 0  # [start, end): copied, not yet queued

    def copied(self, offset: int, n: int) -> None:
        if offset != self.end:  # a new extent
            self.flush()
            self.start = offset
        self.end = offset + n
        if self.end - self.start >= WRITEBACK:
            self.flush()

    def flush(self) -> None:
        if _SYNC_FILE_RANGE is not None and WRITEBACK and self.end > self.start:
            _SYNC_FILE_RANGE(self.fd, self.start, self.end - self.start, _SYNC_FILE_RANGE_WRITE)
        self.start = self.end


class _Stopped(Exception):
    """The hashing side of copy_and_hash gave up: the copying thread stops too."""


def _copy_hashing(sfd: int, dfd: int, size: int, counter: Progress,
                  cancel: threading.Event | None, what: str) -> str:
    """Copy in a helper thread while this thread hashes each chunk it finished (see module)."""
    spans: queue.Queue[tuple[int, int] | None] = queue.Queue(maxsize=AHEAD)
    stop = threading.Event()
    failed: list[BaseException] = []

    def put(item: tuple[int, int] | None) -> None:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                spans.put(item, timeout=0.1)
                return
        if item is not None:
            raise _Stopped

    writeback = _WriteBack(dfd)

    def copied(offset: int, n: int) -> None:
        writeback.copied(offset, n)
        put((offset, offset + n))

    def copier() -> None:  # errors are handed over to the hashing thread, which raises them
        try:
            _copy_extents(sfd, dfd, size, cancel, what, HASH_BUFFER, copied)
        except _Stopped:
            pass
        except BaseException as exc:
            failed.append(exc)
        finally:
            put(None)

    h = Sha256(sfd, counter, cancel, what)
    thread = threading.Thread(target=copier, name="vsms-copy", daemon=True)
    thread.start()
    try:
        while thread.is_alive() or not spans.empty():
            with contextlib.suppress(queue.Empty):
                span = spans.get(timeout=0.5)
                if span is None:
                    break
                h.data(*span)
        if failed:
            raise failed[0]
        h.zeros_to(size)
    finally:
        stop.set()
        thread.join()  # it stops after its current chunk (at most HASH_BUFFER bytes)
    return h.h.hexdigest()


def _copy_new(src: str, dst: str, cancel: threading.Event | None,
              body: Callable[[int, int, int], str | None],
              counter: Progress, dst_fd: int | None = None) -> str | None:
    """Open ``src``, create ``dst``, run ``body(sfd, dfd, size)`` to fill it, then set its size,
    fsync it and its folder. On any error or cancellation the partial ``dst`` is removed.

    With ``dst_fd`` (an empty file the caller created, e.g. relative to a folder handle) that
    file is filled instead: nothing is created, and on failure it is left to the caller."""
    what = f"the copy of {src} to {dst}"
    check_cancel(cancel, what)
    sfd, st = open_source(src)
    try:
        if dst_fd is not None:
            try:
                result = body(sfd, dst_fd, st.st_size)
                os.ftruncate(dst_fd, st.st_size)
                os.fsync(dst_fd)
            except OSError as exc:
                raise translate_oserror(exc, f"copy {src} to {dst}") from exc
            counter.finish()
            return result
        dfd = _create_target(dst, stat.S_IMODE(st.st_mode) & 0o666 | 0o600)
        try:
            result = body(sfd, dfd, st.st_size)
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
        return result
    finally:
        os.close(sfd)


def copy_file(src: str, dst: str, *, progress: ProgressFn | None = None,
              cancel: threading.Event | None = None, dst_fd: int | None = None) -> int:
    """Copy ``src`` to the new file ``dst`` keeping its holes; return the bytes of data copied.

    FICLONE is tried first (instant on reflink filesystems); otherwise every data extent is
    copied with ``copy_file_range`` (read/write where the kernel cannot) in chunks of at most
    64 MiB (each 64 MiB queued for writeback at once), then ``dst`` is truncated to the full
    size and fsynced. ``progress`` receives the
    bytes of data done so far (monotonic, ending at the value returned); ``cancel`` is checked
    before every chunk. An existing ``dst`` is refused (InvalidParameter); on cancellation
    (JobCancelled) or any error the partial ``dst`` is removed. With ``dst_fd`` the copy goes
    into that open, empty file (``dst`` only names it in messages) and a partial one is left
    to the caller's undo step.
    """
    what = f"the copy of {src} to {dst}"
    counter = Progress(progress)

    def body(sfd: int, dfd: int, size: int) -> None:
        if _try_clone(sfd, dfd):
            counter.add(sum(end - start for start, end in extents(sfd, size)))
            return
        _plain_copy(sfd, dfd, size, counter, cancel, what)

    _copy_new(src, dst, cancel, body, counter, dst_fd)
    return counter.done


def _plain_copy(sfd: int, dfd: int, size: int, counter: Progress,
                cancel: threading.Event | None, what: str) -> None:
    writeback = _WriteBack(dfd)

    def copied(offset: int, n: int) -> None:
        writeback.copied(offset, n)
        counter.add(n)

    _copy_extents(sfd, dfd, size, cancel, what, CHUNK, copied)


def copy_and_hash(src: str, dst: str, *, progress: ProgressFn | None = None,
                  cancel: threading.Event | None = None,
                  book: DigestBook | None = None,
                  dst_fd: int | None = None) -> tuple[int, str]:
    """``copy_file`` that also returns the hex SHA-256 of the content: (bytes of data, digest).

    The data is read from the disk once: a helper thread copies chunks of 4 MiB in the kernel
    while the calling thread hashes each finished chunk from the page cache (at most AHEAD
    chunks behind); after a FICLONE only the hash reads the data. When ``book`` knows the
    digest of ``src`` nothing is hashed: the file is cloned or copied as by ``copy_file`` and
    must not change meanwhile (OperationFailed if it did). The digest is the one ``sha256_file``
    gives (holes hashed as zeros) and is recorded in ``book`` for ``dst`` (and for ``src`` when
    it did not change meanwhile). ``progress`` counts the bytes of data hashed (or cloned with
    a known digest); ``cancel``, the refusal of an existing ``dst``, the removal of a
    partial one on any error and ``dst_fd`` are as in ``copy_file``.
    """
    what = f"the copy of {src} to {dst}"
    counter = Progress(progress)
    before: list[digests.FileIdentity] = []

    def body(sfd: int, dfd: int, size: int) -> str:
        ident = digests.FileIdentity.of(os.fstat(sfd))
        before.append(ident)
        known = digests.lookup(book, ident)
        if _try_clone(sfd, dfd):
            if known is not None and digests.FileIdentity.of(os.fstat(sfd)) == ident:
                counter.add(sum(end - start for start, end in extents(sfd, size)))
                return known
            return hash_fd(sfd, size, counter, cancel, what)
        if known is None:
            return _copy_hashing(sfd, dfd, size, counter, cancel, what)
        _plain_copy(sfd, dfd, size, counter, cancel, what)
        if digests.FileIdentity.of(os.fstat(sfd)) != ident:
            raise OperationFailed(f"{what} failed: {src} changed while it was being copied; "
                                  "copy it again when nothing writes to it")
        return known

    digest = _copy_new(src, dst, cancel, body, counter, dst_fd)
    assert digest is not None
    if book is not None:
        digests.remember_path(book, dst, digest, None)
        digests.remember_path(book, src, digest, before[0])
    return counter.done, digest
