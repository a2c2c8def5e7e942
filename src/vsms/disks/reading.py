"""Reading big, mostly empty disk image files: their data extents, and their SHA-256.

Only the data extents of a file cost anything: they are found with SEEK_DATA/SEEK_HOLE and read;
holes are never read (a hash takes them as zeros from memory). Progress is counted in bytes of
data (``data_bytes`` gives the total) and cancellation is checked every READ_BUFFER bytes.
``vsms.disks.copy`` builds its copies on these.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import threading
from collections.abc import Iterator

from vsms.disks import digests
from vsms.disks.api import ProgressFn, require_file, translate_oserror
from vsms.disks.digests import DigestBook
from vsms.errors import InvalidParameter, JobCancelled, OperationFailed

READ_BUFFER = 1024 * 1024  # what hashing reads at a time (stays in the CPU cache)


class Progress:
    """Cumulative, monotonic progress reporting; ``finish`` makes sure the final total is sent."""

    def __init__(self, fn: ProgressFn | None) -> None:
        self.fn, self.done, self.reported = fn, 0, -1

    def add(self, n: int) -> None:
        self.done += n
        if self.fn is not None:
            self.fn(self.done)
            self.reported = self.done

    def finish(self) -> None:
        if self.fn is not None and self.reported != self.done:
            self.fn(self.done)
            self.reported = self.done


def check_cancel(cancel: threading.Event | None, what: str) -> None:
    if cancel is not None and cancel.is_set():
        raise JobCancelled(f"{what} was cancelled on request")


def extents(fd: int, size: int) -> Iterator[tuple[int, int]]:
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


def open_source(path: str) -> tuple[int, os.stat_result]:
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
    fd, st = open_source(path)
    try:
        return sum(end - start for start, end in extents(fd, st.st_size))
    except OSError as exc:
        raise translate_oserror(exc, f"map the data extents of {path}") from None
    finally:
        os.close(fd)


class Sha256:
    """SHA-256 of a file's whole content, fed in order: data read from ``fd``, holes as zeros.

    ``cancel`` is checked every READ_BUFFER bytes; the bytes of data read go to ``counter``.
    """

    def __init__(self, fd: int, counter: Progress, cancel: threading.Event | None,
                 what: str) -> None:
        self.fd, self.counter, self.cancel, self.what = fd, counter, cancel, what
        self.pos, self.h = 0, hashlib.sha256()
        self.zero, self.buffer = memoryview(bytes(READ_BUFFER)), memoryview(bytearray(READ_BUFFER))

    def data(self, start: int, end: int) -> None:
        """Hash the zeros up to ``start``, then the bytes of ``[start, end)`` read from disk."""
        self.zeros_to(start)
        offset = start
        while offset < end:
            check_cancel(self.cancel, self.what)
            n = os.preadv(self.fd, [self.buffer[:min(READ_BUFFER, end - offset)]], offset)
            if n == 0:
                raise OperationFailed(f"{self.what} failed: the file shrank while it was being "
                                      "read; try again when nothing writes to it")
            self.h.update(self.buffer[:n])
            offset += n
            self.counter.add(n)
        self.pos = end

    def zeros_to(self, end: int) -> None:
        while self.pos < end:
            check_cancel(self.cancel, self.what)
            n = min(end - self.pos, READ_BUFFER)
            self.h.update(self.zero[:n])
            self.pos += n



def hash_fd(fd: int, size: int, counter: Progress, cancel: threading.Event | None,
             what: str) -> str:
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
    h = Sha256(fd, counter, cancel, what)
    for start, end in extents(fd, size):
        h.data(start, end)
    h.zeros_to(size)
    return h.h.hexdigest()


def sha256_file(path: str, *, progress: ProgressFn | None = None,
                cancel: threading.Event | None = None, book: DigestBook | None = None) -> str:
    """The hex SHA-256 of the whole content of ``path`` (the same digest as ``sha256sum``).

    Data extents are read; holes are hashed from a buffer of zeros without touching the disk.
    ``progress`` receives the bytes of data read so far (ending at ``data_bytes(path)``);
    ``cancel`` is checked every MiB and raises JobCancelled. With ``book``, the digest recorded
    for the file's unchanged identity is returned without reading (progress jumps to the end),
    and a digest computed is recorded.
    """
    what = f"the checksum of {path}"
    check_cancel(cancel, what)
    fd, st = open_source(path)
    counter = Progress(progress)
    ident = digests.FileIdentity.of(st)
    try:
        digest = digests.lookup(book, ident)
        if digest is not None:
            counter.add(sum(end - start for start, end in extents(fd, st.st_size)))
        else:
            digest = hash_fd(fd, st.st_size, counter, cancel, what)
            digests.remember(book, fd, digest, ident)
        counter.finish()
    except OSError as exc:
        raise translate_oserror(exc, f"read {path}") from None
    finally:
        os.close(fd)
    return digest
