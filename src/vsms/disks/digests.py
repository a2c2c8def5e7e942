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

The book is an optimisation only: when it cannot be read or written the digest is computed.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Protocol

from vsms.errors import VsmsError

SETTLE_NS = 20_000_000  # two clock ticks at HZ=100, five at HZ=250

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


class DigestBook(Protocol):
    """Where digests are kept (``vsms.store.db.Store`` is one)."""

    def known_digest(self, ident: FileIdentity) -> str | None:
        """The hex SHA-256 recorded for exactly this identity, or None."""
        ...

    def record_digest(self, ident: FileIdentity, digest: str) -> None:
        """Remember ``digest`` for ``ident`` (replacing what was kept for that inode)."""
        ...


def lookup(book: DigestBook | None, ident: FileIdentity) -> str | None:
    """The digest ``book`` holds for ``ident``; None without a book or when it fails."""
    if book is None:
        return None
    try:
        return book.known_digest(ident)
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
             before: FileIdentity | None = None) -> None:
    """Record ``digest`` for the open file ``fd`` when it is settled and, given ``before``,
    unchanged since; failures of the book are logged, never raised."""
    if book is None:
        return
    try:
        ident = settled(fd, before)
        if ident is not None:
            book.record_digest(ident, digest)
    except (OSError, VsmsError) as exc:
        log.warning("could not record the digest of a file: %s", exc)


def remember_path(book: DigestBook | None, path: str, digest: str,
                  before: FileIdentity | None = None) -> None:
    """``remember`` for the file at ``path`` (nothing when it cannot be opened)."""
    if book is None:
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError:
        return
    try:
        remember(book, fd, digest, before)
    finally:
        os.close(fd)
