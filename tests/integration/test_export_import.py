"""Define → export → import (in place and as copies) → run, on qemu:///system with real disks."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import pywbem

from tests import hyperv
from tests.integration.conftest import SourceVM, export_dir
from vsms.cim import names
from vsms.cim.embedded import serialize_instance
from vsms.cim.enums import EnabledState, JobState, ReturnCode
from vsms.client import LocalClient

pytestmark = pytest.mark.qemu


def export(client: LocalClient, vm: SourceVM, directory: Path, state: bool = True) -> Path:
    rv, out, job = client.run(names.VSMS, "ExportVirtualSystem", ComputerSystem=vm.path,
                              CopyVmState=state, ExportDirectory=str(directory))
    assert rv == ReturnCode.JOB_STARTED
    assert job is not None
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
    assert job["PercentComplete"] == 100
    return directory / vm.name


def import_(client: LocalClient, directory: Path, new_id: bool) -> pywbem.CIMInstance:
    rv, out, job = client.run(names.VSMS, "ImportVirtualSystem", ImportDirectory=str(directory),
                              GenerateNewID=new_id)
    assert rv == ReturnCode.JOB_STARTED
    assert job is not None
    return job


def same_disk(a: str, b: str, fmt_b: str = "vpc") -> bool:
    r = subprocess.run(["qemu-img", "compare", "-f", "vpc", "-F", fmt_b, a, b],
                       capture_output=True, text=True, timeout=120)
    return r.returncode == 0


def test_export_layout_and_manifest(client: LocalClient, source_vm: SourceVM,
                                    storage_root: Path) -> None:
    exp = export(client, source_vm, export_dir(storage_root, "exp"))
    assert sorted(p.name for p in exp.iterdir()) == sorted(
        ["config.xml", "Virtual Machines", "Virtual Hard Disks", "Snapshots", "manifest.sha256"])
    assert (exp / "Virtual Machines" / f"{source_vm.guid}.exp").is_file()
    copied = exp / "Virtual Hard Disks" / "src-disk.vhd"
    assert same_disk(source_vm.disk, str(copied))
    # the copy stays sparse: a 256 MiB disk with 8 MiB of data
    assert copied.stat().st_blocks * 512 < 32 * 2**20
    check = subprocess.run(["sha256sum", "-c", "--quiet", "manifest.sha256"], cwd=exp,
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    # nothing temporary left beside it
    assert [p.name for p in exp.parent.iterdir()] == [source_vm.name]


def test_export_without_storage(client: LocalClient, source_vm: SourceVM,
                                storage_root: Path) -> None:
    esd = pywbem.CIMInstance(names.EXPORT_SD, properties={
        "CopyVmStorage": False, "CopyVmRuntimeInformation": False,
        "CreateVmExportSubdirectory": True, "CopySnapshotConfiguration": pywbem.Uint8(0)})
    target = export_dir(storage_root, "cfgonly")
    rv, out, job = client.run(names.VSMS, "ExportVirtualSystemEx", ComputerSystem=source_vm.path,
                              ExportDirectory=str(target),
                              ExportSettingData=serialize_instance(esd))
    assert rv == ReturnCode.JOB_STARTED and job is not None
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
    exp = target / source_vm.name
    assert list((exp / "Virtual Hard Disks").iterdir()) == []
    # while the original VM uses the disk, importing the configuration in place is refused
    job = import_(client, exp, new_id=True)
    assert job["JobState"] == JobState.EXCEPTION
    assert "already used by virtual machine" in job["ErrorDescription"]
    # once it is gone, the configuration imports against the original disk, where it is
    hyperv.finished_ok(client, *client.vsms("DestroyVirtualSystem", ComputerSystem=source_vm.path))
    job = import_(client, exp, new_id=False)
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
    vm = client.affected_vm(job)
    assert vm["Name"] == source_vm.guid
    disks = [r for r in hyperv.rasds(client, vm.path) if r["ResourceType"] == 21]
    assert [d["Connection"][0] for d in disks] == [source_vm.disk]


def test_import_in_place_new_and_same_id(client: LocalClient, source_vm: SourceVM,
                                         storage_root: Path) -> None:
    exp1 = export(client, source_vm, export_dir(storage_root, "exp1"))
    exp2 = export(client, source_vm, export_dir(storage_root, "exp2"))

    job = import_(client, exp1, new_id=True)
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
    vm = client.affected_vm(job)
    assert vm["Name"] != source_vm.guid
    assert vm["ElementName"] == source_vm.name
    assert vm["EnabledState"] == EnabledState.DISABLED
    disks = [r for r in hyperv.rasds(client, vm.path) if r["ResourceType"] == 21]
    assert [d["Connection"][0] for d in disks] == [str(exp1 / "Virtual Hard Disks/src-disk.vhd")]
    assert same_disk(source_vm.disk, disks[0]["Connection"][0])

    # the directory is consumed: a second import is refused at once, with the VM named
    rv, out = client.vsms("ImportVirtualSystem", ImportDirectory=str(exp1), GenerateNewID=True)
    assert rv == ReturnCode.SYSTEM_IN_USE

    # same ID while the original exists: the job fails and names the existing VM
    job = import_(client, exp2, new_id=False)
    assert job["JobState"] == JobState.EXCEPTION
    assert job["ErrorCode"] == ReturnCode.SYSTEM_IN_USE
    assert source_vm.guid in job["ErrorDescription"] and source_vm.name in job["ErrorDescription"]

    # after destroying the original, the same ID imports and keeps the GUID
    hyperv.finished_ok(client, *client.vsms("DestroyVirtualSystem", ComputerSystem=source_vm.path))
    job = import_(client, exp2, new_id=False)
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
    assert client.affected_vm(job)["Name"] == source_vm.guid


def test_import_ex_copies_twice_and_runs(client: LocalClient, source_vm: SourceVM,
                                         storage_root: Path) -> None:
    """Two copies from one export: one kept as VHD, one converted to qcow2 on the way (QEMU
    can save the memory of a VM only when its disks are not VHD/VHDX)."""
    exp = export(client, source_vm, export_dir(storage_root, "exp"))
    manifest_before = (exp / "manifest.sha256").read_text()
    imported = []
    for n, (disk, fmt) in enumerate([("disk.vhd", "vpc"), ("disk.qcow2", "qcow2")], 1):
        rv, out = client.vsms("GetVirtualSystemImportSettingData", ImportDirectory=str(exp))
        assert rv == ReturnCode.COMPLETED
        isd: pywbem.CIMInstance = out["ImportSettingData"]
        assert isd["Name"] == source_vm.name
        assert list(isd["CurrentResourcePaths"]) == [source_vm.disk]
        assert list(isd["SourceResourcePaths"]) == [str(exp / "Virtual Hard Disks/src-disk.vhd")]
        target = export_dir(storage_root, f"copy{n}")
        isd["CreateCopy"] = True
        isd["GenerateNewId"] = True
        isd["Name"] = f"copy{n}-{storage_root.name}"
        isd["TargetResourcePaths"] = [str(target / disk)]
        rv, out, job = client.run(names.VSMS, "ImportVirtualSystemEx", ImportDirectory=str(exp),
                                  ImportSettingData=serialize_instance(isd))
        assert rv == ReturnCode.JOB_STARTED and job is not None
        assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
        vm = client.affected_vm(job)
        assert vm["ElementName"] == f"copy{n}-{storage_root.name}"
        assert vm["Name"] != source_vm.guid
        assert same_disk(source_vm.disk, str(target / disk), fmt)
        imported.append((vm.path, fmt))
    # the export is untouched and still valid
    assert (exp / "manifest.sha256").read_text() == manifest_before
    assert subprocess.run(["sha256sum", "-c", "--quiet", "manifest.sha256"], cwd=exp,
                          timeout=60).returncode == 0
    for vm_path, fmt in imported:
        hyperv.request_state(client, vm_path, 2)
        assert hyperv.vm_state(client, vm_path) == EnabledState.ENABLED
        hyperv.request_state(client, vm_path, 32768)
        assert hyperv.vm_state(client, vm_path) == EnabledState.PAUSED
        if fmt == "qcow2":
            hyperv.request_state(client, vm_path, 32769)
            assert hyperv.vm_state(client, vm_path) == EnabledState.SUSPENDED
        else:
            rv, _ = client.invoke(vm_path, "RequestStateChange",
                                  RequestedState=pywbem.Uint16(32769))
            assert rv == ReturnCode.NOT_SUPPORTED
            assert hyperv.vm_state(client, vm_path) == EnabledState.PAUSED
        hyperv.request_state(client, vm_path, 2)
        assert hyperv.vm_state(client, vm_path) == EnabledState.ENABLED
        hyperv.request_state(client, vm_path, 3)
        assert hyperv.vm_state(client, vm_path) == EnabledState.DISABLED
