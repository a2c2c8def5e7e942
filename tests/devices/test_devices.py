"""The logical devices of a VM (issue 12 item 4) over CIM-XML against qemu:///system: every
class enumerable and gettable with every property of its class, each device associated with its
VM and with its RASD both ways, controller → drive → image, the BIOS, and the states that follow
the VM through start, pause and turn off (a real QEMU)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import pywbem

from tests.e2e import wbemflow
from tests.e2e.conftest import Served
from vsms.cim import names
from vsms.cim.enums import EnabledState
from vsms.mapping import components as mc
from vsms.mapping import logical_devices as ld

pytestmark = pytest.mark.qemu

# instances per class of a VM with one VHD and one synthetic adapter
EXPECTED = {ld.PROCESSOR: 1, ld.MEMORY: 1, ld.IDE_CONTROLLER: 2, ld.SCSI_CONTROLLER: 0,
            ld.DISK_DRIVE: 1, ld.DVD_DRIVE: 0, ld.LOGICAL_DISK: 1, ld.SYNTHETIC_PORT: 1,
            ld.EMULATED_PORT: 0, ld.KEYBOARD: 1, ld.MOUSE: 1, ld.VIDEO_HEAD: 1, ld.DISPLAY: 1,
            ld.SERIAL_CONTROLLER: 1, ld.SERIAL_PORT: 2, ld.DISKETTE_CONTROLLER: 1,
            ld.DISKETTE_DRIVE: 1, **{c: 1 for c in mc.COMPONENT_CLASSES}}


@dataclass
class Vm:
    served: Served
    conn: pywbem.WBEMConnection
    path: pywbem.CIMInstanceName
    guid: str

    def devices(self, classname: str = "CIM_LogicalDevice") -> list[pywbem.CIMInstance]:
        return [i for i in self.conn.EnumerateInstances(classname)
                if str(i["SystemName"]).upper() == self.guid.upper()]

    def one(self, classname: str) -> pywbem.CIMInstance:
        (found,) = self.devices(classname)
        return found


@pytest.fixture
def vm(served: Served, conn: pywbem.WBEMConnection) -> Iterator[Vm]:
    name = f"devices-{served.token}"
    path = wbemflow.vm_with_disk(conn, served.root, name)
    guid = str(path.keybindings["Name"])
    served.guids.add(guid.upper())
    yield Vm(served, conn, path, guid)


def keys(path: pywbem.CIMInstanceName) -> tuple[str, frozenset[tuple[str, str]]]:
    return path.classname.lower(), frozenset((k.lower(), str(v))
                                             for k, v in path.keybindings.items())


def test_every_device_class_is_enumerable_and_gettable(vm: Vm) -> None:
    conn = vm.conn
    for classname, count in EXPECTED.items():
        found = vm.devices(classname)
        assert len(found) == count, (classname, found)
        declared = {n.lower() for n in conn.GetClass(classname, LocalOnly=False).properties}
        for inst in found:
            assert inst.classname == classname
            assert {n.lower() for n in inst.properties} == declared, classname
            assert inst["SystemCreationClassName"] == names.COMPUTER_SYSTEM
            assert inst["CreationClassName"] == classname
            assert str(inst["DeviceID"]).startswith("Microsoft:")
            got = conn.GetInstance(inst.path)
            assert got.path is not None and keys(got.path) == keys(inst.path)
            assert dict(got.items()) == dict(inst.items()), classname
    # the base class lists them all, each once
    every = vm.devices()
    assert len(every) == sum(EXPECTED.values())
    assert len({keys(i.path) for i in every}) == len(every)
    # values from the model: memory in MB blocks, the adapter's MAC, the image path
    memory = vm.one(ld.MEMORY)
    assert memory["NumberOfBlocks"] == 128 and memory["BlockSize"] == 1048576
    settings = wbemflow.settings_of(conn, vm.path)
    nic = next(r for r in settings if r["ResourceType"] == 10)
    assert vm.one(ld.SYNTHETIC_PORT)["PermanentAddress"] == nic["Address"]
    image = next(r for r in settings if r["ResourceType"] == 21)
    assert vm.one(ld.LOGICAL_DISK)["Name"] == image["Connection"][0]
    ports = sorted(str(p["ElementName"]) for p in vm.devices(ld.SERIAL_PORT))
    assert ports == ["COM 1", "COM 2"]
    # a device of no VM is not found
    gone = vm.one(ld.KEYBOARD).path.copy()
    gone.keybindings["SystemName"] = "00000000-0000-0000-0000-000000000000"
    with pytest.raises(pywbem.CIMError) as err:
        conn.GetInstance(gone)
    assert err.value.status_code == pywbem.CIM_ERR_NOT_FOUND


def test_devices_and_the_vm_both_ways(vm: Vm) -> None:
    conn = vm.conn
    devices = {keys(d.path) for d in vm.devices()}
    parts = conn.Associators(vm.path, AssocClass=ld.SYSTEM_DEVICE)
    assert {keys(p.path) for p in parts} == devices
    refs = conn.References(vm.path, ResultClass=ld.SYSTEM_DEVICE)
    assert len(refs) == len(devices)
    for dev in vm.devices():
        (system,) = conn.Associators(dev.path, AssocClass=ld.SYSTEM_DEVICE)
        assert keys(system.path) == keys(vm.path)
    (bios,) = conn.Associators(vm.path, AssocClass=ld.SYSTEM_BIOS)
    (vssd,) = conn.Associators(vm.path, AssocClass=names.SETTINGS_DEFINE_STATE)
    assert bios.classname == ld.BIOS
    for prop in ("BIOSGUID", "BIOSSerialNumber", "BaseBoardSerialNumber", "ChassisSerialNumber",
                 "BootOrder"):
        assert bios[prop] == vssd[prop], prop
    (back,) = conn.Associators(bios.path, AssocClass=ld.SYSTEM_BIOS)
    assert keys(back.path) == keys(vm.path)


def test_each_device_and_its_rasd_both_ways(vm: Vm) -> None:
    conn = vm.conn
    rasds = {str(r["InstanceID"]): r for r in wbemflow.settings_of(conn, vm.path)}
    with_rasd = 0
    for dev in vm.devices():
        found = conn.Associators(dev.path, AssocClass=names.ELEMENT_SETTING_DATA)
        if dev.classname in (ld.KEYBOARD, ld.MOUSE, ld.DISPLAY, ld.VIDEO_HEAD,
                             ld.SERIAL_CONTROLLER, ld.DISKETTE_CONTROLLER, ld.DISKETTE_DRIVE):
            assert found == [], dev.classname
            continue
        (rasd,) = found
        iid = str(rasd["InstanceID"])
        assert iid in rasds and iid.startswith(f"Microsoft:{vm.guid}")
        back = conn.Associators(rasd.path, AssocClass=names.ELEMENT_SETTING_DATA,
                                ResultClass="CIM_LogicalDevice")
        assert keys(dev.path) in {keys(b.path) for b in back}
        (ref,) = conn.References(dev.path, ResultClass=names.ELEMENT_SETTING_DATA)
        assert ref["IsCurrent"] == 1
        with_rasd += 1
    # every RASD is the setting of one device (memory, processor, 2 IDE, drive, image,
    # adapter, COM 1, COM 2, the five integration components)
    assert with_rasd == len(rasds) == 14
    # the VM keeps its global settings through the same association
    (vsgsd,) = conn.Associators(vm.path, AssocClass=names.ELEMENT_SETTING_DATA)
    assert vsgsd.classname == names.VSGSD


def test_controller_drive_image_chain(vm: Vm) -> None:
    conn = vm.conn
    (drive,) = vm.devices(ld.DISK_DRIVE)
    (controller,) = conn.Associators(drive.path, AssocClass=ld.CONTROLLED_BY,
                                     ResultRole="Antecedent")
    assert controller.classname == ld.IDE_CONTROLLER
    ide = {str(c["DeviceID"]): c for c in vm.devices(ld.IDE_CONTROLLER)}
    assert str(controller["DeviceID"]) in ide
    (link,) = conn.References(drive.path, ResultClass=ld.CONTROLLED_BY)
    assert link["DeviceNumber"] == "0"
    (disk,) = conn.Associators(drive.path, AssocClass=ld.MEDIA_PRESENT)
    assert disk.classname == ld.LOGICAL_DISK and str(disk["Name"]).endswith(".vhd")
    (present,) = conn.References(disk.path, ResultClass=ld.MEDIA_PRESENT)
    assert present["FixedMedia"] is True
    ports = conn.Associators(vm.one(ld.SERIAL_CONTROLLER).path, AssocClass=ld.PORT_ON_CONTROLLER)
    assert sorted(str(p["Name"]) for p in ports) == ["COM 1", "COM 2"]
    (head,) = conn.Associators(vm.one(ld.DISPLAY).path, AssocClass=ld.HEAD_ON_CONTROLLER)
    assert head.classname == ld.VIDEO_HEAD
    (floppy,) = conn.Associators(vm.one(ld.DISKETTE_CONTROLLER).path,
                                 AssocClass=ld.CONTROLLED_BY)
    assert floppy.classname == ld.DISKETTE_DRIVE


def states(vm: Vm) -> dict[str, tuple[int, int]]:
    """(EnabledState, Availability) per class; both IDE controllers must agree."""
    out = {c: (int(vm.one(c)["EnabledState"]), int(vm.one(c)["Availability"]))
           for c in (ld.MOUSE, ld.DISPLAY)}
    (out[ld.IDE_CONTROLLER],) = {(int(i["EnabledState"]), int(i["Availability"]))
                                 for i in vm.devices(ld.IDE_CONTROLLER)}
    out[ld.PROCESSOR] = (int(vm.one(ld.PROCESSOR)["EnabledState"]), 0)
    out[ld.VIDEO_HEAD] = (int(vm.one(ld.VIDEO_HEAD)["EnabledState"]), 0)
    return out


def test_states_follow_the_vm(vm: Vm) -> None:
    follow = (ld.MOUSE, ld.DISPLAY, ld.IDE_CONTROLLER)
    fixed = {ld.PROCESSOR: (5, 0), ld.VIDEO_HEAD: (2, 0)}  # "always" on their pages
    off = states(vm)
    assert {c: off[c] for c in follow} == dict.fromkeys(follow, (3, 8))
    wbemflow.request_state(vm.conn, vm.path, EnabledState.ENABLED)
    try:
        running = states(vm)
        assert {c: running[c] for c in follow} == dict.fromkeys(follow, (2, 3))
        wbemflow.request_state(vm.conn, vm.path, EnabledState.PAUSED)
        paused = states(vm)
        assert {c: paused[c] for c in follow} == dict.fromkeys(follow, (9, 18))
        for seen in (off, running, paused):
            assert {c: seen[c] for c in fixed} == fixed
        # GetInstance agrees with enumeration
        assert vm.conn.GetInstance(vm.one(ld.MOUSE).path)["EnabledState"] == 9
    finally:
        wbemflow.request_state(vm.conn, vm.path, EnabledState.DISABLED)
    assert {c: states(vm)[c] for c in follow} == dict.fromkeys(follow, (3, 8))
