"""Fixtures of the life-cycle tests: a complete VM model and an image checker without files."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from vsms.errors import InvalidParameter
from vsms.mapping.resources import ResourceEnv
from vsms.model.vm import (
    Controller,
    ControllerKind,
    Drive,
    DriveKind,
    ImageFormat,
    Media,
    NetworkAdapter,
    VirtualSystem,
    default_controllers,
    new_guid,
)

FORMATS = {".vhd": ImageFormat.VHD, ".vhdx": ImageFormat.VHDX, ".qcow2": ImageFormat.QCOW2,
           ".iso": ImageFormat.RAW}


def fake_check(raw: str, kind: DriveKind) -> tuple[str, ImageFormat]:
    """Stands in for the file checks: '/missing…' does not exist, the extension is the format."""
    if raw.startswith("/missing"):
        raise InvalidParameter(f"image {raw} does not exist")
    ext = raw[raw.rfind("."):]
    fmt = FORMATS.get(ext, ImageFormat.RAW)
    if kind is DriveKind.DISK and fmt is ImageFormat.RAW:
        raise InvalidParameter(f"image {raw} is not a VHD, VHDX or qcow2 image")
    return raw, fmt


@pytest.fixture
def env() -> ResourceEnv:
    return ResourceEnv(check_image=fake_check)


def full_vm() -> VirtualSystem:
    """A VM with one of every kind of device and every field set."""
    vs = VirtualSystem(guid=new_guid(), name="Full VM", memory_mb=1024, processors=2,
                       controllers=default_controllers(), notes="some notes",
                       boot_order=[2, 1, 3, 0],
                       created=datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
                       external_data_root="/srv/vms", snapshot_data_root="/srv/snaps",
                       scope_of_residence="scope-1")
    ide0, ide1 = vs.controllers
    scsi = Controller(new_guid(), ControllerKind.SCSI, 0)
    vs.controllers.append(scsi)
    disk = Drive(new_guid(), DriveKind.DISK, ide0.dev_id, 0)
    dvd = Drive(new_guid(), DriveKind.DVD, ide1.dev_id, 0)
    empty_dvd = Drive(new_guid(), DriveKind.DVD, ide1.dev_id, 1)
    scsi_disk = Drive(new_guid(), DriveKind.DISK, scsi.dev_id, 5)
    vs.drives += [disk, dvd, empty_dvd, scsi_disk]
    vs.media += [Media(new_guid(), disk.dev_id, "/srv/disks/boot.vhd", ImageFormat.VHD),
                 Media(new_guid(), dvd.dev_id, "/srv/iso/setup.iso", ImageFormat.RAW),
                 Media(new_guid(), scsi_disk.dev_id, "/srv/disks/data.vhdx", ImageFormat.VHDX)]
    vs.nics += [NetworkAdapter(new_guid(), "00:15:5D:01:02:03", "lan"),
                NetworkAdapter(new_guid(), "00:15:5D:0A:0B:0C", "", synthetic=False)]
    return vs


@pytest.fixture
def vm() -> VirtualSystem:
    return full_vm()
