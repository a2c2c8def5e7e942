"""The VM life cycle on qemu:///system, through the registry exactly as a WBEM client drives it."""

from __future__ import annotations

import functools
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pywbem

from tests.conftest import QEMU_URI, fresh_dir
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


# ---------------------------------------------------------------------------------------------
# One VM's life, in named steps that run in this order on one service and one VM. A step that
# fails marks the scenario broken and the later steps are skipped (they need its result).

@dataclass
class Scenario:
    svc: Harness
    root: Path
    vhd: Path
    vm: pywbem.CIMInstanceName | None = None
    broken: str = ""
    found: dict[str, pywbem.CIMInstance] = field(default_factory=dict)

    @property
    def guid(self) -> str:
        assert self.vm is not None
        return str(self.vm["Name"])

    @property
    def path(self) -> pywbem.CIMInstanceName:
        assert self.vm is not None
        return self.vm

    def to(self, state: int, shown: int | None = None) -> pywbem.CIMInstance:
        """RequestStateChange(state) as a completed job, then EnabledState is ``shown``
        (default ``state``); the job."""
        job = change_state(self.svc, self.path, state)
        assert self.svc.get(self.path)["EnabledState"] == (state if shown is None else shown)
        return job


@pytest.fixture(scope="module")
def scenario() -> Iterator[Scenario]:
    root, state = fresh_dir(), fresh_dir()
    try:
        with running_service(root, state, QEMU_URI) as harness:
            vhd = root / "boot.vhd"
            make_vhd(vhd)
            yield Scenario(harness, root, vhd)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)


Step = Callable[[Scenario], None]


def step(fn: Step) -> Step:
    """Run ``fn`` only while every earlier step passed; a failure breaks the scenario."""
    @functools.wraps(fn)
    def run(scenario: Scenario) -> None:
        if scenario.broken:
            pytest.skip(f"needs the earlier step {scenario.broken}, which failed")
        try:
            fn(scenario)
        except BaseException:
            scenario.broken = fn.__name__
            raise
    return run


@step
def test_step_01_define_with_processors_memory_scsi_and_nic(scenario: Scenario) -> None:
    sc = scenario
    sc.vm = define(sc.svc, f"lifecycle-{uuid.uuid4().hex[:8]}",
                   rasd(names.PROCESSOR_SD, ResourceType=3, VirtualQuantity=pywbem.Uint64(2)),
                   rasd(names.MEMORY_SD, ResourceType=4, VirtualQuantity=pywbem.Uint64(1024)),
                   rasd(ResourceType=6, ResourceSubType="Microsoft Synthetic SCSI Controller"),
                   rasd(names.SYNTHETIC_NIC_SD, ResourceType=10, ElementName="Network Adapter"))
    cs = sc.svc.get(sc.path)
    assert (cs["EnabledState"], cs["RequestedState"], cs["Caption"]) == (3, 12, "Virtual Machine")


@step
def test_step_02_add_disk_and_dvd_drives_in_one_call(scenario: Scenario) -> None:
    """A disk drive on IDE 0/0 with the VHD, named by the InstanceID given in the same call;
    a DVD drive on IDE 1/0 without media."""
    sc = scenario
    insts = settings_of(sc.svc, sc.path)
    ide = {str(i["Address"]): i for i in find(insts, "Microsoft Emulated IDE Controller")}
    drive = rasd(ResourceType=22, ResourceSubType="Microsoft Synthetic Disk Drive",
                 InstanceID="new-disk-drive", Parent=ide["0"].path.to_wbem_uri(), Address="0")
    image = rasd(ResourceType=21, ResourceSubType="Microsoft Virtual Hard Disk",
                 Parent="new-disk-drive", Connection=[str(sc.vhd)])
    dvd = rasd(ResourceType=16, ResourceSubType="Microsoft Synthetic DVD Drive",
               Parent=ide["1"].path, Address="0")
    rv, out = sc.svc.vsms("AddVirtualSystemResources", TargetSystem=sc.path,
                          ResourceSettingData=[text(drive), text(image), text(dvd)])
    assert rv == ReturnCode.COMPLETED, rv
    assert [sc.svc.get(p)["ResourceSubType"] for p in out["NewResources"]] == [
        "Microsoft Synthetic Disk Drive", "Microsoft Virtual Hard Disk",
        "Microsoft Synthetic DVD Drive"]


@step
def test_step_03_settings_show_every_device(scenario: Scenario) -> None:
    sc = scenario
    insts = settings_of(sc.svc, sc.path)
    classes = sorted(i.classname for i in insts)
    assert classes.count(names.RASD) == 8 and names.VSGSD in classes  # 6 + COM 1, COM 2
    mem = next(i for i in insts if i.classname == names.MEMORY_SD)
    cpu = next(i for i in insts if i.classname == names.PROCESSOR_SD)
    nic = next(i for i in insts if i.classname == names.SYNTHETIC_NIC_SD)
    assert (mem["VirtualQuantity"], cpu["VirtualQuantity"]) == (1024, 2)
    assert str(nic["Address"]).startswith("00155D")
    disk_image = find(insts, "Microsoft Virtual Hard Disk")[0]
    assert list(disk_image["Connection"]) == [str(sc.vhd.resolve())]
    gsd = sc.svc.associators(sc.path, assoc_class=names.ELEMENT_SETTING_DATA)
    assert [g.classname for g in gsd] == [names.VSGSD]
    sc.found.update(vssd=insts[0], mem=mem, nic=nic, disk_image=disk_image)


@step
def test_step_04_modify_virtual_system_renames(scenario: Scenario) -> None:
    """ModifyVirtualSystem: rename and notes through the VSSD a client read."""
    sc = scenario
    vssd = sc.found["vssd"]
    vssd["ElementName"], vssd["Notes"] = "lifecycle renamed", "changed by the test"
    rv, out = sc.svc.vsms("ModifyVirtualSystem", ComputerSystem=sc.path,
                          SystemSettingData=text(vssd))
    assert rv == ReturnCode.COMPLETED
    assert out["ModifiedSettingData"]["InstanceID"] == ids.vssd_id(sc.guid)
    assert sc.svc.get(sc.path)["ElementName"] == "lifecycle renamed"


@step
def test_step_05_modify_resources_memory_and_static_mac(scenario: Scenario) -> None:
    sc = scenario
    mem, nic = sc.found["mem"], sc.found["nic"]
    mem["VirtualQuantity"] = pywbem.Uint64(768)
    nic["Address"], nic["StaticMacAddress"] = "00155D7A7B7C", True
    rv, _ = sc.svc.vsms("ModifyVirtualSystemResources", ComputerSystem=sc.path,
                        ResourceSettingData=[text(mem), text(nic)])
    assert rv == ReturnCode.COMPLETED
    assert sc.svc.get(mem.path)["VirtualQuantity"] == 768
    assert sc.svc.get(nic.path)["Address"] == "00155D7A7B7C"


@step
def test_step_06_add_then_remove_a_legacy_adapter_and_the_scsi_controller(
        scenario: Scenario) -> None:
    sc = scenario
    rv, out = sc.svc.vsms("AddVirtualSystemResources", TargetSystem=sc.path,
                          ResourceSettingData=[text(rasd(names.EMULATED_NIC_SD,
                                                         ResourceType=10))])
    assert rv == ReturnCode.COMPLETED
    legacy = out["NewResources"][0]
    scsi = find(settings_of(sc.svc, sc.path), "Microsoft Synthetic SCSI Controller")[0].path
    rv, _ = sc.svc.vsms("RemoveVirtualSystemResources", TargetSystem=sc.path,
                        ResourceSettingData=[legacy, scsi])
    assert rv == ReturnCode.COMPLETED
    left = settings_of(sc.svc, sc.path)
    assert not find(left, "Microsoft Synthetic SCSI Controller")
    assert not [i for i in left if i.classname == names.EMULATED_NIC_SD]


@step
def test_step_07_start_shows_the_transition(scenario: Scenario) -> None:
    """Starting / RequestedState 2 until the work is done."""
    sc = scenario
    change = prepare_state_change(sc.svc.host, sc.svc.transitions, sc.guid, 2)
    cs = sc.svc.get(sc.path)
    assert (cs["EnabledState"], cs["RequestedState"]) == (32770, 2)
    change.run(LocalContext(UndoBook((), None)))  # a state change records no undo step
    change.reservation.release()  # what the job engine does once the job's work has run
    cs = sc.svc.get(sc.path)
    assert (cs["EnabledState"], cs["RequestedState"]) == (2, 12)


@step
def test_step_08_pause_resume_and_reboot(scenario: Scenario) -> None:
    sc = scenario
    job = sc.to(32768)
    assert job.path is not None
    affected = sc.svc.associators(job.path, assoc_class=names.AFFECTED_JOB_ELEMENT)
    assert [a["Name"] for a in affected] == [sc.guid]
    sc.to(2)
    sc.to(10, shown=2)


@step
def test_step_09_save_is_refused_at_once_with_a_vhd_disk(scenario: Scenario) -> None:
    """QEMU cannot save the memory of a VM with a VHD/VHDX disk: refused at once (32770), the
    VM keeps running and shows no transition."""
    sc = scenario
    rv, out = sc.svc.invoke(sc.path, "RequestStateChange", RequestedState=pywbem.Uint16(32769))
    assert rv == ReturnCode.NOT_SUPPORTED
    assert "Job" not in out
    cs = sc.svc.get(sc.path)
    assert (cs["EnabledState"], cs["RequestedState"]) == (2, 12)


@step
def test_step_10_save_and_restore_with_a_qcow2_disk(scenario: Scenario) -> None:
    """With the disk image swapped for a qcow2 one (the VM off), save and restore work."""
    sc = scenario
    sc.to(3)
    qcow2 = sc.root / "boot.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(qcow2), "64M"], check=True,
                   timeout=60)
    disk_image = sc.svc.get(sc.found["disk_image"].path)
    disk_image["Connection"] = [str(qcow2)]
    rv, _ = sc.svc.vsms("ModifyVirtualSystemResources", ComputerSystem=sc.path,
                        ResourceSettingData=[text(disk_image)])
    assert rv == ReturnCode.COMPLETED
    assert list(sc.svc.get(disk_image.path)["Connection"]) == [str(qcow2.resolve())]
    sc.to(2)
    sc.to(32769)
    sc.to(2)


@step
def test_step_11_refusals_while_running(scenario: Scenario) -> None:
    sc = scenario
    rv, _ = sc.svc.vsms("DestroyVirtualSystem", ComputerSystem=sc.path)
    assert rv == ReturnCode.INVALID_STATE
    rv, _ = sc.svc.invoke(sc.path, "RequestStateChange", RequestedState=pywbem.Uint16(2))
    assert rv == ReturnCode.INVALID_STATE  # already running, as Hyper-V answers
    rv, _ = sc.svc.invoke(sc.path, "RequestStateChange", RequestedState=pywbem.Uint16(11))
    assert rv == ReturnCode.NOT_SUPPORTED
    rv, _ = sc.svc.vsms("ModifyVirtualSystemResources", ComputerSystem=sc.path,
                        ResourceSettingData=[text(sc.found["mem"])])
    assert rv == ReturnCode.INVALID_STATE


@step
def test_step_12_turn_off_and_destroy_keeps_the_disk(scenario: Scenario) -> None:
    sc = scenario
    sc.to(3)
    rv, out = sc.svc.vsms("DestroyVirtualSystem", ComputerSystem=sc.path)
    assert rv == ReturnCode.JOB_STARTED
    job = sc.svc.wait(out["Job"])
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
    assert sc.svc.host.get_system(sc.guid) is None
    assert sc.vhd.exists()  # disks are never deleted
    with pytest.raises(pywbem.CIMError):
        sc.svc.get(sc.path)


# ---------------------------------------------------------------------------------------------
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
