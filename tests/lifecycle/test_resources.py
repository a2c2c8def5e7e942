"""Adding, modifying and removing devices from client RASDs: what is accepted, what is refused."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import pywbem

from vsms.cim import names
from vsms.errors import InvalidParameter, NotSupported, VsmsError
from vsms.mapping import checks, ids
from vsms.mapping.devices import Kind, classify
from vsms.mapping.resources import ResourceEnv, add_resource, modify_resource, remove_resource
from vsms.mapping.system import settings_instances
from vsms.model.vm import ControllerKind, DriveKind, ImageFormat, VirtualSystem, new_guid


def rasd(classname: str = names.RASD, **props: Any) -> pywbem.CIMInstance:
    values: dict[str, Any] = {}
    for k, v in props.items():
        values[k] = pywbem.Uint16(v) if k == "ResourceType" else v
    return pywbem.CIMInstance(classname, properties=values)


def ref(vm: VirtualSystem, dev_id: str) -> str:
    return ids.ref_text(names.RASD, ids.device_id(vm.guid, dev_id))


def fresh() -> VirtualSystem:
    from vsms.model.vm import default_controllers
    return VirtualSystem(guid=new_guid(), name="Fresh", controllers=default_controllers())


def drive_rasd(vm: VirtualSystem, ctrl: int = 0, slot: Any = None, dvd: bool = False,
               **extra: Any) -> pywbem.CIMInstance:
    sub = "Microsoft Synthetic DVD Drive" if dvd else "Microsoft Synthetic Disk Drive"
    props: dict[str, Any] = {"ResourceType": 16 if dvd else 22, "ResourceSubType": sub,
                             "Parent": ref(vm, vm.controllers[ctrl].dev_id), **extra}
    if slot is not None:
        props["Address"] = str(slot)
    return rasd(**props)


def refused(exc: type[VsmsError], pattern: str, fn: Any, *args: Any, **kw: Any) -> None:
    with pytest.raises(exc, match=pattern):
        fn(*args, **kw)


def test_classify() -> None:
    assert classify(rasd(ResourceType=22, ResourceSubType="Microsoft Synthetic Disk Drive")) \
        is Kind.DISK_DRIVE
    assert classify(rasd(names.MEMORY_SD)) is Kind.MEMORY
    assert classify(rasd(ResourceType=21)) is Kind.IMAGE
    assert classify(rasd(ResourceType=10)) is Kind.SYNTHETIC_NIC
    assert classify(rasd(names.EMULATED_NIC_SD, ResourceType=10)) is Kind.EMULATED_NIC
    assert classify(rasd("CIM_ResourceAllocationSettingData", ResourceSubType="Microsoft ISO Image",
                         ResourceType=21)) is Kind.ISO_IMAGE
    refused(InvalidParameter, "unknown ResourceSubType 'Contoso Widget'", classify,
            rasd(ResourceType=1, ResourceSubType="Contoso Widget"))
    refused(InvalidParameter, "ResourceType 99 .unknown", classify, rasd(ResourceType=99))
    refused(NotSupported, "ResourceType 14 .floppy drive", classify, rasd(ResourceType=14))
    refused(NotSupported, "Microsoft Physical Disk Drive", classify,
            rasd(ResourceType=22, ResourceSubType="Microsoft Physical Disk Drive"))
    refused(InvalidParameter, "does not match a disk drive", classify,
            rasd(ResourceType=16, ResourceSubType="Microsoft Synthetic Disk Drive"))
    refused(InvalidParameter, "neither ResourceType nor ResourceSubType", classify, rasd())
    refused(InvalidParameter, "not a resource allocation setting data", classify,
            pywbem.CIMInstance(names.VSSD, properties={"ElementName": "x"}))


def test_add_drive_and_image_in_free_slots(env: ResourceEnv) -> None:
    vm = fresh()
    d1 = add_resource(vm, drive_rasd(vm), env)
    d2 = add_resource(vm, drive_rasd(vm), env)
    assert [(d.dev_id, d.address) for d in vm.drives] == [(d1, 0), (d2, 1)]
    img = add_resource(vm, rasd(ResourceType=21, ResourceSubType="Microsoft Virtual Hard Disk",
                                Parent=ref(vm, d1), Connection=["/srv/a.vhdx"]), env)
    media = vm.media_in(d1)
    assert media is not None and (media.dev_id, media.format) == (img, ImageFormat.VHDX)
    assert checks.problems(vm, checks.MACHINE_LIMITS) == []


def test_a_rasd_may_name_an_earlier_one_of_the_same_call(env: ResourceEnv) -> None:
    vm = fresh()
    scsi = rasd(ResourceType=6, ResourceSubType="Microsoft Synthetic SCSI Controller",
                InstanceID="Microsoft:Definition\\client-scsi")
    disk = rasd(ResourceType=22, InstanceID="client-disk", Address="3",
                Parent='Msvm_ResourceAllocationSettingData.InstanceID='
                       '"Microsoft:Definition\\\\client-scsi"')
    image = rasd(ResourceType=21, Parent="client-disk", Connection=["/srv/b.qcow2"])
    scsi_id, disk_id, image_id = (add_resource(vm, r, env) for r in (scsi, disk, image))
    drive = vm.drive(disk_id)
    assert drive is not None and (drive.controller_id, drive.address) == (scsi_id, 3)
    media = vm.media_in(disk_id)
    assert media is not None and (media.dev_id, media.format) == (image_id, ImageFormat.QCOW2)
    assert vm.controller(scsi_id) is not None
    assert vm.controller(scsi_id).kind is ControllerKind.SCSI  # type: ignore[union-attr]


def test_add_refusals_name_the_resource_and_the_problem(env: ResourceEnv, vm: VirtualSystem
                                                        ) -> None:
    disk_drive = vm.drives[0]
    refused(InvalidParameter, "slot 0 of IDE controller 0 is taken by disk drive", add_resource,
            vm, drive_rasd(vm, 0, 0), env)
    refused(InvalidParameter, "slot 2 does not exist on IDE controller 0", add_resource,
            vm, drive_rasd(vm, 0, 2), env)
    refused(InvalidParameter, "IDE controller 1 has no free slot", add_resource,
            vm, drive_rasd(vm, 1, dvd=True), env)
    refused(InvalidParameter, "parent controller NOPE not found", add_resource, vm,
            rasd(ResourceType=22, Parent=ref(vm, "NOPE")), env)
    refused(InvalidParameter, "has no Parent", add_resource, vm, rasd(ResourceType=22), env)
    refused(InvalidParameter, "belongs to virtual machine", add_resource, vm,
            rasd(ResourceType=22, Parent=ids.device_id(new_guid(), "X")), env)
    refused(InvalidParameter, "DVD drives attach to an IDE controller", add_resource, vm,
            drive_rasd(vm, 2, dvd=True), env)
    refused(InvalidParameter, "at most 2 IDE controllers", add_resource, vm,
            rasd(ResourceType=5), env)
    refused(InvalidParameter, "already holds /srv/disks/boot.vhd", add_resource, vm,
            rasd(ResourceType=21, Parent=ref(vm, disk_drive.dev_id), Connection=["/srv/x.vhd"]),
            env)
    empty_dvd = vm.drives[2]
    refused(InvalidParameter, "a hard disk image goes in a disk drive", add_resource, vm,
            rasd(ResourceType=21, ResourceSubType="Microsoft Virtual Hard Disk",
                 Parent=ref(vm, empty_dvd.dev_id), Connection=["/srv/x.vhd"]), env)
    refused(InvalidParameter, "image /missing.iso does not exist", add_resource, vm,
            rasd(ResourceType=21, Parent=ref(vm, empty_dvd.dev_id),
                 Connection=["/missing.iso"]), env)
    refused(InvalidParameter, "has no image path", add_resource, vm,
            rasd(ResourceType=21, Parent=ref(vm, empty_dvd.dev_id)), env)
    refused(InvalidParameter, "exactly one memory setting", add_resource, vm,
            rasd(names.MEMORY_SD, VirtualQuantity=pywbem.Uint64(64)), env)
    refused(InvalidParameter, "is not a MAC address", add_resource, vm,
            rasd(names.SYNTHETIC_NIC_SD, Address="00-15-5D-XX"), env)
    refused(InvalidParameter, "already used by another network adapter", add_resource, vm,
            rasd(names.SYNTHETIC_NIC_SD, Address="00155D010203"), env)
    refused(NotSupported, "switch ports cannot be connected here", add_resource, vm,
            rasd(names.SYNTHETIC_NIC_SD, Connection=['\\\\H\\root:Msvm_SwitchPort.Name="x"']),
            env)
    refused(InvalidParameter, "nor a network name", add_resource, vm,
            rasd(names.SYNTHETIC_NIC_SD, Connection=['a"b']), env)


def test_scsi_controllers_are_limited_to_four(env: ResourceEnv) -> None:
    vm = fresh()
    for _ in range(4):
        add_resource(vm, rasd(ResourceType=6), env)
    assert sorted(c.index for c in vm.controllers if c.kind is ControllerKind.SCSI) == [0, 1, 2, 3]
    refused(InvalidParameter, "at most 4 SCSI controllers", add_resource, vm,
            rasd(ResourceType=6), env)


def test_nics_get_a_hyperv_mac_unless_given(env: ResourceEnv) -> None:
    vm = fresh()
    env.macs_in_use = frozenset({"00:15:5D:00:00:01"})
    generated = add_resource(vm, rasd(names.SYNTHETIC_NIC_SD, StaticMacAddress=False,
                                      Address="00155D000001"), env)
    given = add_resource(vm, rasd(names.EMULATED_NIC_SD, Address="00155d0a0b0c",
                                  Connection=["lan"]), env)
    nics = {n.dev_id: n for n in vm.nics}
    assert nics[generated].mac.startswith("00:15:5D:")
    assert nics[generated].mac != "00:15:5D:00:00:01"
    assert (nics[given].mac, nics[given].switch, nics[given].synthetic) == (
        "00:15:5D:0A:0B:0C", "lan", False)


def test_defining_applies_memory_and_processor(env: ResourceEnv) -> None:
    vm = fresh()
    add_resource(vm, rasd(names.MEMORY_SD, VirtualQuantity=pywbem.Uint64(1024)), env,
                 defining=True)
    add_resource(vm, rasd(ResourceType=3, VirtualQuantity=pywbem.Uint64(2)), env, defining=True)
    assert (vm.memory_mb, vm.processors) == (1024, 2)
    add_resource(vm, rasd(names.MEMORY_SD, VirtualQuantity=pywbem.Uint64(1)), env,
                 defining=True)  # the range is the validator's, with the host's limits
    assert checks.problems(vm, checks.MACHINE_LIMITS) == [
        "memory of 1 MB is out of range: give 8 to 16777216 MB (the most the pc machine type "
        "allows)"]
    refused(NotSupported, "dynamic memory", add_resource, vm,
            rasd(names.MEMORY_SD, VirtualQuantity=pywbem.Uint64(512), DynamicMemoryEnabled=True),
            env, defining=True)


def test_modify_from_the_returned_instances(env: ResourceEnv, vm: VirtualSystem) -> None:
    found = {str(i["InstanceID"]): i for i in settings_instances(vm)}

    def inst(dev_id: str) -> pywbem.CIMInstance:
        return copy.deepcopy(found[ids.device_id(vm.guid, dev_id)])

    mem = inst(vm.memory_dev_id)
    mem["VirtualQuantity"] = pywbem.Uint64(2048)
    modify_resource(vm, mem, env)
    nic = inst(vm.nics[0].dev_id)
    nic["Address"], nic["Connection"] = "00155D111111", ["wan"]
    modify_resource(vm, nic, env)
    dvd = inst(vm.drives[2].dev_id)  # the empty DVD drive, IDE 1 slot 1 -> IDE 0 slot 1
    dvd["Parent"], dvd["Address"] = ref(vm, vm.controllers[0].dev_id), "1"
    modify_resource(vm, dvd, env)
    iso = inst(vm.media[1].dev_id)
    iso["Connection"] = ["/srv/iso/other.iso"]
    modify_resource(vm, iso, env)
    assert vm.memory_mb == 2048
    assert (vm.nics[0].mac, vm.nics[0].switch) == ("00:15:5D:11:11:11", "wan")
    assert (vm.drives[2].controller_id, vm.drives[2].address) == (vm.controllers[0].dev_id, 1)
    assert vm.media[1].path == "/srv/iso/other.iso"
    assert checks.problems(vm, checks.MACHINE_LIMITS) == []


def test_modify_refusals(env: ResourceEnv, vm: VirtualSystem) -> None:
    found = {str(i["InstanceID"]): i for i in settings_instances(vm)}
    mem = found[ids.device_id(vm.guid, vm.memory_dev_id)]
    as_nic = copy.deepcopy(found[ids.device_id(vm.guid, vm.nics[0].dev_id)])
    as_nic.path = None
    as_nic["InstanceID"] = mem["InstanceID"]
    refused(InvalidParameter, "is not a network adapter", modify_resource, vm, as_nic, env)
    refused(InvalidParameter, "has no InstanceID", modify_resource, vm, rasd(ResourceType=4), env)
    other = rasd(names.MEMORY_SD, InstanceID=ids.device_id(new_guid(), vm.memory_dev_id))
    refused(InvalidParameter, "belongs to virtual machine", modify_resource, vm, other, env)
    gone = rasd(ResourceType=22, InstanceID=ids.device_id(vm.guid, "GONE"))
    refused(InvalidParameter, "has no device GONE", modify_resource, vm, gone, env)
    disk = copy.deepcopy(found[ids.device_id(vm.guid, vm.drives[0].dev_id)])
    disk.path = None
    disk["Address"] = "1"  # IDE 0 slot 1 is free: fine; slot of the DVD on IDE 1 is not
    disk["Parent"] = ref(vm, vm.controllers[1].dev_id)
    refused(InvalidParameter, "slot 1 of IDE controller 1 is taken", modify_resource, vm, disk,
            env)


def test_remove(vm: VirtualSystem) -> None:
    scsi = vm.controllers[2]
    removed = remove_resource(vm, ids.setting_path(names.RASD, ids.device_id(vm.guid,
                                                                              scsi.dev_id)))
    assert len(removed) == 3  # controller, its disk drive, the image in it
    assert all(d.controller_id != scsi.dev_id for d in vm.drives)
    nic = vm.nics[1].dev_id
    assert remove_resource(vm, ref(vm, nic)) == [nic]
    iso = vm.media[1].dev_id
    assert remove_resource(vm, ids.device_id(vm.guid, iso)) == [iso]
    assert checks.problems(vm, checks.MACHINE_LIMITS) == []
    refused(InvalidParameter, "cannot be removed: every virtual machine has its two IDE",
            remove_resource, vm, ref(vm, vm.controllers[0].dev_id))
    refused(InvalidParameter, "memory setting of 'Full VM' cannot be removed", remove_resource,
            vm, ref(vm, vm.memory_dev_id))
    refused(InvalidParameter, "has no device", remove_resource, vm, ref(vm, nic))
    refused(InvalidParameter, "belongs to virtual machine", remove_resource, vm,
            ids.device_id(new_guid(), nic))


def test_checks_find_broken_models(vm: VirtualSystem) -> None:
    bad = copy.deepcopy(vm)
    bad.drives[1].kind = DriveKind.DISK  # a disk drive holding an ISO
    bad.nics[1].mac = bad.nics[0].mac
    bad.memory_mb = 0
    problems = checks.problems(bad, checks.MACHINE_LIMITS)
    assert any("has format raw" in p for p in problems)
    assert any("used by 2 network adapters" in p for p in problems)
    assert any("memory of 0 MB" in p for p in problems)
