"""The VM life cycle on qemu:///system, through the registry exactly as a WBEM client drives it."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pywbem

from vsms.cim import names
from vsms.cim.enums import JobState, ReturnCode
from vsms.jobs.undo import UndoBook
from vsms.mapping import ids
from vsms.operations.state import prepare_state_change
from vsms.operations.undo import LocalContext

from .service import Harness, make_iso, make_vhd, running_service, text

pytestmark = pytest.mark.qemu


@pytest.fixture
def svc(storage_root: Path, tmp_path: Path, qemu_uri: str) -> Iterator[Harness]:
    with running_service(storage_root, tmp_path / "state", qemu_uri) as harness:
        yield harness


def rasd(classname: str = names.RASD, **props: Any) -> pywbem.CIMInstance:
    return pywbem.CIMInstance(classname, properties={
        k: pywbem.Uint16(v) if k == "ResourceType" else v for k, v in props.items()})


def define(svc: Harness, name: str, *resources: pywbem.CIMInstance) -> pywbem.CIMInstanceName:
    gsd = pywbem.CIMInstance(names.VSGSD, properties={"ElementName": name})
    rv, out = svc.vsms("DefineVirtualSystem", SystemSettingData=text(gsd),
                       ResourceSettingData=[text(r) for r in resources])
    assert rv == ReturnCode.COMPLETED, rv
    vm: pywbem.CIMInstanceName = out["DefinedSystem"]
    return vm


def settings_of(svc: Harness, vm: pywbem.CIMInstanceName) -> list[pywbem.CIMInstance]:
    vssd = svc.associators(vm, assoc_class=names.SETTINGS_DEFINE_STATE, result_class=names.VSSD)
    assert len(vssd) == 1 and vssd[0].path is not None
    return [vssd[0], *svc.associators(vssd[0].path, assoc_class=names.VSSD_COMPONENT)]


def find(insts: list[pywbem.CIMInstance], subtype: str) -> list[pywbem.CIMInstance]:
    return [i for i in insts if i.get("ResourceSubType") == subtype]


def change_state(svc: Harness, vm: pywbem.CIMInstanceName, state: int) -> pywbem.CIMInstance:
    rv, out = svc.invoke(vm, "RequestStateChange", RequestedState=pywbem.Uint16(state))
    assert rv == ReturnCode.JOB_STARTED, rv
    job = svc.wait(out["Job"])
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
    return job


def test_define_modify_resources_states_destroy(svc: Harness, storage_root: Path) -> None:
    vhd = storage_root / "boot.vhd"
    make_vhd(vhd)
    vm = define(svc, f"lifecycle-{uuid.uuid4().hex[:8]}",
                rasd(names.PROCESSOR_SD, ResourceType=3, VirtualQuantity=pywbem.Uint64(2)),
                rasd(names.MEMORY_SD, ResourceType=4, VirtualQuantity=pywbem.Uint64(1024)),
                rasd(ResourceType=6, ResourceSubType="Microsoft Synthetic SCSI Controller"),
                rasd(names.SYNTHETIC_NIC_SD, ResourceType=10, ElementName="Network Adapter"))
    cs = svc.get(vm)
    assert (cs["EnabledState"], cs["RequestedState"], cs["Caption"]) == (3, 12, "Virtual Machine")
    guid = str(vm["Name"])

    # a disk drive on IDE 0/0 with the VHD, named by the InstanceID given in the same call;
    # a DVD drive on IDE 1/0 without media
    insts = settings_of(svc, vm)
    ide = {str(i["Address"]): i for i in find(insts, "Microsoft Emulated IDE Controller")}
    drive = rasd(ResourceType=22, ResourceSubType="Microsoft Synthetic Disk Drive",
                 InstanceID="new-disk-drive", Parent=ide["0"].path.to_wbem_uri(), Address="0")
    image = rasd(ResourceType=21, ResourceSubType="Microsoft Virtual Hard Disk",
                 Parent="new-disk-drive", Connection=[str(vhd)])
    dvd = rasd(ResourceType=16, ResourceSubType="Microsoft Synthetic DVD Drive",
               Parent=ide["1"].path, Address="0")
    rv, out = svc.vsms("AddVirtualSystemResources", TargetSystem=vm,
                       ResourceSettingData=[text(drive), text(image), text(dvd)])
    assert rv == ReturnCode.COMPLETED, rv
    new = out["NewResources"]
    assert [svc.get(p)["ResourceSubType"] for p in new] == [
        "Microsoft Synthetic Disk Drive", "Microsoft Virtual Hard Disk",
        "Microsoft Synthetic DVD Drive"]

    insts = settings_of(svc, vm)
    classes = sorted(i.classname for i in insts)
    assert classes.count(names.RASD) == 6 and names.VSGSD in classes
    mem = next(i for i in insts if i.classname == names.MEMORY_SD)
    cpu = next(i for i in insts if i.classname == names.PROCESSOR_SD)
    nic = next(i for i in insts if i.classname == names.SYNTHETIC_NIC_SD)
    assert (mem["VirtualQuantity"], cpu["VirtualQuantity"]) == (1024, 2)
    assert str(nic["Address"]).startswith("00155D")
    disk_image = find(insts, "Microsoft Virtual Hard Disk")[0]
    assert list(disk_image["Connection"]) == [str(vhd.resolve())]
    gsd = svc.associators(vm, assoc_class=names.ELEMENT_SETTING_DATA)
    assert [g.classname for g in gsd] == [names.VSGSD]

    # ModifyVirtualSystem: rename and notes through the VSSD a client read
    vssd = insts[0]
    vssd["ElementName"], vssd["Notes"] = "lifecycle renamed", "changed by the test"
    rv, out = svc.vsms("ModifyVirtualSystem", ComputerSystem=vm, SystemSettingData=text(vssd))
    assert rv == ReturnCode.COMPLETED
    assert out["ModifiedSettingData"]["InstanceID"] == ids.vssd_id(guid)
    assert svc.get(vm)["ElementName"] == "lifecycle renamed"

    # ModifyVirtualSystemResources: memory and a static MAC
    mem["VirtualQuantity"] = pywbem.Uint64(768)
    nic["Address"], nic["StaticMacAddress"] = "00155D7A7B7C", True
    rv, _ = svc.vsms("ModifyVirtualSystemResources", ComputerSystem=vm,
                     ResourceSettingData=[text(mem), text(nic)])
    assert rv == ReturnCode.COMPLETED
    assert svc.get(mem.path)["VirtualQuantity"] == 768
    assert svc.get(nic.path)["Address"] == "00155D7A7B7C"

    # add a legacy adapter, then remove it and the SCSI controller
    rv, out = svc.vsms("AddVirtualSystemResources", TargetSystem=vm, ResourceSettingData=[
        text(rasd(names.EMULATED_NIC_SD, ResourceType=10))])
    assert rv == ReturnCode.COMPLETED
    legacy = out["NewResources"][0]
    scsi = find(settings_of(svc, vm), "Microsoft Synthetic SCSI Controller")[0].path
    rv, _ = svc.vsms("RemoveVirtualSystemResources", TargetSystem=vm,
                     ResourceSettingData=[legacy, scsi])
    assert rv == ReturnCode.COMPLETED
    left = settings_of(svc, vm)
    assert not find(left, "Microsoft Synthetic SCSI Controller")
    assert not [i for i in left if i.classname == names.EMULATED_NIC_SD]

    # start: the transition shows Starting / RequestedState 2 until the work is done
    change = prepare_state_change(svc.host, svc.transitions, guid, 2)
    cs = svc.get(vm)
    assert (cs["EnabledState"], cs["RequestedState"]) == (32770, 2)
    change.run(LocalContext(UndoBook((), None)))  # a state change records no undo step
    cs = svc.get(vm)
    assert (cs["EnabledState"], cs["RequestedState"]) == (2, 12)

    job = change_state(svc, vm, 32768)
    assert svc.get(vm)["EnabledState"] == 32768
    assert job.path is not None
    affected = svc.associators(job.path, assoc_class=names.AFFECTED_JOB_ELEMENT)
    assert [a["Name"] for a in affected] == [guid]
    change_state(svc, vm, 2)
    assert svc.get(vm)["EnabledState"] == 2
    change_state(svc, vm, 10)
    assert svc.get(vm)["EnabledState"] == 2

    # QEMU cannot save the memory of a VM with a VHD/VHDX disk: refused at once (32770),
    # the VM keeps running and shows no transition
    rv, out = svc.invoke(vm, "RequestStateChange", RequestedState=pywbem.Uint16(32769))
    assert rv == ReturnCode.NOT_SUPPORTED
    assert "Job" not in out
    cs = svc.get(vm)
    assert (cs["EnabledState"], cs["RequestedState"]) == (2, 12)

    # with the disk image swapped for a qcow2 one (the VM off), save and restore work
    change_state(svc, vm, 3)
    qcow2 = storage_root / "boot.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(qcow2), "64M"], check=True,
                   timeout=60)
    disk_image = svc.get(disk_image.path)
    disk_image["Connection"] = [str(qcow2)]
    rv, _ = svc.vsms("ModifyVirtualSystemResources", ComputerSystem=vm,
                     ResourceSettingData=[text(disk_image)])
    assert rv == ReturnCode.COMPLETED
    assert list(svc.get(disk_image.path)["Connection"]) == [str(qcow2.resolve())]
    change_state(svc, vm, 2)
    change_state(svc, vm, 32769)
    assert svc.get(vm)["EnabledState"] == 32769
    change_state(svc, vm, 2)
    assert svc.get(vm)["EnabledState"] == 2

    # refusals while running
    rv, _ = svc.vsms("DestroyVirtualSystem", ComputerSystem=vm)
    assert rv == ReturnCode.INVALID_STATE
    rv, _ = svc.invoke(vm, "RequestStateChange", RequestedState=pywbem.Uint16(2))
    assert rv == ReturnCode.INVALID_STATE  # already running, as Hyper-V answers
    rv, _ = svc.invoke(vm, "RequestStateChange", RequestedState=pywbem.Uint16(11))
    assert rv == ReturnCode.NOT_SUPPORTED
    rv, _ = svc.vsms("ModifyVirtualSystemResources", ComputerSystem=vm,
                     ResourceSettingData=[text(mem)])
    assert rv == ReturnCode.INVALID_STATE

    change_state(svc, vm, 3)
    assert svc.get(vm)["EnabledState"] == 3
    rv, out = svc.vsms("DestroyVirtualSystem", ComputerSystem=vm)
    assert rv == ReturnCode.JOB_STARTED
    job = svc.wait(out["Job"])
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
    assert svc.host.get_system(guid) is None
    assert vhd.exists()  # disks are never deleted
    with pytest.raises(pywbem.CIMError):
        svc.get(vm)


def test_image_refusals(svc: Harness, storage_root: Path, tmp_path: Path) -> None:
    vm = define(svc, f"lifecycle-refusals-{uuid.uuid4().hex[:8]}")
    insts = settings_of(svc, vm)
    ide0 = next(i for i in find(insts, "Microsoft Emulated IDE Controller") if i["Address"] == "0")
    ide1 = next(i for i in find(insts, "Microsoft Emulated IDE Controller") if i["Address"] == "1")

    def add(*resources: pywbem.CIMInstance) -> int:
        rv, _ = svc.vsms("AddVirtualSystemResources", TargetSystem=vm,
                         ResourceSettingData=[text(r) for r in resources])
        return rv

    def disk_with(path: str) -> list[pywbem.CIMInstance]:
        return [rasd(ResourceType=22, InstanceID="d", Parent=ide0.path, Address="0"),
                rasd(ResourceType=21, ResourceSubType="Microsoft Virtual Hard Disk",
                     Parent="d", Connection=[path])]

    outside = tmp_path / "outside.vhd"
    make_vhd(outside)
    assert add(*disk_with(str(outside))) == ReturnCode.ACCESS_DENIED
    assert add(*disk_with(str(storage_root / "missing.vhd"))) == ReturnCode.INVALID_PARAMETER
    raw = storage_root / "raw.img"
    raw.write_bytes(b"\0" * 65536)
    assert add(*disk_with(str(raw))) == ReturnCode.INVALID_PARAMETER
    link = storage_root / "escape.vhd"
    link.symlink_to(outside)
    assert add(*disk_with(str(link))) == ReturnCode.ACCESS_DENIED
    assert add(rasd(ResourceType=22, Parent=ide0.path, Address="7")) == \
        ReturnCode.INVALID_PARAMETER
    assert add(rasd(ResourceType=14)) == ReturnCode.NOT_SUPPORTED
    # nothing of the refused calls was kept
    assert not find(settings_of(svc, vm), "Microsoft Synthetic Disk Drive")

    iso = storage_root / "setup.iso"
    make_iso(iso)
    assert add(rasd(ResourceType=16, InstanceID="dvd", Parent=ide1.path, Address="0"),
               rasd(ResourceType=21, Parent="dvd", Connection=[str(iso)])) == ReturnCode.COMPLETED
    assert find(settings_of(svc, vm), "Microsoft Virtual CD/DVD Disk")

    gsd = pywbem.CIMInstance(names.VSGSD, properties={"ElementName": "x"})
    vssd_ref = ids.setting_path(names.VSSD, ids.vssd_id(str(vm["Name"])))
    rv, _ = svc.vsms("DefineVirtualSystem", SystemSettingData=text(gsd), SourceSetting=vssd_ref)
    assert rv == ReturnCode.NOT_SUPPORTED
    rv, _ = svc.vsms("DefineVirtualSystem", SystemSettingData="<not xml")
    assert rv in (ReturnCode.INVALID_PARAMETER, ReturnCode.INCORRECT_DATA_TYPE)
    bogus = pywbem.CIMInstanceName(names.COMPUTER_SYSTEM, keybindings={
        "CreationClassName": names.COMPUTER_SYSTEM, "Name": str(uuid.uuid4()).upper()})
    rv, _ = svc.vsms("DestroyVirtualSystem", ComputerSystem=bogus)
    assert rv == ReturnCode.INVALID_PARAMETER
