"""Types and parents that only the headers tell: Hyper-V style VHD/VHDX differencing disks."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from tests.disks.craft import MIB, differencing_vhd, differencing_vhdx, vhd_checksum
from vsms.cim.enums import VirtualHardDiskType as T
from vsms.disks import qemuimg, vhd
from vsms.errors import InvalidParameter, NotSupported
from vsms.model.vm import ImageFormat as F


def test_vhd_differencing_type_and_parent_from_relative_locator(tmp_path: Path) -> None:
    parent = tmp_path / "base.vhd"
    qemuimg.create(str(parent), 16 * MIB, F.VHD, fixed=False)
    child = tmp_path / "snap.avhd"
    differencing_vhd(child, 16 * MIB, ".\\base.vhd", "C:\\VMs\\old\\base.vhd", "base.vhd")
    assert qemuimg.probe_format(str(child)) is F.VHD
    info = qemuimg.info(str(child), F.VHD)
    assert (info.type, info.virtual_size, info.parent_path) == (
        T.DIFFERENCING, 16 * MIB, str(parent))
    assert info.file_size == os.path.getsize(child)
    assert qemuimg.check(str(child), F.VHD) is None


def test_vhd_parent_falls_back_to_the_file_name_then_to_the_recorded_path(
        tmp_path: Path) -> None:
    child = tmp_path / "snap.avhd"
    differencing_vhd(child, 4 * MIB, "..\\elsewhere\\base.vhd", "D:\\Hyper-V\\base.vhd",
                     "base.vhd")
    assert qemuimg.info(str(child), F.VHD).parent_path == "D:\\Hyper-V\\base.vhd"
    (tmp_path / "base.vhd").write_bytes(b"")  # an export keeps the parent next to the child
    assert qemuimg.info(str(child), F.VHD).parent_path == str(tmp_path / "base.vhd")


def test_qemu_cannot_use_vhd_differencing_disks_so_we_refuse(tmp_path: Path) -> None:
    child = tmp_path / "snap.avhd"
    differencing_vhd(child, 4 * MIB, ".\\base.vhd", "C:\\base.vhd", "base.vhd")
    with pytest.raises(NotSupported, match="merge it"):
        qemuimg.create_differencing(str(tmp_path / "c.qcow2"), str(child), F.VHD)
    other = tmp_path / "other.vhd"
    qemuimg.create(str(other), 4 * MIB, F.VHD, fixed=False)
    with pytest.raises(NotSupported, match="differencing"):
        qemuimg.compare(str(child), F.VHD, str(other), F.VHD)


def test_vhdx_differencing_type_and_parent(tmp_path: Path) -> None:
    parent = tmp_path / "base.vhdx"
    qemuimg.create(str(parent), 8 * MIB, F.VHDX, fixed=False)
    child = tmp_path / "snap.avhdx"
    differencing_vhdx(child, 8 * MIB, {
        "parent_linkage": "{83f6f2b8-58a7-4c5f-9a4e-6d1b2c3d4e5f}",
        "relative_path": ".\\base.vhdx",
        "absolute_win32_path": "C:\\VMs\\base.vhdx",
    })
    assert qemuimg.probe_format(str(child)) is F.VHDX
    info = qemuimg.info(str(child), F.VHDX)
    assert (info.type, info.virtual_size, info.parent_path) == (
        T.DIFFERENCING, 8 * MIB, str(parent))
    assert qemuimg.check(str(child), F.VHDX) is None
    parent.unlink()
    assert qemuimg.info(str(child), F.VHDX).parent_path == "C:\\VMs\\base.vhdx"


def test_vhd_copy_of_footer_at_offset_zero_is_used_when_the_end_is_damaged(
        tmp_path: Path) -> None:
    path = tmp_path / "dyn.vhd"
    qemuimg.create(str(path), 4 * MIB, F.VHD, fixed=False)
    with open(path, "r+b") as f:
        f.seek(-512, os.SEEK_END)
        f.write(b"\0" * 512)
    headers = vhd.read_vhd(str(path))
    assert headers.type is T.DYNAMIC and "missing or damaged" in headers.warning
    assert "missing or damaged" in (qemuimg.check(str(path), F.VHD) or "")


def test_unknown_vhd_disk_type_is_damage(tmp_path: Path) -> None:
    path = tmp_path / "fixed.vhd"
    qemuimg.create(str(path), 4 * MIB, F.VHD, fixed=True)
    with open(path, "r+b") as f:
        f.seek(-512, os.SEEK_END)
        footer = bytearray(f.read(512))
        struct.pack_into(">I", footer, 60, 7)
        struct.pack_into(">I", footer, 64, vhd_checksum(footer, 64))
        f.seek(-512, os.SEEK_END)
        f.write(footer)
    with pytest.raises(InvalidParameter, match="unknown disk type 7"):
        qemuimg.info(str(path), F.VHD)
