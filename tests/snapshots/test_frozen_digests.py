"""The digest book and frozen images (real SQLite store, real files): a frozen image's digest
survives the ctime changes libvirt makes when a VM using it starts (chown), and is still
dropped by any write. The reuse is proven as in tests/disks/test_digests.py: a digest the book
returns for a file is trusted without reading it, so a planted one comes back. The same on
qemu:///system, with a snapshot freezing a VHD and the VM started, is checked in
tests/snapshots/test_live_merge.py."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.disks.craft import MIB, sparse_file
from vsms.disks import copy as diskcopy
from vsms.disks import digests
from vsms.disks.digests import FileIdentity
from vsms.store.db import Store

WRONG = "f" * 64


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "vsms.sqlite3")
    yield s
    s.close()


def _ident(path: Path) -> FileIdentity:
    return FileIdentity.of(os.stat(path))


def _relabel(path: Path) -> None:
    """What libvirt does to a backing file when a VM starts (a new owner or label): the
    ctime moves, the content and mtime stay (a mode change does the same without root)."""
    mode = os.stat(path).st_mode & 0o7777
    os.chmod(path, mode ^ 0o040)
    os.chmod(path, mode)


def test_a_frozen_image_keeps_its_digest_through_relabelling(tmp_path: Path,
                                                             store: Store) -> None:
    path = tmp_path / "base.raw"
    sparse_file(path, 16 * MIB, [(MIB, os.urandom(MIB))])
    truth = hashlib.sha256(path.read_bytes()).hexdigest()
    time.sleep(2 * digests.SETTLE_NS / 1e9)
    assert diskcopy.sha256_file(str(path), book=store) == truth  # recorded as any file

    # not frozen: a relabelling alone loses the record (the ctime moved)
    before = _ident(path)
    _relabel(path)
    assert _ident(path).ctime_ns != before.ctime_ns
    assert digests.lookup(store, _ident(path)) is None
    assert diskcopy.sha256_file(str(path), book=store) == truth  # hashed again, recorded

    # frozen (as a snapshot does): relabelled, the record is still found, and trusted
    assert digests.freeze(store, str(path))
    _relabel(path)
    assert store.known_digest(_ident(path)) is None  # the exact identity is not known...
    assert digests.lookup(store, _ident(path)) == truth  # ...the frozen one is
    store.record_digest(_ident(path).frozen(), WRONG)  # planted: returned without reading
    assert diskcopy.sha256_file(str(path), book=store) == WRONG
    store.record_digest(_ident(path).frozen(), truth)

    # a write (a merge into it once its snapshot is gone) makes it stale
    time.sleep(2 * digests.SETTLE_NS / 1e9)
    with open(path, "r+b") as fh:
        fh.seek(MIB)
        fh.write(b"\x00" * 4096)
    assert digests.lookup(store, _ident(path)) is None
    changed = hashlib.sha256(path.read_bytes()).hexdigest()
    assert diskcopy.sha256_file(str(path), book=store) == changed


def test_freeze_needs_a_known_digest_and_remember_can_record_frozen(tmp_path: Path,
                                                                    store: Store) -> None:
    path = tmp_path / "base.raw"
    sparse_file(path, 4 * MIB, [(0, os.urandom(MIB))])
    assert not digests.freeze(store, str(path))  # nothing known: nothing hashed either
    assert not digests.freeze(None, str(path))
    assert not digests.freeze(store, str(tmp_path / "missing"))
    time.sleep(2 * digests.SETTLE_NS / 1e9)
    digests.remember_path(store, str(path), WRONG, frozen=True)  # an export of a frozen image
    assert store.known_digest(_ident(path)) is None
    assert store.known_digest(_ident(path).frozen()) == WRONG
    _relabel(path)
    assert digests.lookup(store, _ident(path)) == WRONG
