"""An import with CreateCopy checks each disk's checksum while it copies it: a damaged disk
fails the job with the checksum sentence, its partial copy is gone, no VM is defined and the
export is left as it was; an intact one is copied and its content equals the manifest's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import pywbem

from tests import hyperv
from tests.integration.conftest import cleanup, export_dir
from vsms.app import Service
from vsms.cim import names
from vsms.cim.embedded import serialize_instance
from vsms.cim.enums import JobState, ReturnCode
from vsms.client import LocalClient
from vsms.disks.copy import sha256_file
from vsms.settings import Settings

pytestmark = pytest.mark.qemu


@pytest.fixture
def service(storage_root: Path, qemu_uri: str) -> Iterator[Service]:
    svc = Service(Settings(state_dir=storage_root / "state", storage_roots=(storage_root,),
                           libvirt_uri=qemu_uri))
    try:
        yield svc
    finally:
        cleanup(svc, storage_root)
        svc.close()


@pytest.fixture
def exported(service: Service, storage_root: Path) -> tuple[LocalClient, Path]:
    """A VM with a 256 MiB dynamic VHD holding 8 MiB of data, exported with storage."""
    client = LocalClient(service.registry)
    vms = export_dir(storage_root, "vms")
    disk = str(vms / "src-disk.vhd")
    hyperv.make_vhd(disk, "256M", data_mb=8)
    name = f"src-{storage_root.name}"
    vm = hyperv.define_vm(client, name)
    hyperv.add_vhd(client, vm, disk)
    rv, _out, job = client.run(names.VSMS, "ExportVirtualSystem", ComputerSystem=vm,
                               CopyVmState=True, ExportDirectory=str(export_dir(storage_root,
                                                                                "exp")))
    assert rv == ReturnCode.JOB_STARTED and job is not None
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
    return client, storage_root / "exp" / name


def import_copy(client: LocalClient, exp: Path, target: Path, name: str) -> pywbem.CIMInstance:
    rv, out = client.vsms("GetVirtualSystemImportSettingData", ImportDirectory=str(exp))
    assert rv == ReturnCode.COMPLETED
    isd: pywbem.CIMInstance = out["ImportSettingData"]
    isd["CreateCopy"] = True
    isd["GenerateNewId"] = True
    isd["Name"] = name
    isd["TargetResourcePaths"] = [str(target)]
    rv, out, job = client.run(names.VSMS, "ImportVirtualSystemEx", ImportDirectory=str(exp),
                              ImportSettingData=serialize_instance(isd))
    assert rv == ReturnCode.JOB_STARTED and job is not None
    return job


def test_damaged_disk_fails_during_the_copy_and_leaves_nothing(
        service: Service, exported: tuple[LocalClient, Path], storage_root: Path) -> None:
    client, exp = exported
    disk = exp / "Virtual Hard Disks" / "src-disk.vhd"
    with open(disk, "r+b") as fh:  # inside the data written by qemu-io, headers intact
        fh.seek(4 * 1024 * 1024)
        fh.write(b"damaged")
    listing = sorted(str(p) for p in exp.rglob("*"))
    before = {vs.guid for vs in service.host.list_systems()}
    target = export_dir(storage_root, "copy") / "disk.vhd"
    job = import_copy(client, exp, target, f"copy-{storage_root.name}")
    assert job["JobState"] == JobState.EXCEPTION
    assert job["ErrorCode"] == ReturnCode.INVALID_PARAMETER
    assert "'Virtual Hard Disks/src-disk.vhd' does not match its checksum" in (
        job["ErrorDescription"])
    assert not target.exists()
    assert {vs.guid for vs in service.host.list_systems()} == before
    assert sorted(str(p) for p in exp.rglob("*")) == listing


def test_intact_disk_is_copied_once_and_matches_the_manifest(
        service: Service, exported: tuple[LocalClient, Path], storage_root: Path) -> None:
    client, exp = exported
    target = export_dir(storage_root, "copy") / "disk.vhd"
    job = import_copy(client, exp, target, f"copy-{storage_root.name}")
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
    assert job["PercentComplete"] == 100
    listed: dict[str, str] = {}
    for line in (exp / "manifest.sha256").read_text().splitlines():
        digest, rel = line.split("  ", 1)
        listed[rel] = digest
    assert sha256_file(str(target)) == listed["Virtual Hard Disks/src-disk.vhd"]
    vm = client.affected_vm(job)
    disks = [r for r in hyperv.rasds(client, vm.path) if r["ResourceType"] == 21]
    assert [d["Connection"][0] for d in disks] == [str(target)]
