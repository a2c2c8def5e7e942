"""CIM <-> model mapping: identifiers, instances, round trips, settings changes."""

from __future__ import annotations

import copy

import pytest
import pywbem

from vsms.cim import names
from vsms.cim.enums import EnabledState, OperationalStatus, RequestedState
from vsms.errors import InvalidParameter, ValidationFailed
from vsms.mapping import ids
from vsms.mapping.system import (
    apply_global_settings,
    apply_system_settings,
    computer_system,
    settings_instances,
    system_from_instances,
)
from vsms.mapping.vmjson import from_json, to_json
from vsms.model.vm import ImageFormat, VirtualSystem


def by_id(insts: list[pywbem.CIMInstance]) -> dict[str, pywbem.CIMInstance]:
    return {str(i["InstanceID"]): i for i in insts}


def test_instance_ids_round_trip() -> None:
    guid = "5D8E4B21-0B1C-4F5E-9A57-1B2C3D4E5F60"
    assert ids.vssd_id(guid) == f"Microsoft:{guid}"
    assert ids.vsgsd_id(guid) == f"Microsoft:{guid}\\Global"
    assert ids.device_id(guid, "ABC") == f"Microsoft:{guid}\\ABC"
    assert ids.parse_device_id(f"microsoft:{guid.lower()}\\abc") == (guid, "ABC")
    assert ids.parse_system_id(ids.vsgsd_id(guid)) == (guid, True)
    for bad in ("", "Microsoft:", f"Microsoft:{guid}", f"Microsoft:{guid}\\Global", "other:x\\y"):
        with pytest.raises(InvalidParameter):
            ids.parse_device_id(bad)


def test_reference_forms_all_give_the_instance_id() -> None:
    iid = "Microsoft:5D8E4B21-0B1C-4F5E-9A57-1B2C3D4E5F60\\DEV-1"
    path = ids.setting_path(names.RASD, iid)
    escaped = iid.replace("\\", "\\\\")
    forms = [path, path.to_wbem_uri(), str(path), iid,
             f'\\\\HOST\\root\\virtualization:{names.RASD}.InstanceID="{escaped}"',
             f'{names.RASD}.InstanceID="{iid}"']
    assert {ids.instance_id_from_ref(f) for f in forms} == {iid}
    with pytest.raises(InvalidParameter):
        ids.instance_id_from_ref("Msvm_ComputerSystem.Name=\"x\"")


def test_mac_spellings() -> None:
    assert ids.mac_from_address("00155d0a0b0c") == "00:15:5D:0A:0B:0C"
    assert ids.mac_from_address("00-15-5D-0A-0B-0C") == "00:15:5D:0A:0B:0C"
    assert ids.address_from_mac("00:15:5d:0a:0b:0c") == "00155D0A0B0C"
    for bad in ("00155D0A0B", "zz155D0A0B0C", "01155D0A0B0C", "000000000000"):
        with pytest.raises(InvalidParameter):
            ids.mac_from_address(bad)


def test_settings_instances_describe_every_device(vm: VirtualSystem) -> None:
    insts = settings_instances(vm)
    classes = [i.classname for i in insts]
    assert classes[:2] == [names.VSSD, names.VSGSD]
    assert classes.count(names.MEMORY_SD) == classes.count(names.PROCESSOR_SD) == 1
    assert classes.count(names.SYNTHETIC_NIC_SD) == classes.count(names.EMULATED_NIC_SD) == 1
    assert len(insts) == 2 + 2 + 3 + 4 + 3 + 2 + 2  # … and COM 1, COM 2
    for inst in insts:
        assert inst.path is not None and inst.path["InstanceID"] == inst["InstanceID"]
    found = by_id(insts)
    vssd = found[ids.vssd_id(vm.guid)]
    assert (vssd["SettingType"], vssd["VirtualSystemType"]) == (3, 301)
    assert (vssd["ElementName"], vssd["Notes"], list(vssd["BootOrder"])) == (
        "Full VM", "some notes", [2, 1, 3, 0])
    vsgsd = found[ids.vsgsd_id(vm.guid)]
    assert (vsgsd["ExternalDataRoot"], vsgsd["SystemName"]) == ("/srv/vms", vm.guid)
    mem = found[ids.device_id(vm.guid, vm.memory_dev_id)]
    assert (mem["ResourceType"], mem["VirtualQuantity"], mem["AllocationUnits"]) == (4, 1024, "MB")
    cpu = found[ids.device_id(vm.guid, vm.processor_dev_id)]
    assert (cpu["ResourceType"], cpu["VirtualQuantity"]) == (3, 2)
    disk = vm.drives[0]
    drive = found[ids.device_id(vm.guid, disk.dev_id)]
    assert (drive["ResourceType"], drive["ResourceSubType"], drive["Address"]) == (
        22, "Microsoft Synthetic Disk Drive", "0")
    assert ids.instance_id_from_ref(drive["Parent"]) == ids.device_id(vm.guid, disk.controller_id)
    image = found[ids.device_id(vm.guid, vm.media[0].dev_id)]
    assert (image["ResourceType"], image["ResourceSubType"], list(image["Connection"])) == (
        21, "Microsoft Virtual Hard Disk", ["/srv/disks/boot.vhd"])
    assert ids.instance_id_from_ref(image["Parent"]) == ids.device_id(vm.guid, disk.dev_id)
    iso = found[ids.device_id(vm.guid, vm.media[1].dev_id)]
    assert iso["ResourceSubType"] == "Microsoft Virtual CD/DVD Disk"
    nic = found[ids.device_id(vm.guid, vm.nics[0].dev_id)]
    assert (nic.classname, nic["Address"], list(nic["Connection"]), nic["StaticMacAddress"]) == (
        names.SYNTHETIC_NIC_SD, "00155D010203", ["lan"], True)
    legacy = found[ids.device_id(vm.guid, vm.nics[1].dev_id)]
    assert (legacy.classname, legacy["Connection"]) == (names.EMULATED_NIC_SD, None)


def test_model_instances_model_round_trip(vm: VirtualSystem) -> None:
    assert system_from_instances(settings_instances(vm)) == vm


def test_round_trip_through_cim_xml_text(vm: VirtualSystem) -> None:
    embedded = pytest.importorskip("vsms.cim.embedded")
    texts = [embedded.serialize_instance(i) for i in settings_instances(vm)]
    parsed = [embedded.parse_instance(t) for t in texts]
    assert system_from_instances(parsed) == vm


def test_formats_come_from_the_caller_before_the_extension(vm: VirtualSystem) -> None:
    vm.media[0].path = "/srv/disks/boot.img"
    vm.media[0].format = ImageFormat.QCOW2
    with pytest.raises(ValidationFailed, match="cannot tell the format of hard disk image"):
        system_from_instances(settings_instances(vm))
    back = system_from_instances(settings_instances(vm), {vm.media[0].dev_id: ImageFormat.QCOW2})
    assert back == vm


def test_system_from_instances_reports_every_problem(vm: VirtualSystem) -> None:
    insts = by_id(settings_instances(vm))
    nic = insts[ids.device_id(vm.guid, vm.nics[0].dev_id)]
    nic["Address"] = "not-a-mac"
    image = insts[ids.device_id(vm.guid, vm.media[0].dev_id)]
    image["Parent"] = ids.ref_text(names.RASD, ids.device_id(vm.guid, "NO-SUCH-DRIVE"))
    dvd = insts[ids.device_id(vm.guid, vm.drives[2].dev_id)]
    dvd["Address"] = "0"  # the slot of the other DVD drive
    stranger = pywbem.CIMInstance(names.RASD, properties={
        "InstanceID": ids.device_id(vm.guid, "X"), "ResourceType": pywbem.Uint16(14)})
    with pytest.raises(ValidationFailed) as info:
        system_from_instances([*insts.values(), stranger])
    text = str(info.value)
    assert len(info.value.problems) >= 4, info.value.problems
    for part in ("not-a-mac", "NO-SUCH-DRIVE", "slot 0 of IDE controller 1 holds 2 drives",
                 "ResourceType 14"):
        assert part in text


def test_system_from_instances_needs_one_current_vssd(vm: VirtualSystem) -> None:
    insts = settings_instances(vm)
    with pytest.raises(ValidationFailed, match="SettingType 3"):
        system_from_instances(insts[1:])
    other = copy.deepcopy(insts)
    wrong = other[3]
    wrong.path = None
    wrong["InstanceID"] = ids.device_id("11111111-2222-3333-4444-555555555555", "P")
    with pytest.raises(ValidationFailed, match="belongs to virtual machine"):
        system_from_instances(other)


def test_computer_system_instance(vm: VirtualSystem) -> None:
    inst = computer_system(vm, EnabledState.STARTING, RequestedState.ENABLED,
                           [OperationalStatus.OK, OperationalStatus.EXPORTING], on_time_ms=42)
    assert inst.path is not None
    assert dict(inst.path.keybindings) == {"CreationClassName": names.COMPUTER_SYSTEM,
                                           "Name": vm.guid}
    assert (inst["Caption"], inst["Description"], inst["ElementName"]) == (
        "Virtual Machine", "Microsoft Virtual Machine", "Full VM")
    assert (inst["EnabledState"], inst["RequestedState"], inst["HealthState"],
            inst["EnabledDefault"], inst["OnTimeInMilliseconds"]) == (32770, 2, 5, 2, 42)
    assert list(inst["OperationalStatus"]) == [2, 32773]
    assert inst["StatusDescriptions"][1] == "Exporting Virtual Machine"
    assert inst["InstallDate"].datetime == vm.created


def test_apply_system_settings_from_vssd(vm: VirtualSystem) -> None:
    vssd = settings_instances(vm)[0]
    vssd["ElementName"], vssd["Notes"] = "Renamed", "new notes"
    vssd["BootOrder"] = [pywbem.Uint16(v) for v in (3, 2, 1, 0)]
    out = apply_system_settings(vm, vssd)
    assert (out.name, out.notes, out.boot_order) == ("Renamed", "new notes", [3, 2, 1, 0])
    assert vm.name == "Full VM"  # the original is untouched
    vssd["BootOrder"] = [pywbem.Uint16(v) for v in (1, 1, 9)]
    with pytest.raises(InvalidParameter, match="BootOrder"):
        apply_system_settings(vm, vssd)
    del vssd["BootOrder"]
    vssd["ElementName"] = "x" * 101
    with pytest.raises(InvalidParameter, match="at most 100"):
        apply_system_settings(vm, vssd)


def test_apply_settings_refuses_another_vms_settings(vm: VirtualSystem) -> None:
    other = VirtualSystem(guid="11111111-2222-3333-4444-555555555555", name="other")
    foreign = settings_instances(other)[0]
    with pytest.raises(InvalidParameter, match="belongs to another virtual machine"):
        apply_system_settings(vm, foreign)
    job = pywbem.CIMInstance(names.CONCRETE_JOB, properties={"InstanceID": "x"})
    with pytest.raises(InvalidParameter, match="pass an embedded"):
        apply_system_settings(vm, job)


def test_apply_global_settings(vm: VirtualSystem) -> None:
    gsd = settings_instances(vm)[1]
    gsd["ElementName"], gsd["ScopeOfResidence"] = "Global rename", "scope-2"
    out = apply_system_settings(vm, gsd)
    assert (out.name, out.scope_of_residence) == ("Global rename", "scope-2")
    gsd["ExternalDataRoot"] = "/elsewhere"
    with pytest.raises(InvalidParameter, match="ExternalDataRoot can only be set"):
        apply_system_settings(vm, gsd)
    fresh = VirtualSystem(guid=vm.guid, name="")
    new = pywbem.CIMInstance(names.VSGSD, properties={"ExternalDataRoot": "/data"})
    defined = apply_global_settings(fresh, new, defining=True)
    assert (defined.name, defined.external_data_root) == ("New Virtual Machine", "/data")
    new["ExternalDataRoot"] = "relative/dir"
    with pytest.raises(InvalidParameter, match="not an absolute path"):
        apply_global_settings(fresh, new, defining=True)


def test_vm_json_round_trip(vm: VirtualSystem) -> None:
    data = to_json(vm)
    assert from_json(data) == vm
    import json
    assert from_json(json.dumps(data)) == vm
    with pytest.raises(InvalidParameter):
        from_json({"guid": "x"})
