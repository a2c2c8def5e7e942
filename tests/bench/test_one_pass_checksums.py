"""The fast paths of issue 5: a disk is hashed while it is copied (copy_and_hash), the export's
manifest reuses those digests, and an import with copy checks the disks' checksums during the
copy instead of reading them twice. Real sparse files and real exports."""

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
from tests.exportdir.conftest import build_export
from vsms.disks import copy as diskcopy
from vsms.errors import InvalidParameter, JobCancelled, OperationFailed, ValidationFailed
from vsms.exportdir import manifest, reader, writer
from vsms.exportdir.layout import MANIFEST, VHD_DIR


@pytest.fixture(scope="module")
def sparse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    """600 MiB with 41 MiB of data in four extents at odd places, ending in a hole."""
    path = tmp_path_factory.mktemp("one-pass") / "disk.raw"
    extents = [(0, os.urandom(MIB)), (7 * MIB + 123, os.urandom(30 * MIB + 1)),
               (300 * MIB, os.urandom(9 * MIB)), (599 * MIB - 4096, os.urandom(4096))]
    sparse_file(path, 600 * MIB, extents)
    yield path, diskcopy.data_bytes(str(path))
    path.unlink()


@pytest.fixture(autouse=True)
def _clean(tmp_path: Path) -> Iterator[None]:
    yield
    shutil.rmtree(tmp_path, ignore_errors=True)


def _threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name == "vsms-copy"}


def _sha256sum(path: Path) -> str:
    return subprocess.run(["sha256sum", str(path)], check=True, capture_output=True, text=True,
                          timeout=120).stdout.split()[0]


def test_copy_and_hash_copies_sparse_and_returns_sha256sum(sparse: tuple[Path, int],
                                                           tmp_path: Path) -> None:
    src, data = sparse
    dst = tmp_path / "copy.raw"
    seen: list[int] = []
    copied, digest = diskcopy.copy_and_hash(str(src), str(dst), progress=seen.append)
    assert copied == data
    assert digest == _sha256sum(src) == diskcopy.sha256_file(str(dst))
    subprocess.run(["cmp", str(src), str(dst)], check=True, timeout=120)
    assert dst.stat().st_size == src.stat().st_size
    assert abs(allocated(dst) - allocated(src)) <= 0.05 * allocated(src)
    assert seen == sorted(seen) and seen[-1] == data and len(seen) > 10
    assert _threads() == set()


def test_copy_and_hash_small_cases(tmp_path: Path) -> None:
    cases = {"empty": (0, []), "hole-only": (3 * MIB + 7, []),
             "data-then-hole": (9 * MIB, [(0, b"x" * 5000)]),
             "hole-then-data": (9 * MIB + 1, [(9 * MIB - 10, b"y" * 11)])}
    for name, (size, extents) in cases.items():
        src = tmp_path / name
        sparse_file(src, size, extents)
        copied, digest = diskcopy.copy_and_hash(str(src), str(tmp_path / f"{name}.copy"))
        assert digest == hashlib.sha256(src.read_bytes()).hexdigest(), name
        assert (tmp_path / f"{name}.copy").read_bytes() == src.read_bytes()
        assert copied == diskcopy.data_bytes(str(src))


def test_copy_and_hash_cancel_removes_the_copy_and_stops_the_thread(
        sparse: tuple[Path, int], tmp_path: Path) -> None:
    dst = tmp_path / "copy.raw"
    cancel = threading.Event()
    with pytest.raises(JobCancelled, match="cancelled"):
        diskcopy.copy_and_hash(str(sparse[0]), str(dst), cancel=cancel,
                               progress=lambda n: cancel.set() if n > 2 * MIB else None)
    assert not dst.exists()
    assert _threads() == set()


def test_copy_and_hash_write_error_is_reported_and_cleaned_up(
        sparse: tuple[Path, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "copy_file_range", enospc_after(3))  # injected failure
    dst = tmp_path / "copy.raw"
    with pytest.raises(OperationFailed, match="free some space"):
        diskcopy.copy_and_hash(str(sparse[0]), str(dst))
    assert not dst.exists()
    assert _threads() == set()


def test_copy_and_hash_read_write_fallback(sparse: tuple[Path, int], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    def unsupported(*_args: object) -> int:
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    monkeypatch.setattr(os, "copy_file_range", unsupported)  # injected failure
    src, data = sparse
    copied, digest = diskcopy.copy_and_hash(str(src), str(tmp_path / "c"))
    assert copied == data and digest == _sha256sum(src)
    subprocess.run(["cmp", str(src), str(tmp_path / "c")], check=True, timeout=120)


def test_copy_and_hash_refuses_an_existing_target(sparse: tuple[Path, int],
                                                  tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_bytes(b"keep")
    with pytest.raises(InvalidParameter, match="already exists"):
        diskcopy.copy_and_hash(str(sparse[0]), str(taken))
    assert taken.read_bytes() == b"keep"


# -- manifest and reader ----------------------------------------------------------------------

def test_write_manifest_takes_known_digests_without_reading_those_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    export = build_export(tmp_path / "vm1")
    disk = f"{VHD_DIR}/disk1.vhd"
    digest = _sha256sum(export.path / disk)
    read: list[str] = []
    real = diskcopy.sha256_file

    def spy(path: str, **kw: object) -> str:
        read.append(path)
        return real(path, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(manifest, "sha256_file", spy)
    (export.path / MANIFEST).unlink()
    writer.write_manifest(export.path, known={disk: digest.upper()})
    assert str(export.path / disk) not in read and len(read) == 3  # config, .exp, the vhdx
    check = subprocess.run(["sha256sum", "--strict", "-c", MANIFEST], cwd=export.path,
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr


def test_write_manifest_refuses_bad_known_digests(tmp_path: Path) -> None:
    export = build_export(tmp_path / "vm1")
    (export.path / MANIFEST).unlink()
    with pytest.raises(InvalidParameter, match="names no file of the export"):
        writer.write_manifest(export.path, known={f"{VHD_DIR}/nope.vhd": "0" * 64})
    with pytest.raises(InvalidParameter, match="not a SHA-256"):
        writer.write_manifest(export.path, known={f"{VHD_DIR}/disk1.vhd": "xyz"})
    assert not (export.path / MANIFEST).exists()


def test_read_export_defers_only_the_disks_and_the_caller_checks_them(tmp_path: Path) -> None:
    export = build_export(tmp_path / "vm1")
    disk = f"{VHD_DIR}/disk1.vhd"
    listed = reader.listed_checksums(reader.read_export(export.path), [disk])
    assert listed == {disk: _sha256sum(export.path / disk)}
    with open(export.path / disk, "r+b") as fh:  # in the padding of the BAT: still a valid VHD
        fh.seek(1600)
        fh.write(b"damaged")
    with pytest.raises(ValidationFailed, match="does not match its checksum"):
        reader.read_export(export.path)
    pkg = reader.read_export(export.path, defer_disks=True)  # left to the caller
    expected = reader.listed_checksums(pkg, [disk])
    with pytest.raises(ValidationFailed) as err:
        reader.verify_checksums(pkg, expected)
    assert err.value.problems == [reader.checksum_mismatch(disk)]
    # the other files are still verified when the disks are deferred
    cfg = export.path / "config.xml"
    cfg.write_bytes(cfg.read_bytes().replace(b"testhost", b"otherhost"))
    with pytest.raises(ValidationFailed) as err:
        reader.read_export(export.path, defer_disks=True)
    assert err.value.problems == [reader.checksum_mismatch("config.xml")]


def test_listed_checksums_reports_a_manifest_changed_meanwhile(tmp_path: Path) -> None:
    export = build_export(tmp_path / "vm1")
    pkg = reader.read_export(export.path, defer_disks=True)
    text = (export.path / MANIFEST).read_text()
    (export.path / MANIFEST).write_text(
        "".join(line + "\n" for line in text.splitlines() if "disk1.vhd" not in line))
    with pytest.raises(ValidationFailed, match=r"not listed in manifest\.sha256 any more"):
        reader.listed_checksums(pkg, [f"{VHD_DIR}/disk1.vhd"])
