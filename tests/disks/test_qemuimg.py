"""vsms.disks.qemuimg with the real qemu-img: create, probe, info, differencing, compare, check."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
from pathlib import Path

import pytest

from tests.disks.craft import MIB, qemu_img
from vsms.cim.enums import VirtualHardDiskType as T
from vsms.disks import qemuimg
from vsms.errors import FileNotFound, InvalidParameter, NotSupported, SystemNotAvailable
from vsms.model.vm import ImageFormat as F

ODD_SIZE = 100 * MIB + 3 * 512  # not a CHS-friendly size: force_size must keep it exact

CASES = [
    ("dyn.vhd", F.VHD, False, T.DYNAMIC),
    ("fixed.vhd", F.VHD, True, T.FIXED),
    ("dyn.vhdx", F.VHDX, False, T.DYNAMIC),
    ("fixed.vhdx", F.VHDX, True, T.FIXED),
    ("dyn.qcow2", F.QCOW2, False, T.DYNAMIC),
    ("sparse.raw", F.RAW, False, T.FIXED),
    ("fixed.raw", F.RAW, True, T.FIXED),
]


@pytest.mark.parametrize(("name", "fmt", "fixed", "kind"), CASES, ids=[c[0] for c in CASES])
def test_create_probe_info_check(tmp_path: Path, name: str, fmt: F, fixed: bool,
                                 kind: T) -> None:
    path = str(tmp_path / name)
    qemuimg.create(path, ODD_SIZE, fmt, fixed=fixed)
    assert qemuimg.probe_format(path) is fmt
    info = qemuimg.info(path, fmt)
    st = os.stat(path)
    assert (info.path, info.format, info.type) == (path, fmt, kind)
    assert info.virtual_size == ODD_SIZE
    assert info.file_size == st.st_size
    assert info.allocated == st.st_blocks * 512
    assert info.parent_path == ""
    assert qemuimg.check(path, fmt) is None


def test_fixed_vhd_is_vhd_although_qemu_img_would_guess_raw(tmp_path: Path) -> None:
    path = str(tmp_path / "fixed.vhd")
    qemuimg.create(path, 64 * MIB, F.VHD, fixed=True)
    assert '"format": "raw"' in qemu_img("info", "--output=json", path)  # the trap we avoid
    assert qemuimg.probe_format(path) is F.VHD
    info = qemuimg.info(path, F.VHD)
    assert (info.type, info.virtual_size, info.file_size) == (T.FIXED, 64 * MIB, 64 * MIB + 512)


def test_zero_size_dynamic_disk_gets_the_3mb_default(tmp_path: Path) -> None:
    path = str(tmp_path / "default.vhd")
    qemuimg.create(path, 0, F.VHD, fixed=False)
    assert qemuimg.info(path, F.VHD).virtual_size == 3 * MIB


@pytest.mark.parametrize(("size", "fixed"), [(1000, False), (-512, False), (0, True), (513, True)])
def test_bad_size_is_refused_and_leaves_nothing(tmp_path: Path, size: int, fixed: bool) -> None:
    path = tmp_path / "bad.vhd"
    with pytest.raises(InvalidParameter) as err:
        qemuimg.create(str(path), size, F.VHD, fixed=fixed)
    assert str(size) in str(err.value) and "multiple of 512" in str(err.value)
    assert not path.exists()


def test_too_large_vhd_and_non_integer_size_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match="too large for VHD"):
        qemuimg.create(str(tmp_path / "huge.vhd"), 4096 * 1024 * MIB, F.VHD, fixed=False)
    with pytest.raises(InvalidParameter, match="whole number"):
        qemuimg.create(str(tmp_path / "x.vhd"), 1.5, F.VHD, fixed=False)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "taken.vhd"
    path.write_bytes(b"precious")
    with pytest.raises(InvalidParameter, match="already exists"):
        qemuimg.create(str(path), MIB, F.VHD, fixed=False)
    assert path.read_bytes() == b"precious"
    dangling = tmp_path / "link.vhd"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(InvalidParameter, match="already exists"):
        qemuimg.create(str(dangling), MIB, F.VHD, fixed=False)
    assert not (tmp_path / "nowhere").exists()


def test_missing_folder_and_relative_path_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match=r"folder .*missing.* does not exist"):
        qemuimg.create(str(tmp_path / "missing" / "a.vhd"), MIB, F.VHD, fixed=False)
    with pytest.raises(InvalidParameter, match="fully qualified"):
        qemuimg.create("relative.vhd", MIB, F.VHD, fixed=False)
    assert not Path("relative.vhd").exists()


def test_fixed_qcow2_and_unknown_format_are_refused(tmp_path: Path) -> None:
    with pytest.raises(NotSupported, match="fixed-size"):
        qemuimg.create(str(tmp_path / "a.qcow2"), MIB, F.QCOW2, fixed=True)
    with pytest.raises(InvalidParameter, match="unknown disk image format 'vmdk'"):
        qemuimg.create(str(tmp_path / "a.vmdk"), MIB, "vmdk", fixed=False)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_qemu_img_failure_removes_the_reserved_file(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qemuimg, "QEMU_IMG", "false")  # injected failure: exits 1, no output
    path = tmp_path / "a.vhd"
    with pytest.raises(SystemNotAvailable, match="failed to create"):
        qemuimg.create(str(path), MIB, F.VHD, fixed=False)
    assert not path.exists()


def test_missing_qemu_img_and_timeouts_are_translated(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    disk = str(tmp_path / "a.qcow2")
    qemuimg.create(disk, MIB, F.QCOW2, fixed=False)
    monkeypatch.setattr(qemuimg, "QEMU_IMG", str(tmp_path / "no-such-qemu-img"))
    with pytest.raises(SystemNotAvailable, match="qemu-utils"):
        qemuimg.info(disk, F.QCOW2)
    slow = tmp_path / "slow-qemu-img"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(0o755)
    monkeypatch.setattr(qemuimg, "QEMU_IMG", str(slow))
    monkeypatch.setattr(qemuimg, "INFO_TIMEOUT", 0.5)
    with pytest.raises(SystemNotAvailable, match="did not finish within"):
        qemuimg.info(disk, F.QCOW2)


def test_differencing_is_a_qcow2_overlay(tmp_path: Path) -> None:
    parent = str(tmp_path / "parent.vhd")
    child = str(tmp_path / "child.qcow2")
    qemuimg.create(parent, 32 * MIB, F.VHD, fixed=False)
    qemuimg.create_differencing(child, parent, F.VHD)
    info = qemuimg.info(child, F.QCOW2)
    assert (info.type, info.parent_path, info.virtual_size) == (T.DIFFERENCING, parent, 32 * MIB)
    assert qemuimg.compare(child, F.QCOW2, parent, F.VHD) is True
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0xab 1M 64k", child],
                   check=True, capture_output=True, timeout=60)
    assert qemuimg.compare(child, F.QCOW2, parent, F.VHD) is False
    assert qemuimg.check(child, F.QCOW2) is None


@pytest.mark.parametrize("name", ["child.vhd", "child.AVHD", "child.vhdx", "child.avhdx"])
def test_vhd_differencing_is_not_supported(tmp_path: Path, name: str) -> None:
    parent = str(tmp_path / "parent.vhd")
    qemuimg.create(parent, MIB, F.VHD, fixed=False)
    with pytest.raises(NotSupported) as err:
        qemuimg.create_differencing(str(tmp_path / name), parent, F.VHD)
    assert "QEMU" in str(err.value) and ".qcow2" in str(err.value)
    assert not (tmp_path / name).exists()


def test_differencing_parent_must_exist_and_match(tmp_path: Path) -> None:
    with pytest.raises(FileNotFound, match="parent disk"):
        qemuimg.create_differencing(str(tmp_path / "c.qcow2"), str(tmp_path / "p.vhd"), F.VHD)
    parent = str(tmp_path / "p.vhdx")
    qemuimg.create(parent, MIB, F.VHDX, fixed=False)
    with pytest.raises(InvalidParameter, match="holds a VHDX image, not VHD"):
        qemuimg.create_differencing(str(tmp_path / "c.qcow2"), parent, F.VHD)
    assert not (tmp_path / "c.qcow2").exists()


def test_probe_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFound, match="does not exist"):
        qemuimg.probe_format(str(tmp_path / "nothing.vhd"))
    with pytest.raises(InvalidParameter, match="is a directory"):
        qemuimg.probe_format(str(tmp_path))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(InvalidParameter, match="is a FIFO"):
        qemuimg.probe_format(str(fifo))
    with pytest.raises(InvalidParameter, match="is a device"):
        qemuimg.probe_format("/dev/null")
    sock_path = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        with pytest.raises(InvalidParameter, match="is a socket"):
            qemuimg.probe_format(str(sock_path))


def test_probe_small_and_plain_files_are_raw(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    text = tmp_path / "text"
    text.write_bytes(b"a raw file that mentions conectix and vhdxfile " * 40)
    assert qemuimg.probe_format(str(empty)) is F.RAW
    assert qemuimg.probe_format(str(text)) is F.RAW


def test_info_refuses_a_format_the_file_does_not_have(tmp_path: Path) -> None:
    path = str(tmp_path / "a.vhdx")
    qemuimg.create(path, MIB, F.VHDX, fixed=False)
    with pytest.raises(InvalidParameter, match="holds a VHDX image, not qcow2"):
        qemuimg.info(path, F.QCOW2)
    with pytest.raises(InvalidParameter, match="not raw"):
        qemuimg.info(path, F.RAW)


def test_compare_across_formats_and_sizes(tmp_path: Path) -> None:
    raw = tmp_path / "a.raw"
    with open(raw, "wb") as f:
        f.seek(5 * MIB)
        f.write(os.urandom(MIB))
        f.truncate(16 * MIB)
    vhd = str(tmp_path / "a.vhd")
    qemu_img("convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic,force_size=on",
             str(raw), vhd)
    assert qemuimg.compare(str(raw), F.RAW, vhd, F.VHD) is True
    bigger = str(tmp_path / "b.raw")
    qemu_img("convert", "-f", "raw", "-O", "raw", str(raw), bigger)
    os.truncate(bigger, 32 * MIB)  # same data, zeros appended: still a different disk
    assert qemuimg.compare(str(raw), F.RAW, bigger, F.RAW) is False
    with pytest.raises(FileNotFound):
        qemuimg.compare(str(raw), F.RAW, str(tmp_path / "missing.vhd"), F.VHD)


def test_check_reports_wrong_format_missing_file_and_corruption(tmp_path: Path) -> None:
    assert "does not exist" in (qemuimg.check(str(tmp_path / "none.vhd"), F.VHD) or "")
    q = str(tmp_path / "a.qcow2")
    qemuimg.create(q, 8 * MIB, F.QCOW2, fixed=False)
    assert "holds a qcow2 image, not VHD" in (qemuimg.check(q, F.VHD) or "")
    with open(q, "r+b") as f:  # point the first refcount table entry at an unaligned offset
        header = f.read(104)
        (reftable,) = struct.unpack_from(">Q", header, 48)
        f.seek(reftable)
        f.write(struct.pack(">Q", 0x7777000))
    problem = qemuimg.check(q, F.QCOW2)
    assert problem is not None and "corruption" in problem and q in problem


def test_check_reports_a_damaged_vhd_footer_and_a_truncated_vhdx(tmp_path: Path) -> None:
    vhd = tmp_path / "a.vhd"
    qemuimg.create(str(vhd), 8 * MIB, F.VHD, fixed=True)
    with open(vhd, "r+b") as f:  # change the size in the footer without fixing its checksum
        f.seek(8 * MIB + 48)
        f.write(struct.pack(">Q", 4 * MIB))
    assert "footer checksum is wrong" in (qemuimg.check(str(vhd), F.VHD) or "")
    vhdx = tmp_path / "a.vhdx"
    qemuimg.create(str(vhdx), 8 * MIB, F.VHDX, fixed=False)
    os.truncate(vhdx, 200 * 1024)  # cut inside the first region table
    assert qemuimg.check(str(vhdx), F.VHDX) is not None
