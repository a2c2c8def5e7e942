"""A VM whose two disks live on two devices (ext4 under /var/tmp, tmpfs under /dev/shm):
export and import with copy move both (in parallel lanes), and a damaged one leaves no copy on
either device."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pywbem

from tests import hyperv
from tests.integration.conftest import export_dir, served
from tests.integration.test_export_import import same_disk
from vsms.cim import names
from vsms.cim.embedded import serialize_instance
from vsms.cim.enums import JobState, ReturnCode
from vsms.client import LocalClient
from vsms.disks.lanes import device_of

pytestmark = pytest.mark.qemu


@pytest.fixture
def shm_root() -> Iterator[Path]:
    root = Path("/dev/shm") / f"vsms-tests-{uuid.uuid4().hex[:8]}"
    root.mkdir(mode=0o755)
    os.chmod(root, 0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def client(storage_root: Path, shm_root: Path, qemu_uri: str) -> Iterator[LocalClient]:
    if device_of(str(storage_root)) == device_of(str(shm_root)):
        pytest.skip("/var/tmp and /dev/shm are on one device here")
    with served((storage_root, shm_root), qemu_uri) as svc:
        yield LocalClient(svc.registry)


def finished(client: LocalClient, method: str, **params: Any) -> pywbem.CIMInstance:
    rv, _, job = client.run(names.VSMS, method, **params)
    assert rv == ReturnCode.JOB_STARTED and job is not None
    return job


def test_disks_on_two_devices_move_together(client: LocalClient, storage_root: Path,
                                            shm_root: Path) -> None:
    disks = [str(storage_root / "a.vhd"), str(shm_root / "b.vhd")]
    hyperv.make_vhd(disks[0], "64M", data_mb=6, pattern=0x11)
    hyperv.make_vhd(disks[1], "64M", data_mb=5, pattern=0x22)
    name = f"two-{storage_root.name}"
    vm = hyperv.define_vm(client, name)
    hyperv.add_vhd(client, vm, disks[0], controller=0, slot=0)
    hyperv.add_vhd(client, vm, disks[1], controller=0, slot=1)
    job = finished(client, "ExportVirtualSystem", ComputerSystem=vm, CopyVmState=True,
                   ExportDirectory=str(export_dir(storage_root, "exp")))
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
    exp = storage_root / "exp" / name
    for src, copy in zip(disks, ("a.vhd", "b.vhd"), strict=True):
        assert same_disk(src, str(exp / "Virtual Hard Disks" / copy))
    assert subprocess.run(["sha256sum", "-c", "--quiet", "manifest.sha256"], cwd=exp,
                          timeout=60).returncode == 0

    def import_to(targets: list[str], new_name: str) -> pywbem.CIMInstance:
        rv, out = client.vsms("GetVirtualSystemImportSettingData", ImportDirectory=str(exp))
        assert rv == ReturnCode.COMPLETED
        isd: pywbem.CIMInstance = out["ImportSettingData"]
        isd["CreateCopy"], isd["GenerateNewId"], isd["Name"] = True, True, new_name
        isd["TargetResourcePaths"] = targets
        return finished(client, "ImportVirtualSystemEx", ImportDirectory=str(exp),
                        ImportSettingData=serialize_instance(isd))

    for folder in ("copies", "again"):
        for root in (shm_root, storage_root):
            export_dir(root, folder)
    targets = [str(shm_root / "copies" / "a.vhd"), str(storage_root / "copies" / "b.vhd")]
    job = import_to(targets, f"{name}-copy")
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
    for src, copy in zip(disks, targets, strict=True):
        assert same_disk(src, copy)
    # one damaged disk: the job fails and no copy is left on either device
    damaged = exp / "Virtual Hard Disks" / "b.vhd"
    with open(damaged, "r+b") as fh:
        fh.seek(2 * 1024 * 1024)
        fh.write(b"\x00damage\x00")
    again = [str(shm_root / "again" / "a.vhd"), str(storage_root / "again" / "b.vhd")]
    job = import_to(again, f"{name}-again")
    assert job["JobState"] == JobState.EXCEPTION
    assert "b.vhd" in job["ErrorDescription"] and "checksum" in job["ErrorDescription"]
    assert list((shm_root / "again").iterdir()) == list((storage_root / "again").iterdir()) == []
