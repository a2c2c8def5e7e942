"""ExpandVirtualHardDisk, CompactVirtualHardDisk, ConvertVirtualHardDisk,
CreateVirtualFloppyDisk, Mount and Unmount on real images (qemu-img, qemu-io, mkfs.fat)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import pywbem

from tests.image_service.conftest import (
    MIB,
    disk_type,
    files,
    holds,
    info,
    make,
    qemu_io,
    refused,
    run,
    same,
)
from vsms.cim.enums import JobState, ReturnCode, StorageJobType
from vsms.client import LocalClient
from vsms.disks.imageops import FLOPPY_SIZE

pytestmark = pytest.mark.qemu
U64 = pywbem.Uint64
OK = JobState.COMPLETED


def test_expand_keeps_the_data_and_the_kind(client: LocalClient, work: Path) -> None:
    for name, fixed in (("dyn.vhdx", False), ("fixed.vhd", True), ("plain.qcow2", False)):
        disk = make(work / name, 8 * MIB, fixed=fixed)
        qemu_io(disk, "write -P 0xab 0 1M", f"write -P 0xcd {7 * MIB} 1M")
        job = run(client, "ExpandVirtualHardDisk", Path=str(disk), MaxInternalSize=U64(24 * MIB))
        assert job["JobState"] == OK, job["ErrorDescription"]
        assert job["Type"] == StorageJobType.EXPANSION and job["PercentComplete"] == 100
        assert info(disk)["virtual-size"] == 24 * MIB, name
        assert holds(disk, 0xAB, 0, MIB) and holds(disk, 0xCD, 7 * MIB, MIB)
        assert holds(disk, 0, 8 * MIB, 16 * MIB)  # the new space reads as zeros
        assert disk_type(client, disk) == (2 if fixed else 3)  # the same kind as before
    assert files(work) == {"dyn.vhdx", "fixed.vhd", "plain.qcow2"}  # no temporary file left

    disk, child = work / "dyn.vhdx", make(work / "child.qcow2", 0, backing=work / "dyn.vhdx")
    bad, expand = ReturnCode.INVALID_PARAMETER, "ExpandVirtualHardDisk"
    assert refused(client, expand, Path=str(disk), MaxInternalSize=U64(24 * MIB))[0] == bad
    assert refused(client, expand, Path=str(disk), MaxInternalSize=U64(8 * MIB))[0] == bad
    assert refused(client, expand, Path=str(disk), MaxInternalSize=U64(30 * MIB + 1))[0] == bad
    assert refused(client, expand, Path=str(work / "none.vhdx"),
                   MaxInternalSize=U64(30 * MIB))[0] == ReturnCode.FILE_NOT_FOUND
    assert refused(client, expand, Path="/etc/passwd",
                   MaxInternalSize=U64(30 * MIB))[0] == ReturnCode.ACCESS_DENIED
    assert refused(client, expand, Path=str(child),
                   MaxInternalSize=U64(30 * MIB))[0] == ReturnCode.NOT_SUPPORTED
    assert info(disk)["virtual-size"] == 24 * MIB


def test_compact_drops_zeroed_blocks_and_keeps_the_contents(client: LocalClient,
                                                           work: Path) -> None:
    disk = make(work / "data.vhdx", 64 * MIB)
    qemu_io(disk, "write -P 0x5a 0 40M", "write -P 0 4M 36M")  # 36 MB written, then zeroed
    reference = work / "reference.vhdx"
    shutil.copyfile(disk, reference)
    before = os.stat(disk).st_size
    job = run(client, "CompactVirtualHardDisk", Path=str(disk))
    assert job["JobState"] == OK, job["ErrorDescription"]
    assert job["Type"] == StorageJobType.COMPACTION and job["PercentComplete"] == 100
    assert os.stat(disk).st_size < before - 30 * MIB
    assert same(disk, reference) and holds(disk, 0x5A, 0, 4 * MIB)
    assert files(work) == {"data.vhdx", "reference.vhdx"}

    fixed = make(work / "fixed.vhd", MIB, fixed=True)
    assert refused(client, "CompactVirtualHardDisk",
                   Path=str(fixed))[0] == ReturnCode.INVALID_PARAMETER
    assert refused(client, "CompactVirtualHardDisk",
                   Path=str(work / "no.vhdx"))[0] == ReturnCode.FILE_NOT_FOUND


def test_convert_between_kinds_and_formats(client: LocalClient, work: Path) -> None:
    src = make(work / "src.vhd", 16 * MIB)
    qemu_io(src, "write -P 0x11 0 2M", f"write -P 0x22 {12 * MIB} 1M")
    fixed = work / "fixed.vhdx"
    job = run(client, "ConvertVirtualHardDisk", SourcePath=str(src),
              DestinationPath=str(fixed), Type=pywbem.Uint16(2))
    assert job["JobState"] == OK, job["ErrorDescription"]
    assert job["Type"] == StorageJobType.CONVERSION
    assert same(src, fixed) and info(fixed)["format"] == "vhdx"
    assert disk_type(client, fixed) == 2 and os.stat(fixed).st_size > 16 * MIB
    dyn = work / "dyn.vhd"
    job = run(client, "ConvertVirtualHardDisk", SourcePath=str(fixed),
              DestinationPath=str(dyn), Type=pywbem.Uint16(3))
    assert job["JobState"] == OK, job["ErrorDescription"]
    assert same(fixed, dyn) and os.stat(dyn).st_size < 8 * MIB
    assert disk_type(client, dyn) == 3
    assert info(dyn)["virtual-size"] == 16 * MIB
    # a qcow2 differencing disk is flattened into a standalone disk
    child = make(work / "child.qcow2", 0, backing=src)
    qemu_io(child, "write -P 0x33 0 1M")
    flat = work / "flat.vhdx"
    job = run(client, "ConvertVirtualHardDisk", SourcePath=str(child),
              DestinationPath=str(flat), Type=pywbem.Uint16(3))
    assert job["JobState"] == OK, job["ErrorDescription"]
    assert same(child, flat) and "backing-filename" not in info(flat)
    assert holds(src, 0x11, 0, MIB)  # the source is never modified

    conv, bad = "ConvertVirtualHardDisk", ReturnCode.INVALID_PARAMETER
    t2, t3 = pywbem.Uint16(2), pywbem.Uint16(3)
    assert refused(client, conv, SourcePath=str(src), DestinationPath=str(dyn), Type=t3)[0] == bad
    assert refused(client, conv, SourcePath=str(src), DestinationPath=str(work / "x.qcow2"),
                   Type=t2)[0] == bad
    assert refused(client, conv, SourcePath=str(src), DestinationPath=str(work / "x.vhd"),
                   Type=pywbem.Uint16(7))[0] == bad
    assert refused(client, conv, SourcePath=str(src), DestinationPath=str(work / "x.vhd"),
                   Type=pywbem.Uint16(5))[0] == ReturnCode.NOT_SUPPORTED
    assert refused(client, conv, SourcePath=str(work / "none.vhd"),
                   DestinationPath=str(work / "x.vhd"), Type=t3)[0] == ReturnCode.FILE_NOT_FOUND
    assert refused(client, conv, SourcePath=str(src), DestinationPath="/var/tmp/x.vhd",
                   Type=t3)[0] == ReturnCode.ACCESS_DENIED
    assert files(work) == {"src.vhd", "fixed.vhdx", "dyn.vhd", "child.qcow2", "flat.vhdx"}


def test_floppy_mount_and_unmount(client: LocalClient, work: Path) -> None:
    vfd = work / "boot.vfd"
    job = run(client, "CreateVirtualFloppyDisk", Path=str(vfd))
    assert job["JobState"] == OK, job["ErrorDescription"]
    assert job["Type"] == StorageJobType.VFD_CREATION
    data = vfd.read_bytes()
    assert len(data) == FLOPPY_SIZE
    if shutil.which("mkfs.fat") or os.path.exists("/usr/sbin/mkfs.fat"):
        assert data[54:62] == b"FAT12   " and data[510:512] == b"\x55\xaa"
        assert "FAT12 formatted" in job["Description"]
    else:
        assert data == bytes(FLOPPY_SIZE) and "all zeros" in job["Description"]
    bad = ReturnCode.INVALID_PARAMETER
    assert refused(client, "CreateVirtualFloppyDisk", Path=str(vfd))[0] == bad  # exists
    assert refused(client, "CreateVirtualFloppyDisk", Path=str(work / "a.img"))[0] == bad
    assert refused(client, "CreateVirtualFloppyDisk",
                   Path="/var/tmp/a.vfd")[0] == ReturnCode.ACCESS_DENIED
    assert files(work) == {"boot.vfd"}

    disk = make(work / "m.vhdx", MIB)
    for method in ("Mount", "Unmount"):
        rv, why = refused(client, method, Path=str(disk))
        assert rv == ReturnCode.NOT_SUPPORTED
        assert "nbd" in why or "root" in why or "qemu-nbd" in why
        assert refused(client, method, Path="/etc/passwd")[0] == ReturnCode.ACCESS_DENIED
