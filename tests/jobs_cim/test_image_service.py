"""Msvm_ImageManagementService: VHD/VHDX/qcow2 creation as Msvm_StorageJob jobs, disk info."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
import pywbem

from tests.jobs_cim.conftest import DEADLINE, STORAGE_JOB_PROPERTIES, out_param, wait_for
from vsms.app import Service
from vsms.cim import names
from vsms.cim.embedded import parse_instance
from vsms.cim.enums import JobState, ReturnCode, StateChangeReturn, StorageJobType
from vsms.client import LocalClient
from vsms.disks import qemuimg
from vsms.errors import InvalidParameter, SystemNotAvailable
from vsms.model.vm import (
    Drive,
    DriveKind,
    ImageFormat,
    Media,
    VirtualSystem,
    default_controllers,
    new_guid,
)
from vsms.operations import vhd
from vsms.operations.paths import StorageRoots

pytestmark = pytest.mark.qemu

NS = names.NAMESPACE
MIB = 1024 * 1024
IMPLEMENTED = {"createdynamicvirtualharddisk", "createfixedvirtualharddisk",
               "createdifferencingvirtualharddisk", "getvirtualharddiskinfo",
               # tests/image_service/
               "expandvirtualharddisk", "compactvirtualharddisk", "convertvirtualharddisk",
               "mergevirtualharddisk", "reconnectparentvirtualharddisk",
               "validatevirtualharddisk", "createvirtualfloppydisk", "mount", "unmount"}


def qemu_info(path: str, fmt: str) -> dict[str, Any]:
    out = subprocess.run(["qemu-img", "info", "-f", fmt, "--output=json", path], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    info: dict[str, Any] = json.loads(out)
    return info


def create(client: LocalClient, method: str, **params: Any) -> pywbem.CIMInstance:
    """Run a create method to its end; return the finished Msvm_StorageJob."""
    rv, out, job = client.run(names.IMAGE_SERVICE, method, timeout=DEADLINE, **params)
    assert rv == ReturnCode.JOB_STARTED, rv
    assert out["Job"].classname == names.STORAGE_JOB
    assert job is not None
    return job


def disk_info(client: LocalClient, path: str) -> pywbem.CIMInstance:
    rv, out = client.invoke(names.IMAGE_SERVICE, "GetVirtualHardDiskInfo", Path=path)
    assert rv == ReturnCode.COMPLETED, rv
    assert out_param(out, "Job") is None
    info = parse_instance(out_param(out, "Info"))
    assert info.classname == names.VHD_INFO
    return info


def only_files(root: Path) -> set[str]:
    return {p.name for p in root.iterdir() if p.name != "state"}


def test_service_singleton(service: Service, client: LocalClient) -> None:
    found = service.registry.enumerate_instances(NS, names.IMAGE_SERVICE)
    assert len(found) == 1
    svc = found[0]
    keys = svc.path.keybindings
    assert keys["CreationClassName"] == names.IMAGE_SERVICE and keys["Name"] == "vhdsvc"
    assert keys["SystemCreationClassName"] == names.COMPUTER_SYSTEM
    assert keys["SystemName"] == service.context.hostname
    assert svc["EnabledState"] == 2 and svc["HealthState"] == 5 and svc["Started"] is True
    assert svc["OperationalStatus"] == [2] and svc["ElementName"] and svc["Description"]
    assert service.registry.get_instance(NS, svc.path)["Name"] == "vhdsvc"


def test_create_each_kind_and_read_its_info(client: LocalClient, storage_root: Path) -> None:
    dyn = str(storage_root / "dyn.vhd")
    job = create(client, "CreateDynamicVirtualHardDisk", Path=dyn,
                 MaxInternalSize=pywbem.Uint64(64 * MIB))
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
    assert job["PercentComplete"] == 100 and job["ErrorCode"] == 0
    assert job["Type"] == StorageJobType.VHD_CREATION and job["Caption"] == "Storage Job"
    assert set(job.properties) == set(STORAGE_JOB_PROPERTIES)
    q = qemu_info(dyn, "vpc")
    assert q["virtual-size"] == 64 * MIB
    info = disk_info(client, dyn)
    assert info["Type"] == 3 and info["MaxInternalSize"] == q["virtual-size"]
    assert info["FileSize"] == os.stat(dyn).st_size
    assert info["InUse"] is False and info["InSavedState"] is False and info["ParentPath"] == ""

    fixed = str(storage_root / "fixed.vhd")
    job = create(client, "CreateFixedVirtualHardDisk", Path=fixed,
                 MaxInternalSize=pywbem.Uint64(8 * MIB))
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
    info = disk_info(client, fixed)
    assert info["Type"] == 2 and info["MaxInternalSize"] == qemu_info(fixed, "vpc")["virtual-size"]
    assert info["FileSize"] == os.stat(fixed).st_size == 8 * MIB + 512

    vfixed = str(storage_root / "fixed.vhdx")
    job = create(client, "CreateFixedVirtualHardDisk", Path=vfixed,
                 MaxInternalSize=pywbem.Uint64(8 * MIB))
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
    info = disk_info(client, vfixed)
    assert info["Type"] == 2
    assert info["MaxInternalSize"] == qemu_info(vfixed, "vhdx")["virtual-size"] == 8 * MIB

    default = str(storage_root / "default.vhdx")  # MaxInternalSize 0: the 3 MB default
    job = create(client, "CreateDynamicVirtualHardDisk", Path=default,
                 MaxInternalSize=pywbem.Uint64(0))
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
    info = disk_info(client, default)
    assert info["Type"] == 3 and info["MaxInternalSize"] == 3 * MIB
    assert qemu_info(default, "vhdx")["virtual-size"] == 3 * MIB

    child = str(storage_root / "child.qcow2")
    job = create(client, "CreateDifferencingVirtualHardDisk", Path=child, ParentPath=dyn)
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
    info = disk_info(client, child)
    assert info["Type"] == 4 and info["ParentPath"] == dyn
    assert info["MaxInternalSize"] == qemu_info(child, "qcow2")["virtual-size"] == 64 * MIB
    # nothing but the requested files: no temporary names left behind
    assert only_files(storage_root) == {"dyn.vhd", "fixed.vhd", "fixed.vhdx", "default.vhdx",
                                        "child.qcow2"}


def _refused(client: LocalClient, method: str, **params: Any) -> int:
    before = len(client.registry.enumerate_instances(NS, names.STORAGE_JOB))
    rv, out = client.invoke(names.IMAGE_SERVICE, method, **params)
    assert not out.get("Job")
    assert len(client.registry.enumerate_instances(NS, names.STORAGE_JOB)) == before
    return rv


def test_quick_refusals(client: LocalClient, storage_root: Path, tmp_path: Path) -> None:
    existing = storage_root / "existing.vhd"
    existing.write_bytes(b"keep me")
    size = pywbem.Uint64(MIB)
    r = storage_root
    dyn, fixed, diff = ("CreateDynamicVirtualHardDisk", "CreateFixedVirtualHardDisk",
                        "CreateDifferencingVirtualHardDisk")
    bad = ReturnCode.INVALID_PARAMETER
    assert _refused(client, dyn, Path=str(r / "a.vhd"), MaxInternalSize=pywbem.Uint64(1000)) == bad
    assert _refused(client, fixed, Path=str(r / "a.vhd"), MaxInternalSize=pywbem.Uint64(0)) == bad
    assert _refused(client, dyn, Path=str(r / "a.vhd"),
                    MaxInternalSize=pywbem.Uint64(4096 * 1024**3)) == bad  # > VHD maximum
    assert _refused(client, dyn, Path="a.vhd", MaxInternalSize=size) == bad
    assert _refused(client, dyn, Path=str(existing), MaxInternalSize=size) == bad
    assert _refused(client, dyn, Path=str(r / "no" / "a.vhd"), MaxInternalSize=size) == bad
    assert _refused(client, dyn, Path=str(r / "a.img"), MaxInternalSize=size) == bad
    assert _refused(client, fixed, Path=str(r / "a.qcow2"), MaxInternalSize=size) == bad
    assert _refused(client, dyn, Path=str(tmp_path / "a.vhd"),
                    MaxInternalSize=size) == ReturnCode.ACCESS_DENIED
    assert _refused(client, diff, Path=str(r / "c.vhd"),
                    ParentPath=str(existing)) == ReturnCode.NOT_SUPPORTED
    assert _refused(client, diff, Path=str(r / "c.qcow2"),
                    ParentPath=str(r / "missing.vhd")) == ReturnCode.FILE_NOT_FOUND
    assert _refused(client, diff, Path=str(r / "c.qcow2"),
                    ParentPath=str(tmp_path / "p.vhd")) == ReturnCode.ACCESS_DENIED
    info = "GetVirtualHardDiskInfo"
    assert _refused(client, info, Path=str(r / "missing.vhd")) == ReturnCode.FILE_NOT_FOUND
    assert _refused(client, info, Path=str(tmp_path / "x.vhd")) == ReturnCode.ACCESS_DENIED
    assert _refused(client, info, Path="x.vhd") == bad
    assert _refused(client, info, Path=str(r)) == bad  # a directory
    # nothing was created, the existing file is untouched
    assert only_files(storage_root) == {"existing.vhd"}
    assert existing.read_bytes() == b"keep me"


def test_refusal_messages_name_the_fix(storage_root: Path) -> None:
    roots = StorageRoots([storage_root])
    with pytest.raises(InvalidParameter, match=r"\.vhd, \.vhdx, \.qcow2"):
        vhd.prepare_create(roots, str(storage_root / "disk.img"), 512, fixed=False)
    with pytest.raises(InvalidParameter, match="multiple of 512"):
        vhd.prepare_create(roots, str(storage_root / "disk.vhd"), 513, fixed=False)
    with pytest.raises(InvalidParameter, match="create it first"):
        vhd.prepare_create(roots, str(storage_root / "x" / "disk.vhd"), 512, fixed=False)


def test_every_other_method_is_not_supported(service: Service, client: LocalClient,
                                             storage_root: Path) -> None:
    cls = service.registry.get_class(NS, names.IMAGE_SERVICE)
    others = [m for m in cls.methods if m.lower() not in IMPLEMENTED]
    assert others  # StartService, StopService
    for method in others:
        rv, out = client.invoke(names.IMAGE_SERVICE, method)
        assert rv == ReturnCode.NOT_SUPPORTED, method
    assert only_files(storage_root) == set()
    assert service.registry.enumerate_instances(NS, names.STORAGE_JOB) == []


def test_failure_during_the_job_leaves_nothing(client: LocalClient, storage_root: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    real = qemuimg.create

    def broken(path: str, size: int, fmt: Any, *, fixed: bool, fd: int | None = None) -> None:
        real(path, size, fmt, fixed=fixed, fd=fd)  # a real, partial result...
        raise SystemNotAvailable("qemu-img failed: No space left on device: free some space")

    monkeypatch.setattr(qemuimg, "create", broken)
    target = str(storage_root / "broken.vhd")
    job = create(client, "CreateDynamicVirtualHardDisk", Path=target,
                 MaxInternalSize=pywbem.Uint64(MIB))
    assert job["JobState"] == JobState.EXCEPTION
    assert job["ErrorCode"] == ReturnCode.SYSTEM_NOT_AVAILABLE
    assert "No space left" in job["ErrorDescription"]
    assert job["Child"] == target and job["JobCompletionStatusCode"] != 0
    rv, out = client.invoke(job.path, "GetError")
    assert rv == ReturnCode.COMPLETED
    assert "No space left" in parse_instance(out_param(out, "Error"))["Message"]
    assert only_files(storage_root) == set()


def test_terminate_a_disk_job_mid_run(client: LocalClient, storage_root: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    real = qemuimg.create
    made, release = threading.Event(), threading.Event()

    def slow(path: str, size: int, fmt: Any, *, fixed: bool, fd: int | None = None) -> None:
        real(path, size, fmt, fixed=fixed, fd=fd)
        made.set()
        release.wait(DEADLINE)

    monkeypatch.setattr(qemuimg, "create", slow)
    rv, out = client.invoke(names.IMAGE_SERVICE, "CreateFixedVirtualHardDisk",
                            Path=str(storage_root / "slow.vhdx"),
                            MaxInternalSize=pywbem.Uint64(4 * MIB))
    assert rv == ReturnCode.JOB_STARTED
    wait_for(made)
    assert client.job(out["Job"])["JobState"] == JobState.RUNNING
    assert len(only_files(storage_root)) == 1  # the image, still under its temporary name
    rv, _ = client.invoke(out["Job"], "RequestStateChange", RequestedState=pywbem.Uint16(4))
    assert rv == StateChangeReturn.TRANSITION_STARTED
    release.set()
    job = client.wait(out["Job"], timeout=DEADLINE)
    assert job["JobState"] == JobState.TERMINATED
    assert job["ErrorDescription"] and "cancelled" in job["ErrorDescription"]
    assert only_files(storage_root) == set()


def test_disk_in_use_and_in_saved_state(service: Service, client: LocalClient,
                                        storage_root: Path) -> None:
    disk = str(storage_root / "vm.qcow2")  # QEMU can save the memory of a VM on qcow2 only
    job = create(client, "CreateDynamicVirtualHardDisk", Path=disk,
                 MaxInternalSize=pywbem.Uint64(64 * MIB))
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
    vs = VirtualSystem(guid=new_guid(), name=f"jobs-cim-{storage_root.name}", memory_mb=64)
    vs.controllers = default_controllers()
    drive = Drive(new_guid(), DriveKind.DISK, vs.controllers[0].dev_id, 0)
    vs.drives = [drive]
    vs.media = [Media(new_guid(), drive.dev_id, disk, ImageFormat.QCOW2)]
    host = service.host
    host.define(vs)
    try:
        info = disk_info(client, disk)
        assert info["InUse"] is True and info["InSavedState"] is False
        host.start(vs.guid)
        info = disk_info(client, disk)  # readable while QEMU holds it open
        assert info["InUse"] is True and info["InSavedState"] is False
        assert info["Type"] == 3 and info["MaxInternalSize"] == 64 * MIB
        host.save(vs.guid)
        info = disk_info(client, disk)
        assert info["InUse"] is True and info["InSavedState"] is True
    finally:
        with suppress(Exception):
            host.undefine(vs.guid)
    info = disk_info(client, disk)
    assert info["InUse"] is False and info["InSavedState"] is False


def test_a_file_that_appears_meanwhile_is_never_replaced(service: Service, client: LocalClient,
                                                         storage_root: Path) -> None:
    target = storage_root / "raced.vhd"
    work = vhd.prepare_create(service.context.roots, str(target), MIB, fixed=False)
    target.write_bytes(b"someone else's data")  # appears after the checks, before the job
    rec = service.jobs.submit(name="Create", description=work.description, work=work,
                              classname=names.STORAGE_JOB, storage_job_type=1)
    job = client.wait(pywbem.CIMInstanceName(names.STORAGE_JOB, {"InstanceID": rec.instance_id},
                                             namespace=NS), timeout=DEADLINE)
    assert job["JobState"] == JobState.EXCEPTION
    assert job["ErrorCode"] == ReturnCode.INVALID_PARAMETER
    assert "created by someone else" in job["ErrorDescription"]
    assert target.read_bytes() == b"someone else's data"
    assert only_files(storage_root) == {"raced.vhd"}
