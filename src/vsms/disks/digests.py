"""Digests this host already computed, so an unchanged file is not read again to be hashed.

A :class:`DigestBook` remembers the SHA-256 of a file under its :class:`FileIdentity`: device,
inode, size, and the nanosecond modification and change times. Writing a file, truncating it,
changing its mode or owner or replacing it all change its ctime, which no program can set back,
so a file whose identity still matches was not changed since it was hashed. vsms records the
digests it computes while it exports, imports and verifies (``vsms.disks.copy``), so an export
this host wrote is not hashed again to be verified when it is imported, and a disk cloned
(reflinked) from a file with a known digest needs no hash at all.

File times have the granularity of the kernel's clock tick: a change made within the same tick
as the last write before hashing could keep the same times. ``settled`` therefore waits until the
file's times are at least SETTLE_NS old (and re-reads them) before an identity is recorded; from
then on every change gives new times. A change in the very tick of vsms's own write, by a writer
racing with it, is not detected; nothing else writes to files vsms is writing.

Frozen images (the disk images a snapshot froze: nothing writes them any more, QEMU opens them
read-only as backing files) keep their content, but not their ctime: libvirt changes their
owner (or security label) each time a VM using them starts. Their digests are therefore kept
under a *frozen* identity, whose ctime is FROZEN_CTIME and is not compared: device, inode, size
and modification time still are, so a write (which moves the mtime; merging a snapshot away
writes into the image it merges into) makes the record stale as for any file. ``freeze``
turns the record of a file that is being frozen into a frozen one (a snapshot does this for
each image it freezes), ``remember(..., frozen=True)`` records one directly (for a caller that
hashes an image it knows is frozen, e.g. an export of a snapshot's image), and ``lookup``
finds either. Only vsms marks images frozen, and only those its snapshots froze; a program that
rewrote a frozen image and set its mtime back would go unnoticed, which is the trade.

The book is an optimisation only: when it cannot be read or written the digest is computed.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, replace
from typing import Protocol

from vsms.errors import VsmsError

SETTLE_NS = 20_000_000  # two clock ticks at HZ=100, five at HZ=250
FROZEN_CTIME = -1  # the ctime of a frozen image's identity (not compared)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileIdentity:
    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def frozen(self) -> FileIdentity:
        """This identity as a frozen image's record keeps it (ctime not compared)."""
        return replace(self, ctime_ns=FROZEN_CTIME)


class DigestBook(Protocol):
    """Where digests are kept (``vsms.store.db.Store`` is one)."""

    def known_digest(self, ident: FileIdentity) -> str | None:
        """The hex SHA-256 recorded for exactly this identity, or None."""
        ...

    def record_digest(self, ident: FileIdentity, digest: str) -> None:
        """Remember ``digest`` for ``ident`` (replacing what was kept for that inode)."""
        ...


def lookup(book: DigestBook | None, ident: FileIdentity) -> str | None:
    """The digest ``book`` holds for ``ident``, or for it as a frozen image; None without a
    book or when it fails."""
    if book is None:
        return None
    try:
        found = book.known_digest(ident)
        return found if found is not None else book.known_digest(ident.frozen())
    except VsmsError as exc:
        log.warning("digest book unreadable, hashing instead: %s", exc)
        return None


def settled(fd: int, before: FileIdentity | None = None) -> FileIdentity | None:
    """The identity of the open file ``fd`` once its times are SETTLE_NS old (waiting at most
    that long); None when it changed meanwhile or differs from ``before`` (the identity it had
    when its content was read)."""
    first = FileIdentity.of(os.fstat(fd))
    if before is not None and first != before:
        return None
    age = time.time_ns() - max(first.mtime_ns, first.ctime_ns)
    if age >= SETTLE_NS:
        return first
    time.sleep((SETTLE_NS - age) / 1e9)
    again = FileIdentity.of(os.fstat(fd))
    return again if again == first else None


def remember(book: DigestBook | None, fd: int, digest: str,
             before: FileIdentity | None = None, *, frozen: bool = False) -> None:
    """Record ``digest`` for the open file ``fd`` when it is settled and, given ``before``,
    unchanged since (as a frozen image's with ``frozen``); failures of the book are logged,
    never raised."""
    if book is None:
        return
    try:
        ident = settled(fd, before)
        if ident is not None:
            book.record_digest(ident.frozen() if frozen else ident, digest)
    except (OSError, VsmsError) as exc:
        log.warning("could not record the digest of a file: %s", exc)


def _open(path: str) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError:
        return None


def remember_path(book: DigestBook | None, path: str, digest: str,
                  before: FileIdentity | None = None, *, frozen: bool = False) -> None:
    """``remember`` for the file at ``path`` (nothing when it cannot be opened)."""
    if book is None:
        return
    fd = _open(path)
    if fd is None:
        return
    try:
        remember(book, fd, digest, before, frozen=frozen)
    finally:
        os.close(fd)


def freeze(book: DigestBook | None, path: str) -> bool:
    """The file at ``path`` is frozen from now on (a snapshot froze it): the digest the book
    holds for its identity now is kept as a frozen image's, so a later change of its ctime
    alone (libvirt relabelling it when a VM starts) does not lose it. Whether one was kept;
    nothing is hashed, failures are logged, never raised."""
    if book is None:
        return False
    fd = _open(path)
    if fd is None:
        return False
    try:
        ident = FileIdentity.of(os.fstat(fd))
        digest = book.known_digest(ident)
        if digest is None:
            return False
        book.record_digest(ident.frozen(), digest)
        return True
    except (OSError, VsmsError) as exc:
        log.warning("could not mark the digest of %s as frozen: %s", path, exc)
        return False
    finally:
        os.close(fd)
