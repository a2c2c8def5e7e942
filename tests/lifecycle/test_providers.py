"""Providers on libvirt's test driver: instances, associations, cost of enumeration, refusals."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pywbem

from vsms.cim import names
from vsms.cim.enums import JobState, ReturnCode
from vsms.mapping import components as mc
from vsms.mapping import ids
from vsms.mapping import logical_devices as ld
from vsms.operations.state import prepare_state_change

from .service import Harness, running_service, text


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Harness]:
    root = tmp_path / "storage"
    root.mkdir()
    with running_service(root, tmp_path / "state", "test:///default") as harness:
        yield harness


def define(svc: Harness, name: str) -> pywbem.CIMInstanceName:
    gsd = pywbem.CIMInstance(names.VSGSD, properties={"ElementName": name})
    nic = pywbem.CIMInstance(names.SYNTHETIC_NIC_SD, properties={
        "ResourceType": pywbem.Uint16(10)})
    rv, out = svc.vsms("DefineVirtualSystem", SystemSettingData=text(gsd),
                       ResourceSettingData=[text(nic)])
    assert rv == ReturnCode.COMPLETED
    path: pywbem.CIMInstanceName = out["DefinedSystem"]
    return path


class Spy:
    """Counts calls of some VirtHost methods (the real methods still run)."""

    def __init__(self, host: Any, methods: tuple[str, ...]) -> None:
        self.calls: dict[str, int] = dict.fromkeys(methods, 0)
        for name in methods:
            real = getattr(host, name)

            def counted(*a: Any, _real: Any = real, _name: str = name, **kw: Any) -> Any:
                self.calls[_name] += 1
                return _real(*a, **kw)
            setattr(host, name, counted)


def test_enumeration_costs_the_same_for_any_number_of_vms(svc: Harness) -> None:
    vms = [define(svc, f"spy-{i}-{uuid.uuid4().hex[:6]}") for i in range(3)]
    spy = Spy(svc.host, ("inventory", "list_systems", "states", "state", "get_system"))
    found = svc.registry.enumerate_instances(svc.ns, names.COMPUTER_SYSTEM)
    assert spy.calls == {"inventory": 1, "list_systems": 0, "states": 0, "state": 0,
                         "get_system": 0}
    by_name = {str(i["Name"]): i for i in found}
    for vm in vms:
        inst = by_name[str(vm["Name"])]
        assert (inst["EnabledState"], inst["RequestedState"], inst["HealthState"]) == (3, 12, 5)
    host = [i for i in found if i["Caption"] == "Hosting Computer System"]
    assert len(host) == 1 and host[0]["Name"] == svc.registry.host
    assert host[0].path is not None
    rv, _ = svc.invoke(host[0].path, "RequestStateChange", RequestedState=pywbem.Uint16(3))
    assert rv == ReturnCode.NOT_SUPPORTED


def test_settings_and_associations(svc: Harness) -> None:
    vm = define(svc, f"assoc-{uuid.uuid4().hex[:6]}")
    guid = str(vm["Name"])
    vssd_path = ids.setting_path(names.VSSD, ids.vssd_id(guid))
    assert svc.get(vssd_path)["SystemName"] == guid
    parts = svc.associators(vssd_path, assoc_class=names.VSSD_COMPONENT, role="GroupComponent")
    kinds = sorted(p.classname for p in parts)
    assert kinds == sorted([names.VSGSD, names.MEMORY_SD, names.PROCESSOR_SD, names.RASD,
                            names.RASD, names.SYNTHETIC_NIC_SD,
                            names.RASD, names.RASD,  # … and COM 1, COM 2
                            *mc.SETTING_CLASSES])  # the integration components
    memory = next(p for p in parts if p.classname == names.MEMORY_SD)
    assert memory.path is not None
    # a memory setting is also reachable through the base class path
    base = ids.setting_path(names.RASD, str(memory["InstanceID"]))
    assert svc.get(base).classname == names.MEMORY_SD
    back = svc.associators(memory.path, assoc_class=names.VSSD_COMPONENT)
    assert [b.classname for b in back] == [names.VSSD]
    refs = svc.registry.references(svc.ns, vm)
    assert sorted({r.classname for r in refs}) == sorted([
        names.SETTINGS_DEFINE_STATE, names.ELEMENT_SETTING_DATA, names.SYSTEM_EXPORT_SD,
        ld.SYSTEM_DEVICE, ld.SYSTEM_BIOS])  # (tests/devices covers the devices)
    refs = [r for r in refs if r.classname not in (ld.SYSTEM_DEVICE, ld.SYSTEM_BIOS)]
    assert len(refs) == 3
    for ref in refs:
        assert ref.path is not None
        assert svc.get(ref.path).classname == ref.classname
    esd = next(r for r in refs if r.classname == names.ELEMENT_SETTING_DATA)
    assert (esd["IsCurrent"], esd["IsDefault"]) == (1, 0)
    # the memory, processor and port classes derive from CIM_ResourceAllocationSettingData
    enumerated = svc.registry.enumerate_instances(svc.ns, "CIM_ResourceAllocationSettingData")
    ours = [i for i in enumerated if ids.guid_of(str(i["InstanceID"])) == guid]
    # memory, processor, two IDE controllers, the adapter, COM 1, COM 2, five components
    assert len(ours) == 7 + len(mc.SETTING_CLASSES)
    plain = svc.registry.enumerate_instances(svc.ns, names.RASD)
    assert len([i for i in plain if ids.guid_of(str(i["InstanceID"])) == guid]) == 4  # IDE, COM
    with pytest.raises(pywbem.CIMError):
        svc.get(ids.setting_path(names.VSSD, ids.vssd_id(str(uuid.uuid4()).upper())))


def test_associations_of_one_vm_read_only_that_vm(svc: Harness) -> None:
    vms = [define(svc, f"one-{i}-{uuid.uuid4().hex[:6]}") for i in range(3)]
    spy = Spy(svc.host, ("inventory", "list_systems", "shared_systems", "get_system"))
    guid = str(vms[1]["Name"])
    refs = [r for r in svc.registry.references(svc.ns, vms[1])
            if r.classname not in (ld.SYSTEM_DEVICE, ld.SYSTEM_BIOS)]
    assert sorted(r.classname for r in refs) == sorted([names.SETTINGS_DEFINE_STATE,
                                                        names.ELEMENT_SETTING_DATA,
                                                        names.SYSTEM_EXPORT_SD])
    assoc = svc.associators(vms[1], result_class=names.EXPORT_SD)
    assert [str(a["InstanceID"]) for a in assoc] == [f"Microsoft:{guid}\\ExportSettingData"]
    vssd = svc.associators(vms[1], assoc_class=names.SETTINGS_DEFINE_STATE)
    assert [str(v["InstanceID"]) for v in vssd] == [ids.vssd_id(guid)]
    assert spy.calls["inventory"] == spy.calls["list_systems"] == 0
    assert spy.calls["shared_systems"] == 0 and spy.calls["get_system"] > 0
    # a VM that does not exist has no associations, and a stranger target none either
    gone = pywbem.CIMInstanceName(names.COMPUTER_SYSTEM, keybindings={
        "CreationClassName": names.COMPUTER_SYSTEM, "Name": str(uuid.uuid4()).upper()})
    assert svc.registry.references(svc.ns, gone) == []
    assert svc.registry.references(svc.ns, pywbem.CIMInstanceName(
        names.COMPUTER_SYSTEM, keybindings={"Name": "not-a-guid"})) == []


def test_a_busy_vm_refuses_other_changes(svc: Harness) -> None:
    vm = define(svc, f"busy-{uuid.uuid4().hex[:6]}")
    guid = str(vm["Name"])
    prepare_state_change(svc.host, svc.transitions, guid, 2)  # transition begun
    try:
        assert (svc.get(vm)["EnabledState"], svc.get(vm)["RequestedState"]) == (32770, 2)
        rv, _ = svc.invoke(vm, "RequestStateChange", RequestedState=pywbem.Uint16(2))
        assert rv == ReturnCode.INVALID_STATE
        vssd = svc.get(ids.setting_path(names.VSSD, ids.vssd_id(guid)))
        vssd["ElementName"] = "renamed while busy"
        rv, _ = svc.vsms("ModifyVirtualSystem", ComputerSystem=vm, SystemSettingData=text(vssd))
        assert rv == ReturnCode.INVALID_STATE
        rv, _ = svc.vsms("DestroyVirtualSystem", ComputerSystem=vm)
        assert rv == ReturnCode.INVALID_STATE
    finally:
        svc.transitions.end(guid)
    assert svc.get(vm)["RequestedState"] == 12


def test_state_changes_and_destroy_on_the_test_driver(svc: Harness) -> None:
    vm = define(svc, f"states-{uuid.uuid4().hex[:6]}")
    for requested, expected in ((2, 2), (32768, 32768), (2, 2), (32769, 32769), (3, 3)):
        rv, out = svc.invoke(vm, "RequestStateChange", RequestedState=pywbem.Uint16(requested))
        assert rv == ReturnCode.JOB_STARTED
        job = svc.wait(out["Job"])
        assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
        assert svc.get(vm)["EnabledState"] == expected
    for bad, code in ((32768, ReturnCode.INVALID_STATE), (3, ReturnCode.INVALID_STATE),
                      (10, ReturnCode.INVALID_STATE), (11, ReturnCode.NOT_SUPPORTED),
                      (4, ReturnCode.INVALID_PARAMETER)):
        rv, _ = svc.invoke(vm, "RequestStateChange", RequestedState=pywbem.Uint16(bad))
        assert rv == code, bad
    rv, out = svc.vsms("DestroyVirtualSystem", ComputerSystem=vm)
    assert rv == ReturnCode.JOB_STARTED
    job = svc.wait(out["Job"])
    assert job["JobState"] == JobState.COMPLETED
    assert svc.host.get_system(str(vm["Name"])) is None
