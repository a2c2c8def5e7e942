"""The sparse copy engine and the sparse-aware SHA-256, on real sparse files."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.disks.craft import MIB, allocated, enospc_after, sparse_file
from vsms.disks import copy as diskcopy
from vsms.errors import FileNotFound, InvalidParameter, JobCancelled, OperationFailed

GIB = 1024 * MIB


@pytest.fixture(scope="module")
def sparse_2g(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    """2 GiB with 6 MiB of data in five extents, the last one ending exactly at the end."""
    path = tmp_path_factory.mktemp("sparse") / "disk.raw"
    extents = [(0, os.urandom(MIB)), (100 * MIB, os.urandom(2 * MIB)),
               (700 * MIB + 4096, os.urandom(MIB)), (1500 * MIB, os.urandom(MIB)),
               (2 * GIB - MIB, os.urandom(MIB))]
    yield path, sparse_file(path, 2 * GIB, extents)
    path.unlink()


@pytest.fixture(scope="module")
def one_big_extent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    """A 150 MiB data extent (more than two 64 MiB chunks) between two holes."""
    path = tmp_path_factory.mktemp("big") / "disk.raw"
    block = os.urandom(MIB)
    yield path, sparse_file(path, 400 * MIB, [(100 * MIB, block * 150)])
    path.unlink()


@pytest.fixture(scope="module")
def small_sparse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    """256 MiB and a byte, with data at odd offsets and lengths, starting and ending in a hole."""
    path = tmp_path_factory.mktemp("small") / "disk.raw"
    extents = [(4096 * 3 + 17, os.urandom(70_001)), (33 * MIB, os.urandom(3 * MIB + 5)),
               (200 * MIB - 1, os.urandom(2))]
    written = sparse_file(path, 256 * MIB + 1, extents)
    data = diskcopy.data_bytes(str(path))  # whole filesystem blocks: a little more than written
    assert written <= data < written + 4 * 64 * 1024
    yield path, data
    path.unlink()


@pytest.fixture(autouse=True)
def _no_big_files_left(tmp_path: Path) -> Iterator[None]:
    """pytest keeps old tmp folders; the copies made here are deleted at once."""
    yield
    shutil.rmtree(tmp_path, ignore_errors=True)


def _sha256sum(path: Path) -> str:
    out = subprocess.run(["sha256sum", str(path)], check=True, capture_output=True, text=True,
                         timeout=120).stdout
    return out.split()[0]


def test_data_bytes_counts_only_data(sparse_2g: tuple[Path, int], tmp_path: Path) -> None:
    path, data = sparse_2g
    assert diskcopy.data_bytes(str(path)) == data
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert diskcopy.data_bytes(str(empty)) == 0


def test_sparse_copy_is_identical_and_stays_sparse(sparse_2g: tuple[Path, int],
                                                   tmp_path: Path) -> None:
    src, data = sparse_2g
    dst = tmp_path / "copy.raw"
    seen: list[int] = []
    copied = diskcopy.copy_file(str(src), str(dst), progress=seen.append)
    assert copied == data
    assert dst.stat().st_size == src.stat().st_size
    assert abs(allocated(dst) - allocated(src)) <= 0.05 * allocated(src)
    subprocess.run(["cmp", str(src), str(dst)], check=True, timeout=120)
    assert seen == sorted(seen) and seen[-1] == data
    assert len(seen) >= 5  # at least one report per extent


def test_progress_and_cancel_are_per_chunk_of_at_most_64_mib(
        one_big_extent: tuple[Path, int], tmp_path: Path) -> None:
    src, data = one_big_extent
    seen: list[int] = []
    assert diskcopy.copy_file(str(src), str(tmp_path / "c"), progress=seen.append) == data
    steps = [b - a for a, b in zip([0, *seen], seen, strict=False)]
    assert len(seen) >= 3 and max(steps) <= 64 * MIB and seen[-1] == data
    assert diskcopy.sha256_file(str(tmp_path / "c")) == _sha256sum(src)


def test_cancel_mid_copy_removes_the_partial_copy(sparse_2g: tuple[Path, int],
                                                  tmp_path: Path) -> None:
    src, data = sparse_2g
    dst = tmp_path / "copy.raw"
    cancel = threading.Event()
    seen: list[int] = []

    def progress(done: int) -> None:
        seen.append(done)
        cancel.set()

    with pytest.raises(JobCancelled, match="cancelled"):
        diskcopy.copy_file(str(src), str(dst), progress=progress, cancel=cancel)
    assert not dst.exists()
    assert len(seen) == 1 and 0 < seen[0] < data


def test_cancel_before_start_creates_nothing(sparse_2g: tuple[Path, int], tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(JobCancelled):
        diskcopy.copy_file(str(sparse_2g[0]), str(tmp_path / "c"), cancel=cancel)
    assert list(tmp_path.iterdir()) == []


def test_existing_target_is_refused_and_kept(sparse_2g: tuple[Path, int], tmp_path: Path) -> None:
    dst = tmp_path / "taken"
    dst.write_bytes(b"keep me")
    with pytest.raises(InvalidParameter, match="already exists"):
        diskcopy.copy_file(str(sparse_2g[0]), str(dst))
    assert dst.read_bytes() == b"keep me"


def test_bad_source_and_missing_target_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFound):
        diskcopy.copy_file(str(tmp_path / "none"), str(tmp_path / "c"))
    with pytest.raises(InvalidParameter, match="is a directory"):
        diskcopy.copy_file(str(tmp_path), str(tmp_path / "c"))
    src = tmp_path / "s"
    src.write_bytes(b"data")
    with pytest.raises(InvalidParameter, match="does not exist"):
        diskcopy.copy_file(str(src), str(tmp_path / "no" / "c"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


def test_empty_and_all_hole_files_copy(tmp_path: Path) -> None:
    for name, size in (("empty", 0), ("hole", 50 * MIB)):
        src = tmp_path / name
        sparse_file(src, size, [])
        seen: list[int] = []
        assert diskcopy.copy_file(str(src), str(tmp_path / f"{name}.copy"),
                                  progress=seen.append) == 0
        assert seen == [0]
        assert (tmp_path / f"{name}.copy").stat().st_size == size


def test_write_error_mid_copy_removes_the_partial_copy(
        sparse_2g: tuple[Path, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "copy_file_range", enospc_after(2))  # injected failure
    dst = tmp_path / "copy.raw"
    with pytest.raises(OperationFailed, match="free some space"):
        diskcopy.copy_file(str(sparse_2g[0]), str(dst))
    assert not dst.exists()


def test_read_write_fallback_when_copy_file_range_is_unavailable(
        small_sparse: tuple[Path, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def unsupported(*_args: object) -> int:
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    monkeypatch.setattr(os, "copy_file_range", unsupported)  # injected failure
    src, data = small_sparse
    dst = tmp_path / "copy.raw"
    assert diskcopy.copy_file(str(src), str(dst)) == data
    assert abs(allocated(dst) - allocated(src)) <= 0.05 * allocated(src)
    subprocess.run(["cmp", str(src), str(dst)], check=True, timeout=120)


def test_sha256_of_a_sparse_file_equals_sha256sum(small_sparse: tuple[Path, int]) -> None:
    path, data = small_sparse
    seen: list[int] = []
    digest = diskcopy.sha256_file(str(path), progress=seen.append)
    assert digest == _sha256sum(path)
    assert seen == sorted(seen) and seen[-1] == data


def test_sha256_small_cases_equal_hashlib(tmp_path: Path) -> None:
    cases = {"empty": (0, []), "hole-only": (3 * MIB + 7, []),
             "data-then-hole": (9 * MIB, [(0, b"x" * 5000)]),
             "hole-then-data": (9 * MIB + 1, [(9 * MIB - 10, b"y" * 11)])}
    for name, (size, extents) in cases.items():
        path = tmp_path / name
        sparse_file(path, size, extents)
        assert diskcopy.sha256_file(str(path)) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_sha256_cancel(sparse_2g: tuple[Path, int]) -> None:
    cancel = threading.Event()
    with pytest.raises(JobCancelled):
        diskcopy.sha256_file(str(sparse_2g[0]), progress=lambda _n: cancel.set(), cancel=cancel)
