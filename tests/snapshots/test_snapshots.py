"""Snapshots on qemu:///system through the registry, as a WBEM client drives them, with real
qemu-img and qemu-io: the A/B/C scenario of issue 13, the tree's CIM view, the state rules, the
bad input, and the tree kept in libvirt across a new connection."""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest
import pywbem

from tests.conftest import QEMU_URI, fresh_dir
from tests.lifecycle.service import Harness, make_vhd, running_service, text
from tests.lifecycle.test_qemu_lifecycle import change_state, define, find, rasd, settings_of
from vsms.cim import names
from vsms.cim.enums import JobState, OperationalStatus, RequestedState, ReturnCode
from vsms.disks import qemuimg
from vsms.mapping import ids
from vsms.model.vm import ImageFormat
from vsms.operations.snapshot_disks import SNAPSHOTS, backing_of
from vsms.operations.transitions import Transition
from vsms.virt.host import VirtHost

pytestmark = pytest.mark.qemu
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    path = fresh_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def svc(root: Path) -> Iterator[Harness]:
    """One service for the module (each test has VMs of its own)."""
    with running_service(root, root / "state", QEMU_URI) as harness:
        yield harness


@pytest.fixture
def storage_root(root: Path) -> Path:
    return root


def vm_with_disk(svc: Harness, root: Path, name: str) -> tuple[pywbem.CIMInstanceName, Path]:
    vhd = root / f"{name}.vhd"
    make_vhd(vhd, "16M")
    vm = define(svc, name)
    ide0 = next(i for i in find(settings_of(svc, vm), "Microsoft Emulated IDE Controller")
                if i["Address"] == "0")
    rv, _ = svc.vsms("AddVirtualSystemResources", TargetSystem=vm, ResourceSettingData=[
        text(rasd(ResourceType=22, InstanceID="d", Parent=ide0.path, Address="0")),
        text(rasd(ResourceType=21, ResourceSubType="Microsoft Virtual Hard Disk", Parent="d",
                  Connection=[str(vhd)]))])
    assert rv == ReturnCode.COMPLETED, rv
    return vm, vhd


def current_disk(svc: Harness, vm: pywbem.CIMInstanceName) -> tuple[str, ImageFormat]:
    vs = svc.host.get_system(str(vm["Name"]))
    assert vs is not None
    (media,) = vs.disk_media()
    return media.path, media.format


def write(svc: Harness, vm: pywbem.CIMInstanceName, byte: int, offset_mib: int = 0) -> None:
    path, fmt = current_disk(svc, vm)
    subprocess.run(["qemu-io", "-f", fmt.value, "-c",
                    f"write -P {byte} {offset_mib * MIB} {MIB}", path],
                   check=True, capture_output=True, timeout=60)


def save_copy(svc: Harness, vm: pywbem.CIMInstanceName, dest: Path) -> Path:
    path, fmt = current_disk(svc, vm)
    subprocess.run(["qemu-img", "convert", "-f", fmt.value, "-O", "raw", path, str(dest)],
                   check=True, timeout=60)
    return dest


def reads(svc: Harness, vm: pywbem.CIMInstanceName, copy: Path) -> bool:
    path, fmt = current_disk(svc, vm)
    return qemuimg.compare(path, fmt, str(copy), ImageFormat.RAW)


def ok_job(svc: Harness, rv: int, out: dict[str, object]) -> pywbem.CIMInstance:
    assert rv == ReturnCode.JOB_STARTED, rv
    job = svc.wait(out["Job"])
    assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
    return job


def snapshot(svc: Harness, vm: pywbem.CIMInstanceName) -> pywbem.CIMInstance:
    rv, out = svc.vsms("CreateVirtualSystemSnapshot", SourceSystem=vm)
    job = ok_job(svc, rv, out)
    settings = out["SnapshotSettingData"]
    assert job.path is not None
    affected = svc.associators(job.path, assoc_class=names.AFFECTED_JOB_ELEMENT,
                               result_class=names.VSSD)
    assert [a.path["InstanceID"] for a in affected] == [settings["InstanceID"]]
    return svc.get(settings)


def overlays(root: Path, vm: pywbem.CIMInstanceName) -> list[str]:
    folder = root / SNAPSHOTS / str(vm["Name"])
    return sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.exists() else []


def test_a_b_c_scenario(svc: Harness, storage_root: Path, tmp_path: Path) -> None:
    """Write A → S1 → B → S2 → C → apply S1 reads A → apply S2 reads B → remove S1 (merge) →
    S2 still applies → remove the tree → one flat image equal to the current state; with the
    CIM view of the tree at each step."""
    name = f"snap-abc-{uuid.uuid4().hex[:8]}"
    vm, vhd = vm_with_disk(svc, storage_root, name)
    guid = str(vm["Name"])
    write(svc, vm, 0x41)
    copy_a = save_copy(svc, vm, tmp_path / "a.raw")

    s1 = snapshot(svc, vm)
    assert s1["SettingType"] == 5 and s1["SystemName"] == guid and s1["Parent"] is None
    assert re.fullmatch(rf"{re.escape(name)} - \(\d+/\d+/\d{{4}} - \d+:\d\d:\d\d [AP]M\)",
                        s1["ElementName"]), s1["ElementName"]
    assert s1["CreationTime"] is not None
    path, fmt = current_disk(svc, vm)  # the VM now writes to an overlay on the frozen VHD
    assert fmt is ImageFormat.QCOW2 and Path(path).parent == storage_root / SNAPSHOTS / guid
    assert backing_of(path) == str(vhd)
    assert len(overlays(storage_root, vm)) == 1
    # the snapshot's own RASDs: its disk is the frozen VHD
    assert s1.path is not None
    parts = svc.associators(s1.path, assoc_class=names.VSSD_COMPONENT)
    disk = find(parts, "Microsoft Virtual Hard Disk")
    assert [d["Connection"] for d in disk] == [[str(vhd)]]
    assert all(str(p["InstanceID"]).startswith(f"Microsoft:{s1['InstanceID'][10:]}\\")
               for p in parts)
    write(svc, vm, 0x42)
    copy_b = save_copy(svc, vm, tmp_path / "b.raw")

    s2 = snapshot(svc, vm)
    assert s2["Parent"] == ids.ref_text(names.VSSD, s1["InstanceID"])
    assert s2.path is not None
    assert [c.path["InstanceID"] for c in svc.associators(
        s1.path, assoc_class="Msvm_ParentChildSettingData")] == [s2["InstanceID"]]
    assert [p.path["InstanceID"] for p in svc.associators(
        vm, assoc_class="Msvm_PreviousSettingData")] == [s2["InstanceID"]]
    snaps = svc.associators(vm, assoc_class=names.ELEMENT_SETTING_DATA, result_class=names.VSSD)
    assert sorted(s["InstanceID"] for s in snaps) == sorted([s1["InstanceID"], s2["InstanceID"]])
    # GetSummaryInformation's Snapshots (107) lists them too, oldest first
    current = next(s for s in svc.associators(vm, assoc_class=names.SETTINGS_DEFINE_STATE))
    rv, out = svc.vsms("GetSummaryInformation", SettingData=[current.path],
                       RequestedInformation=[pywbem.Uint32(107)])
    assert rv == ReturnCode.COMPLETED, rv
    (summary,) = out["SummaryInformation"]
    assert [s["InstanceID"] for s in summary["Snapshots"]] == [s1["InstanceID"],
                                                              s2["InstanceID"]]
    assert all(s["SettingType"] == 5 for s in summary["Snapshots"])
    write(svc, vm, 0x43)
    copy_c = save_copy(svc, vm, tmp_path / "c.raw")

    # a new connection (as after a restart of the service) reads the same tree from libvirt
    with VirtHost(svc.host.uri, instance=svc.host.instance) as fresh:
        again = fresh.get_system(guid)
        assert again is not None
        assert [(s.id, s.parent) for s in again.snapshots] == [
            (s1["InstanceID"][10:], ""), (s2["InstanceID"][10:], s1["InstanceID"][10:])]
        assert again.previous_snapshot == s2["InstanceID"][10:]

    rv, out = svc.vsms("ApplyVirtualSystemSnapshotEx", ComputerSystem=vm,
                       SnapshotSettingData=s1.path)
    ok_job(svc, rv, out)
    assert reads(svc, vm, copy_a) and not reads(svc, vm, copy_b)
    assert not reads(svc, vm, copy_c)
    assert [p.path["InstanceID"] for p in svc.associators(
        vm, assoc_class="Msvm_LastAppliedSettingData")] == [s1["InstanceID"]]
    assert svc.get(vm)["EnabledState"] == 3

    rv, out = svc.vsms("ApplyVirtualSystemSnapshot", ComputerSystem=vm,
                       SnapshotSettingData=s2.path)  # v1: no job, done within the call
    assert rv == ReturnCode.COMPLETED, rv
    assert reads(svc, vm, copy_b) and not reads(svc, vm, copy_c)
    # the overlay of C and the one made when S1 was applied are gone: S1's changes (o1), the
    # current overlay
    assert len(overlays(storage_root, vm)) == 2

    rv, out = svc.vsms("RemoveVirtualSystemSnapshot", SnapshotSettingData=s1.path)
    ok_job(svc, rv, out)
    with pytest.raises(pywbem.CIMError):
        svc.get(s1.path)
    s2 = svc.get(s2.path)
    assert s2["Parent"] is None  # re-parented to S1's parent: none
    assert len(overlays(storage_root, vm)) == 1  # S1's changes merged into the VHD
    assert reads(svc, vm, copy_b)
    write(svc, vm, 0x44, 2)  # a change after S2, to be discarded
    rv, out = svc.vsms("ApplyVirtualSystemSnapshotEx", ComputerSystem=vm,
                       SnapshotSettingData=s2.path)
    ok_job(svc, rv, out)
    assert reads(svc, vm, copy_b)
    write(svc, vm, 0x45, 3)
    copy_e = save_copy(svc, vm, tmp_path / "e.raw")

    rv, out = svc.vsms("RemoveVirtualSystemSnapshotTree", SnapshotSettingData=s2.path)
    ok_job(svc, rv, out)
    path, fmt = current_disk(svc, vm)
    assert (path, fmt) == (str(vhd), ImageFormat.VHD)  # one flat image again
    assert reads(svc, vm, copy_e)
    assert overlays(storage_root, vm) == []
    assert not svc.associators(vm, assoc_class="Msvm_PreviousSettingData")
    assert not svc.associators(vm, assoc_class=names.ELEMENT_SETTING_DATA,
                               result_class=names.VSSD)


def test_refusals_and_states(svc: Harness, storage_root: Path) -> None:
    """Bad input and the VM states each method accepts; nothing changes when refused."""
    vm, vhd = vm_with_disk(svc, storage_root, f"snap-bad-{uuid.uuid4().hex[:8]}")
    other, _ = vm_with_disk(svc, storage_root, f"snap-other-{uuid.uuid4().hex[:8]}")
    guid = str(vm["Name"])
    s1 = snapshot(svc, vm)
    assert s1.path is not None
    current = ids.setting_path(names.VSSD, ids.vssd_id(guid))

    def vsms(method: str, **params: object) -> tuple[int, str]:
        rv, out = svc.vsms(method, **params)
        return rv, ""

    # a snapshot of another VM passed to Apply; a current-state VSSD passed as a snapshot
    assert vsms("ApplyVirtualSystemSnapshotEx", ComputerSystem=other,
                SnapshotSettingData=s1.path)[0] == ReturnCode.INVALID_PARAMETER
    assert vsms("ApplyVirtualSystemSnapshot", ComputerSystem=vm,
                SnapshotSettingData=current)[0] == ReturnCode.INVALID_PARAMETER
    assert vsms("RemoveVirtualSystemSnapshot",
                SnapshotSettingData=current)[0] == ReturnCode.INVALID_PARAMETER
    unknown = ids.setting_path(names.VSSD, ids.vssd_id(str(uuid.uuid4()).upper()))
    assert vsms("RemoveVirtualSystemSnapshotTree",
                SnapshotSettingData=unknown)[0] == ReturnCode.INVALID_PARAMETER
    # the frozen VHD is still in use by this VM: another VM cannot attach it
    ide0 = next(i for i in find(settings_of(svc, other), "Microsoft Emulated IDE Controller")
                if i["Address"] == "0")
    rv, _ = svc.vsms("AddVirtualSystemResources", TargetSystem=other, ResourceSettingData=[
        text(rasd(ResourceType=22, InstanceID="d2", Parent=ide0.path, Address="1")),
        text(rasd(ResourceType=21, ResourceSubType="Microsoft Virtual Hard Disk", Parent="d2",
                  Connection=[str(vhd)]))])
    assert rv == ReturnCode.SYSTEM_IN_USE, rv
    # a RASD of the snapshot is not its settings
    rasd_path = svc.associators(s1.path, assoc_class=names.VSSD_COMPONENT)[0].path
    assert vsms("RemoveVirtualSystemSnapshot",
                SnapshotSettingData=rasd_path)[0] == ReturnCode.INVALID_PARAMETER
    # removing a snapshot while another change of the VM runs; the VM shows what runs
    held = svc.transitions.begin(guid, Transition(None, RequestedState.NOT_APPLICABLE,
                                                  OperationalStatus.EXPORTING, "an export"))
    try:
        assert vsms("RemoveVirtualSystemSnapshot",
                    SnapshotSettingData=s1.path)[0] == ReturnCode.INVALID_STATE
        assert vsms("CreateVirtualSystemSnapshot", SourceSystem=vm)[0] == \
            ReturnCode.INVALID_STATE
    finally:
        held.release()
    # state rules: a running VM takes a disk-only snapshot and applies none
    change_state(svc, vm, 2)
    try:
        rv, out = svc.vsms("CreateVirtualSystemSnapshot", SourceSystem=vm)
        job = ok_job(svc, rv, out)
        assert "disk-only" in job["Description"] and "memory" in job["Description"]
        live = svc.get(out["SnapshotSettingData"])
        assert live.path is not None
        path, fmt = current_disk(svc, vm)
        assert fmt is ImageFormat.QCOW2 and backing_of(path) != ""
        # the running QEMU writes the new overlay now, not the frozen image
        conn = libvirt.open(svc.host.uri)
        try:
            xml = conn.lookupByUUIDString(guid).XMLDesc(0)  # the live definition
        finally:
            conn.close()
        assert f"<source file='{path}'" in xml, xml
        assert vsms("ApplyVirtualSystemSnapshotEx", ComputerSystem=vm,
                    SnapshotSettingData=s1.path)[0] == ReturnCode.INVALID_STATE
        before = current_disk(svc, vm)
        # removing works while it runs: the frozen image below the one it writes is merged
        # live (tests/snapshots/test_live_merge.py), the one it writes stays
        rv, out = svc.vsms("RemoveVirtualSystemSnapshot", SnapshotSettingData=s1.path)
        ok_job(svc, rv, out)
        assert current_disk(svc, vm) == before
        assert svc.get(vm)["EnabledState"] == 2
    finally:
        change_state(svc, vm, 3)
    assert [s.id for s in svc.host.get_system(guid).snapshots] == [  # type: ignore[union-attr]
        live["InstanceID"][10:]]
    # applied with the VM off: the VM ends off (the snapshot has no memory state)
    rv, out = svc.vsms("ApplyVirtualSystemSnapshotEx", ComputerSystem=vm,
                       SnapshotSettingData=live.path)
    ok_job(svc, rv, out)
    assert svc.get(vm)["EnabledState"] == 3
    # the next snapshot operations with the VM off finish the deferred merges
    rv, out = svc.vsms("RemoveVirtualSystemSnapshotTree", SnapshotSettingData=live.path)
    ok_job(svc, rv, out)
    assert current_disk(svc, vm) == (str(vhd), ImageFormat.VHD)
    assert overlays(storage_root, vm) == []
    # a disk detached from the VM keeps its file, even when it is a snapshot overlay
    s3 = snapshot(svc, vm)
    assert s3.path is not None
    detached, _ = current_disk(svc, vm)
    image = find(settings_of(svc, vm), "Microsoft Virtual Hard Disk")[0]
    rv, _ = svc.vsms("RemoveVirtualSystemResources", TargetSystem=vm,
                     ResourceSettingData=[image.path])
    assert rv == ReturnCode.COMPLETED, rv
    rv, out = svc.vsms("RemoveVirtualSystemSnapshotTree", SnapshotSettingData=s3.path)
    ok_job(svc, rv, out)
    assert Path(detached).is_file() and vhd.is_file()


def qcow2_vm(svc: Harness, storage_root: Path) -> tuple[pywbem.CIMInstanceName, Path]:
    disk = storage_root / f"{uuid.uuid4().hex[:8]}.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "16M"], check=True,
                   timeout=60)
    vm = define(svc, f"snap-qcow2-{uuid.uuid4().hex[:8]}")
    ide0 = next(i for i in find(settings_of(svc, vm), "Microsoft Emulated IDE Controller")
                if i["Address"] == "0")
    rv, _ = svc.vsms("AddVirtualSystemResources", TargetSystem=vm, ResourceSettingData=[
        text(rasd(ResourceType=22, InstanceID="d", Parent=ide0.path, Address="0")),
        text(rasd(ResourceType=21, ResourceSubType="Microsoft Virtual Hard Disk", Parent="d",
                  Connection=[str(disk)]))])
    assert rv == ReturnCode.COMPLETED, rv
    return vm, disk


def test_running_saved_and_memory(svc: Harness, storage_root: Path) -> None:
    """A running VM on a qcow2 disk: its snapshot holds the memory state (the VM keeps
    running); saved, its snapshot holds a copy of the saved state and it stays saved, its saved
    state resuming onto the new overlay; each snapshot applied with the VM off gives a saved
    (Suspended) VM that resumes running; removing the tree merges everything back."""
    vm, disk = qcow2_vm(svc, storage_root)
    guid = str(vm["Name"])
    change_state(svc, vm, 2)
    try:
        rv, out = svc.vsms("CreateVirtualSystemSnapshot", SourceSystem=vm)
        job = ok_job(svc, rv, out)
        assert "with its memory state" in job["Description"], job["Description"]
        assert svc.get(vm)["EnabledState"] == 2
        s1 = svc.get(out["SnapshotSettingData"])
        change_state(svc, vm, 32769)
        rv, out = svc.vsms("CreateVirtualSystemSnapshot", SourceSystem=vm)
        job = ok_job(svc, rv, out)
        assert "with its memory state" in job["Description"], job["Description"]
        assert svc.get(vm)["EnabledState"] == 32769  # still saved
        s2 = svc.get(out["SnapshotSettingData"])
        path, _ = current_disk(svc, vm)
        change_state(svc, vm, 2)  # resumes from the saved state, onto the newest overlay
        conn = libvirt.open(svc.host.uri)
        try:
            xml = conn.lookupByUUIDString(guid).XMLDesc(0)
        finally:
            conn.close()
        assert f"<source file='{path}'" in xml, xml
    finally:
        change_state(svc, vm, 3)
    assert s1.path is not None
    first, second = svc.host.get_system(guid).snapshots  # type: ignore[union-attr]
    assert first.memory and Path(first.memory).is_file()
    assert Path(first.memory).parent == storage_root / SNAPSHOTS / guid
    # the saved VM's snapshot: a copy of its saved state, which libvirt reads as that VM's
    assert second.memory == str(storage_root / SNAPSHOTS / guid / f"{second.id}.save")
    conn = libvirt.open(svc.host.uri)
    try:
        assert guid.lower() in conn.saveImageGetXMLDesc(second.memory, 0).lower()
    finally:
        conn.close()
    assert s2.path is not None
    ok_job(svc, *svc.vsms("ApplyVirtualSystemSnapshotEx", ComputerSystem=vm,
                          SnapshotSettingData=s2.path))
    assert svc.get(vm)["EnabledState"] == 32769  # Suspended with the copied state
    change_state(svc, vm, 2)
    try:
        assert svc.get(vm)["EnabledState"] == 2
    finally:
        change_state(svc, vm, 3)
    rv, out = svc.vsms("ApplyVirtualSystemSnapshotEx", ComputerSystem=vm,
                       SnapshotSettingData=s1.path)
    ok_job(svc, rv, out)
    assert svc.get(vm)["EnabledState"] == 32769  # Suspended: the memory state is back
    change_state(svc, vm, 2)
    try:
        assert svc.get(vm)["EnabledState"] == 2
    finally:
        change_state(svc, vm, 3)
    rv, out = svc.vsms("RemoveVirtualSystemSnapshotTree", SnapshotSettingData=s1.path)
    ok_job(svc, rv, out)
    assert current_disk(svc, vm) == (str(disk), ImageFormat.QCOW2)
    assert overlays(storage_root, vm) == [] and not Path(first.memory).exists()
    assert not Path(second.memory).exists()
