"""StorageRoots.confine and the helpers behind it, without libvirt: qcow2 references, backing
chains, protocol names, mount points, hard links in an export."""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

import pytest

from tests.security.conftest import qcow2
from vsms.disks.qemuimg import referenced_files
from vsms.errors import AccessDenied, InvalidParameter
from vsms.exportdir.tree import mount_points, scan_tree
from vsms.operations.paths import MAX_BACKING_CHAIN, StorageRoots, has_protocol


@pytest.fixture
def roots(tmp_path: Path) -> tuple[StorageRoots, Path, Path]:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.raw").write_bytes(b"s" * 4096)
    return StorageRoots([root]), root, outside


@pytest.mark.parametrize("name, expected", [
    ("json:{}", True), ("nbd:host:10809", True), ("file:/etc/passwd", True), ("a:b", True),
    ("/abs/a:b", False), ("dir/a:b", False), ("plain.qcow2", False), ("./x:y", False),
])
def test_has_protocol(name: str, expected: bool) -> None:
    assert has_protocol(name) is expected


def test_referenced_files(tmp_path: Path) -> None:
    qcow2(tmp_path / "plain.qcow2")
    qcow2(tmp_path / "over.qcow2", backing="base.raw")
    qcow2(tmp_path / "data.qcow2", data_file=str(tmp_path / "d.raw"))
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=0.10", "-u", "-b",
                    "/v2/base", "-F", "raw", str(tmp_path / "v2.qcow2"), "1M"], check=True,
                   timeout=30)
    (tmp_path / "raw.img").write_bytes(b"\0" * 4096)
    assert referenced_files(str(tmp_path / "plain.qcow2")) == []
    assert referenced_files(str(tmp_path / "over.qcow2")) == [("backing file", "base.raw")]
    assert referenced_files(str(tmp_path / "data.qcow2")) == [
        ("external data file", str(tmp_path / "d.raw"))]
    assert referenced_files(str(tmp_path / "v2.qcow2")) == [("backing file", "/v2/base")]
    assert referenced_files(str(tmp_path / "raw.img")) == []


def test_damaged_qcow2_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.qcow2"
    qcow2(path, backing="base.raw")
    with open(path, "r+b") as fh:  # the backing name now lies far outside the first cluster
        fh.seek(8)
        fh.write(struct.pack(">Q", 1 << 40))
    with pytest.raises(InvalidParameter, match="not a valid qcow2 image"):
        referenced_files(str(path))
    (tmp_path / "short.qcow2").write_bytes(b"QFI\xfb\0\0\0\3")
    with pytest.raises(InvalidParameter, match="truncated"):
        referenced_files(str(tmp_path / "short.qcow2"))


def test_confine_follows_backing_chains(roots: tuple[StorageRoots, Path, Path]) -> None:
    sr, root, outside = roots
    qcow2(root / "base.qcow2")
    qcow2(root / "mid.qcow2", backing="base.qcow2")
    qcow2(root / "top.qcow2", backing=str(root / "mid.qcow2"))
    assert sr.confine(str(root / "top.qcow2"), "Path") == root / "top.qcow2"
    qcow2(root / "evil-mid.qcow2", backing=str(outside / "secret.raw"))
    qcow2(root / "evil-top.qcow2", backing="evil-mid.qcow2")
    with pytest.raises(AccessDenied, match=r"its backing file .* is outside the storage roots"):
        sr.confine(str(root / "evil-top.qcow2"), "Path")
    with pytest.raises(AccessDenied, match="protocol name"):
        qcow2(root / "nbd.qcow2", backing="nbd:127.0.0.1:1")
        sr.confine(str(root / "nbd.qcow2"), "Path")
    qcow2(root / "data.qcow2", data_file=str(outside / "d.raw"))
    with pytest.raises(AccessDenied, match="external data file"):
        sr.confine(str(root / "data.qcow2"), "Path")
    qcow2(root / "data-in.qcow2", data_file=str(root / "d.raw"))
    assert sr.confine(str(root / "data-in.qcow2"), "Path") == root / "data-in.qcow2"


def test_confine_refuses_loops_and_long_chains(roots: tuple[StorageRoots, Path, Path]) -> None:
    sr, root, _ = roots
    qcow2(root / "a.qcow2", backing="b.qcow2")
    qcow2(root / "b.qcow2", backing="a.qcow2")
    with pytest.raises(InvalidParameter, match="loops back"):
        sr.confine(str(root / "a.qcow2"), "Path")
    qcow2(root / "c0.qcow2")
    for i in range(1, MAX_BACKING_CHAIN + 2):
        qcow2(root / f"c{i}.qcow2", backing=f"c{i - 1}.qcow2")
    with pytest.raises(InvalidParameter, match="longer than"):
        sr.confine(str(root / f"c{MAX_BACKING_CHAIN + 1}.qcow2"), "Path")


def test_confine_never_opens_special_files(roots: tuple[StorageRoots, Path, Path]) -> None:
    sr, root, _ = roots
    os.mkfifo(root / "fifo.qcow2")  # opening it for reading would block
    assert sr.confine(str(root / "fifo.qcow2"), "Path") == root / "fifo.qcow2"


def test_mount_points_parse_escapes(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text("36 35 98:0 /mnt1 /mnt/with\\040space rw - ext3 /dev/root rw\n"
                    "37 35 98:0 / /plain rw - ext3 /dev/root rw\n")
    assert mount_points(str(info)) == [Path("/mnt/with space"), Path("/plain")]
    assert mount_points(str(tmp_path / "missing")) == []


def test_crossed_mount_allows_a_mount_that_is_a_root_of_its_own(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    root = tmp_path / "root"
    (root / "disk" / "vms").mkdir(parents=True)
    monkeypatch.setattr("vsms.operations.paths.mount_points", lambda: [root / "disk"])
    path = root / "disk" / "vms" / "a.vhd"
    assert StorageRoots([root]).crossed_mount(path) == root / "disk"
    assert StorageRoots([root, root / "disk"]).crossed_mount(path) is None
    assert StorageRoots([root]).crossed_mount(root / "other.vhd") is None
    with pytest.raises(AccessDenied, match="through the mount point"):
        StorageRoots([root]).confine(str(path), "Path")


def test_hard_links_in_an_export_are_reported(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x")
    os.link(tmp_path / "a", tmp_path / "b")
    (tmp_path / "c").write_bytes(b"y")
    problems = scan_tree(tmp_path).problems
    assert sorted(p.split(" ")[0] for p in problems) == ["'a'", "'b'"]
    assert all("has 2 hard links" in p for p in problems)
