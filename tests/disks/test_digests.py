"""Digests recorded in the real SQLite store spare hashing unchanged files, and only those.

A digest the book holds is trusted without reading the file; the tests prove it by planting a
wrong digest for a file's identity and seeing it returned, then show that any change to the file
(even one that keeps its size and puts its modification time back) makes vsms hash it again.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.disks.craft import MIB, sparse_file
from tests.reflink import loop_xfs, needs_xfs
from vsms.disks import copy as diskcopy
from vsms.disks import digests
from vsms.disks.digests import FileIdentity
from vsms.errors import OperationFailed, SystemNotAvailable
from vsms.store import db as storedb
from vsms.store.db import Store

WRONG = "0" * 64


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "vsms.sqlite3")
    yield s
    s.close()


def _file(path: Path) -> str:
    sparse_file(path, 64 * MIB, [(MIB, os.urandom(MIB)), (40 * MIB, os.urandom(3 * MIB))])
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _ident(path: Path) -> FileIdentity:
    return FileIdentity.of(os.stat(path))


def test_a_hashed_file_is_recorded_and_then_trusted(tmp_path: Path, store: Store) -> None:
    path = tmp_path / "disk.raw"
    truth = _file(path)
    assert store.known_digest(_ident(path)) is None
    assert diskcopy.sha256_file(str(path), book=store) == truth
    assert store.known_digest(_ident(path)) == truth
    store.record_digest(_ident(path), WRONG)  # planted: a lookup that reads nothing returns it
    seen: list[int] = []
    assert diskcopy.sha256_file(str(path), book=store, progress=seen.append) == WRONG
    assert seen[-1] == diskcopy.data_bytes(str(path))  # progress still reaches the end
    assert diskcopy.sha256_file(str(path)) == truth  # without a book: always hashed


@pytest.mark.parametrize("change", ["same bytes rewritten", "mode", "byte flipped, time put back",
                                    "replaced by a copy"])
def test_any_change_makes_it_hashed_again(tmp_path: Path, store: Store, change: str) -> None:
    path = tmp_path / "disk.raw"
    truth = _file(path)
    store.record_digest(_ident(path), WRONG)
    before = os.stat(path)
    if change == "same bytes rewritten":
        with open(path, "r+b") as fh:
            fh.seek(MIB)
            block = fh.read(4096)
            fh.seek(MIB)
            fh.write(block)
    elif change == "mode":
        os.chmod(path, 0o640)
    elif change == "byte flipped, time put back":
        with open(path, "r+b") as fh:
            fh.seek(MIB)
            first = fh.read(1)
            fh.seek(MIB)
            fh.write(bytes([first[0] ^ 0xFF]))
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        truth = hashlib.sha256(path.read_bytes()).hexdigest()
    else:
        shutil.copyfile(path, tmp_path / "twin")
        os.replace(tmp_path / "twin", path)
    after = os.stat(path)
    assert after.st_size == before.st_size
    assert diskcopy.sha256_file(str(path), book=store) == truth
    assert store.known_digest(_ident(path)) == truth


def test_copy_and_hash_records_source_and_copy(tmp_path: Path, store: Store) -> None:
    src, dst = tmp_path / "src.raw", tmp_path / "dst.raw"
    truth = _file(src)
    _, digest = diskcopy.copy_and_hash(str(src), str(dst), book=store)
    assert digest == truth
    assert store.known_digest(_ident(src)) == truth
    assert store.known_digest(_ident(dst)) == truth
    assert hashlib.sha256(dst.read_bytes()).hexdigest() == truth


def test_a_file_just_written_is_recorded_once_its_times_settled(tmp_path: Path,
                                                                store: Store) -> None:
    path = tmp_path / "fresh.raw"
    path.write_bytes(b"x" * 4096)
    with open(path, "rb") as fh:
        ident = digests.settled(fh.fileno())
    assert ident == _ident(path)
    stamp = max(ident.mtime_ns, ident.ctime_ns)
    assert time.time_ns() - stamp >= digests.SETTLE_NS  # it waited for the next ticks


def test_a_file_changed_while_hashed_is_not_recorded(tmp_path: Path, store: Store) -> None:
    path = tmp_path / "moving.raw"
    _file(path)
    stale = _ident(path)
    os.chmod(path, 0o600)  # the content "changed" between the read and the record
    with open(path, "rb") as fh:
        digests.remember(store, fh.fileno(), WRONG, before=stale)
    assert store.known_digest(_ident(path)) is None
    assert store.known_digest(stale) is None


class BrokenBook:
    """A book whose database is gone (failure injection)."""

    def known_digest(self, ident: FileIdentity) -> str | None:
        raise SystemNotAvailable("the vsms database is closed")

    def record_digest(self, ident: FileIdentity, digest: str) -> None:
        raise SystemNotAvailable("the vsms database is closed")


def test_a_broken_book_only_costs_the_hash(tmp_path: Path) -> None:
    path = tmp_path / "disk.raw"
    truth = _file(path)
    assert diskcopy.sha256_file(str(path), book=BrokenBook()) == truth
    _, digest = diskcopy.copy_and_hash(str(path), str(tmp_path / "copy"), book=BrokenBook())
    assert digest == truth


def test_the_book_keeps_the_most_recent_digests(tmp_path: Path, store: Store,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storedb, "DIGESTS_KEPT", 3)
    idents = [FileIdentity(1, ino, 10, 5, 6) for ino in range(5)]
    for n, ident in enumerate(idents):
        store.record_digest(ident, f"{n:064x}")
    assert [store.known_digest(i) for i in idents] == [None, None, *(f"{n:064x}"
                                                                     for n in (2, 3, 4))]
    store.record_digest(FileIdentity(1, 4, 11, 5, 6), WRONG)  # one row per inode
    assert store.known_digest(idents[4]) is None
    rows = sqlite3.connect(store.path).execute("SELECT COUNT(*) FROM file_digests").fetchone()
    assert rows[0] == 3


@needs_xfs
def test_a_clone_of_a_known_file_is_not_hashed(store: Store) -> None:
    with loop_xfs(Path("/var/tmp/vsms-tests")) as mnt:
        src = mnt / "src.raw"
        truth = _file(src)
        store.record_digest(_ident(src), WRONG)  # planted for the source
        seen: list[int] = []
        _, digest = diskcopy.copy_and_hash(str(src), str(mnt / "clone.raw"), book=store,
                                           progress=seen.append)
        assert digest == WRONG  # the clone shares the source's data: its digest was trusted
        assert seen[-1] == diskcopy.data_bytes(str(src))
        assert store.known_digest(_ident(mnt / "clone.raw")) == WRONG
        os.chmod(src, 0o600)  # the source changed since: the next clone is hashed
        _, digest = diskcopy.copy_and_hash(str(src), str(mnt / "again.raw"), book=store)
        assert digest == truth


def test_a_copy_of_a_known_file_is_not_hashed(tmp_path: Path, store: Store) -> None:
    src, dst = tmp_path / "src.raw", tmp_path / "dst.raw"
    truth = _file(src)
    store.record_digest(_ident(src), WRONG)  # planted: the copy goes by it, hashing nothing
    _, digest = diskcopy.copy_and_hash(str(src), str(dst), book=store)
    assert digest == WRONG
    assert hashlib.sha256(dst.read_bytes()).hexdigest() == truth  # the copy itself is whole
    assert store.known_digest(_ident(dst)) == WRONG


def test_a_known_file_that_changes_while_copied_fails_the_copy(tmp_path: Path,
                                                               store: Store) -> None:
    src, dst = tmp_path / "src.raw", tmp_path / "dst.raw"
    truth = _file(src)
    store.record_digest(_ident(src), truth)

    def touch(_done: int) -> None:
        os.chmod(src, 0o600 if os.stat(src).st_mode & 0o044 else 0o644)

    with pytest.raises(OperationFailed, match="changed while it was being copied"):
        diskcopy.copy_and_hash(str(src), str(dst), book=store, progress=touch)
    assert not dst.exists()


def test_forgetting_the_digests_makes_every_file_hashed_again(tmp_path: Path,
                                                             store: Store) -> None:
    path = tmp_path / "disk.raw"
    truth = _file(path)
    store.record_digest(_ident(path), WRONG)
    assert store.forget_digests() == 1
    assert diskcopy.sha256_file(str(path), book=store) == truth
