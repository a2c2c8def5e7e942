"""Builders for the exportdir tests: a valid export of one VM with two small real disk images."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pywbem import CIMInstance, Uint16, Uint64

from vsms.cim import names
from vsms.cim.enums import VIRTUAL_SYSTEM_TYPE_HYPERV, ResourceType, SettingType
from vsms.exportdir import writer
from vsms.exportdir.layout import MANIFEST, VHD_DIR, ExportConfig, ExportedDisk
from vsms.model.vm import ImageFormat

GUID = "6A1D2E3F-0B4C-4D5E-8F90-A1B2C3D4E5F6"
DISK1 = "1F2E3D4C-5B6A-4978-8695-A4B3C2D1E0F9"
DISK2 = "2A3B4C5D-6E7F-4819-9A0B-C1D2E3F4A5B6"


def qemu_img_create(path: Path, fmt: str, size: str) -> None:
    subprocess.run(["qemu-img", "create", "-q", "-f", fmt, str(path), size],
                   check=True, capture_output=True, timeout=30)


def settings_instances(guid: str = GUID) -> list[CIMInstance]:
    """What a .exp holds for a VM with one IDE controller, one drive and two disk images."""
    def iid(suffix: str = "") -> str:
        return f"Microsoft:{guid}" + (f"\\{suffix}" if suffix else "")

    vssd = CIMInstance(names.VSSD, properties={
        "InstanceID": iid(), "ElementName": "vm1 <&> ünïcode", "SystemName": guid,
        "SettingType": Uint16(SettingType.CURRENT),
        "VirtualSystemType": str(VIRTUAL_SYSTEM_TYPE_HYPERV),
        "BootOrder": [Uint16(0), Uint16(1), Uint16(2), Uint16(3)],
    })
    vsgsd = CIMInstance(names.VSGSD, properties={
        "InstanceID": iid("Global"), "ElementName": "vm1", "ExternalDataRoot": "/srv/vms"})
    mem = CIMInstance(names.MEMORY_SD, properties={
        "InstanceID": iid("4764334D-E001-4176-82EE-5594EC9B530E"),
        "ResourceType": Uint16(ResourceType.MEMORY), "VirtualQuantity": Uint64(512)})
    images = [
        CIMInstance(names.RASD, properties={
            "InstanceID": iid(dev), "ResourceType": Uint16(ResourceType.STORAGE_EXTENT),
            "Connection": [f"/srv/vms/{name}"]})
        for dev, name in ((DISK1, "disk1.vhd"), (DISK2, "data.vhdx"))
    ]
    return [vssd, vsgsd, mem, *images]


def config(*, storage: bool = True) -> ExportConfig:
    return ExportConfig(
        vm_guid=GUID, vm_name="vm1 <&> ünïcode",
        exported_at=datetime(2026, 11, 27, 10, 30, 0, 123456, tzinfo=UTC),
        with_storage=storage, with_runtime=False,
        disks=[
            ExportedDisk(DISK1, "/srv/vms/disk1.vhd",
                         f"{VHD_DIR}/disk1.vhd" if storage else "", ImageFormat.VHD, 1 << 20),
            ExportedDisk(DISK2, "/srv/vms/data.vhdx",
                         f"{VHD_DIR}/data.vhdx" if storage else "", ImageFormat.VHDX, 1 << 20),
        ],
        source_host="testhost", vsms_version="0.1.0")


@dataclass
class Export:
    path: Path
    config: ExportConfig

    def rehash(self) -> None:
        """Write the manifest again, so that only the change under test is wrong."""
        (self.path / MANIFEST).unlink(missing_ok=True)
        writer.write_manifest(self.path)


def build_export(directory: Path, *, storage: bool = True) -> Export:
    directory.mkdir()
    writer.make_skeleton(directory)
    cfg = config(storage=storage)
    if storage:
        qemu_img_create(directory / VHD_DIR / "disk1.vhd", "vpc", "1M")
        qemu_img_create(directory / VHD_DIR / "data.vhdx", "vhdx", "1M")
    writer.write_config(directory, cfg)
    writer.write_exp(directory, GUID, settings_instances())
    writer.write_manifest(directory)
    return Export(directory, cfg)


@pytest.fixture
def export(tmp_path: Path) -> Export:
    return build_export(tmp_path / "vm1")
