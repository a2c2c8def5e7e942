"""Every intrinsic operation through pywbem on the real Msvm classes of a real Service."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import pywbem

from tests.e2e import wbemflow
from tests.e2e.conftest import Served
from vsms.cim import names
from vsms.cim.enums import EnabledState

pytestmark = pytest.mark.qemu

CIM_RASD = "CIM_ResourceAllocationSettingData"

EXPECTED_CLASSES = {names.COMPUTER_SYSTEM, names.VSSD, names.VSGSD, names.RASD, names.MEMORY_SD,
                    names.PROCESSOR_SD, names.SYNTHETIC_NIC_SD, names.CONCRETE_JOB,
                    names.STORAGE_JOB, names.VSMS, names.IMAGE_SERVICE, names.EXPORT_SD,
                    names.IMPORT_SD, names.AFFECTED_JOB_ELEMENT, names.SETTINGS_DEFINE_STATE,
                    names.VSSD_COMPONENT}


def keyset(paths: list[pywbem.CIMInstanceName]) -> set[tuple[str, str]]:
    """(class, sorted key values) of each path: comparable whatever host/namespace they carry."""
    return {(p.classname.lower(), repr(sorted((k.lower(), str(v))
                                              for k, v in p.keybindings.items())))
            for p in paths}


def drain(first: Any, pull: Callable[..., Any], attr: str, batch: int = 1) -> list[Any]:
    """Items of an Open… result and every Pull… after it (``batch`` objects per pull)."""
    items = list(getattr(first, attr))
    result, pulls = first, 0
    while not result.eos:
        pulls += 1
        assert pulls < 1000
        result = pull(result.context, MaxObjectCount=batch)
        items.extend(getattr(result, attr))
    return items


def test_class_operations(conn: pywbem.WBEMConnection) -> None:
    deep = set(conn.EnumerateClassNames(DeepInheritance=True))
    assert deep >= EXPECTED_CLASSES
    top = conn.EnumerateClassNames()
    assert set(top) < deep and names.COMPUTER_SYSTEM not in top
    assert names.VSSD in conn.EnumerateClassNames(ClassName="CIM_VirtualSystemSettingData")
    classes = conn.EnumerateClasses(DeepInheritance=True, LocalOnly=False)
    assert {c.classname for c in classes} == deep

    cs = conn.GetClass(names.COMPUTER_SYSTEM, LocalOnly=False, IncludeClassOrigin=True)
    assert cs.properties["Name"].qualifiers["Key"].value is True
    rsc = cs.methods["RequestStateChange"]
    assert rsc.parameters["RequestedState"].type == "uint16"
    assert "32768" in rsc.parameters["RequestedState"].qualifiers["ValueMap"].value
    job = conn.GetClass(names.CONCRETE_JOB, LocalOnly=False)
    assert {"JobState", "PercentComplete", "ErrorCode", "ErrorDescription"} <= set(job.properties)
    vsms = conn.GetClass(names.VSMS, LocalOnly=False)
    imp = vsms.methods["ImportVirtualSystem"]
    assert imp.parameters["GenerateNewID"].type == "boolean"
    assert imp.parameters["Job"].reference_class == "CIM_ConcreteJob"
    define = vsms.methods["DefineVirtualSystem"].parameters["SystemSettingData"]
    assert define.qualifiers["EmbeddedInstance"].value == names.VSGSD
    assert "4096" in imp.qualifiers["ValueMap"].value

    quals = {q.name.lower() for q in conn.EnumerateQualifiers()}
    assert {"key", "valuemap", "values", "embeddedinstance"} <= quals
    assert conn.GetQualifier("ValueMap").is_array
    with pytest.raises(pywbem.CIMError) as info:
        conn.GetClass("Msvm_NoSuchClass")
    assert info.value.status_code == pywbem.CIM_ERR_NOT_FOUND


def test_instance_and_association_operations(served: Served,
                                             conn: pywbem.WBEMConnection) -> None:
    vm = wbemflow.define_vm(conn, "vm1", track=served.guids)
    guid = str(vm.keybindings["Name"])

    # GetInstance, EnumerateInstances, EnumerateInstanceNames
    inst = conn.GetInstance(vm)
    assert inst["ElementName"] == "vm1" and inst["EnabledState"] == EnabledState.DISABLED
    part = conn.GetInstance(vm, PropertyList=["ElementName"])
    assert list(part.properties) == ["ElementName"]
    systems = conn.EnumerateInstances(names.COMPUTER_SYSTEM)
    mine = [s for s in systems if s["Name"] == guid]
    assert len(mine) == 1 and mine[0]["Caption"] == "Virtual Machine"
    assert any(s["Caption"] == "Hosting Computer System" for s in systems)
    assert keyset([vm]) <= keyset(conn.EnumerateInstanceNames(names.COMPUTER_SYSTEM))
    with pytest.raises(pywbem.CIMError) as info:
        conn.GetInstance(pywbem.CIMInstanceName(names.COMPUTER_SYSTEM, {
            "CreationClassName": names.COMPUTER_SYSTEM,
            "Name": "00000000-0000-0000-0000-000000000000"}))
    assert info.value.status_code == pywbem.CIM_ERR_NOT_FOUND

    # Associators/AssociatorNames, References/ReferenceNames
    vssd = conn.Associators(vm, AssocClass=names.SETTINGS_DEFINE_STATE, ResultClass=names.VSSD)
    assert len(vssd) == 1 and vssd[0]["ElementName"] == "vm1"
    assert vssd[0].path.host == served.service.registry.host  # the real host name
    assert keyset(conn.AssociatorNames(vm, AssocClass=names.SETTINGS_DEFINE_STATE,
                                       ResultClass=names.VSSD)) == keyset([vssd[0].path])
    parts = conn.Associators(vssd[0].path, AssocClass=names.VSSD_COMPONENT)
    assert [p.classname for p in parts].count(names.VSGSD) == 1
    rasds = [p for p in parts if p.classname != names.VSGSD]
    types = sorted(int(r["ResourceType"]) for r in rasds)
    # the five integration components (1, Other), processor, memory, two IDE controllers, COM 1,
    # COM 2
    assert types == [1, 1, 1, 1, 1, 3, 4, 5, 5, 17, 17]
    assert next(r for r in rasds if r["ResourceType"] == 4)["VirtualQuantity"] == 128
    refs = conn.References(vm, ResultClass=names.SETTINGS_DEFINE_STATE)
    assert len(refs) == 1 and refs[0]["SettingData"].keybindings["InstanceID"] == \
        vssd[0]["InstanceID"]
    assert keyset(conn.ReferenceNames(vm, ResultClass=names.SETTINGS_DEFINE_STATE)) == \
        keyset([refs[0].path])

    # ExecQuery: SELECT … WHERE and ASSOCIATORS OF
    rows = conn.ExecQuery("WQL", "SELECT * FROM Msvm_ComputerSystem WHERE ElementName = 'vm1'")
    assert guid in {r["Name"] for r in rows} and {r["ElementName"] for r in rows} == {"vm1"}
    uri = f'Msvm_ComputerSystem.CreationClassName="Msvm_ComputerSystem",Name="{guid}"'
    rows = conn.ExecQuery("WQL", f"ASSOCIATORS OF {{{uri}}} WHERE ResultClass = "
                                 f"Msvm_VirtualSystemSettingData")
    assert [r["InstanceID"] for r in rows] == [vssd[0]["InstanceID"]]
    with pytest.raises(pywbem.CIMError) as info:
        conn.ExecQuery("WQL", "SELECT * FROM")
    assert info.value.status_code == pywbem.CIM_ERR_INVALID_QUERY

    # the pull operations: an Open… with one object, then Pull… (other tests' VMs may come
    # and go in the list of computer systems: pull those in batches)
    got = drain(conn.OpenEnumerateInstances(names.COMPUTER_SYSTEM, MaxObjectCount=1),
                conn.PullInstancesWithPath, "instances", batch=50)
    assert keyset([vm]) <= keyset([i.path for i in got])
    paths = drain(conn.OpenEnumerateInstancePaths(names.COMPUTER_SYSTEM, MaxObjectCount=1),
                  conn.PullInstancePaths, "paths", batch=50)
    assert keyset([vm]) <= keyset(paths)
    got = drain(conn.OpenAssociatorInstances(vssd[0].path, AssocClass=names.VSSD_COMPONENT,
                                             ResultClass=CIM_RASD, MaxObjectCount=1),
                conn.PullInstancesWithPath, "instances")
    assert sorted(int(r["ResourceType"]) for r in got) == types
    paths = drain(conn.OpenAssociatorInstancePaths(vssd[0].path, AssocClass=names.VSSD_COMPONENT,
                                                   MaxObjectCount=1),
                  conn.PullInstancePaths, "paths")
    assert keyset(paths) == keyset([p.path for p in parts])
    got = drain(conn.OpenReferenceInstances(vm, ResultClass=names.SETTINGS_DEFINE_STATE,
                                            MaxObjectCount=0),
                conn.PullInstancesWithPath, "instances")
    assert keyset([i.path for i in got]) == keyset([refs[0].path])
    paths = drain(conn.OpenReferenceInstancePaths(vm, MaxObjectCount=1),
                  conn.PullInstancePaths, "paths")
    assert keyset([refs[0].path]) <= keyset(paths)
    first = conn.OpenQueryInstances(
        "WQL", "SELECT * FROM Msvm_ComputerSystem WHERE ElementName = 'vm1'", MaxObjectCount=1)
    got = drain(first, conn.PullInstances, "instances", batch=50)
    assert guid in {i["Name"] for i in got}
    opened = conn.OpenEnumerateInstances(names.RASD, MaxObjectCount=1)
    if not opened.eos:
        conn.CloseEnumeration(opened.context)
    # the Iter… operations of pywbem use the pull operations with no fallback needed
    assert keyset([vm]) <= keyset(list(conn.IterEnumerateInstancePaths(
        names.COMPUTER_SYSTEM, MaxObjectCount=50)))


def test_interop_namespace(conn: pywbem.WBEMConnection) -> None:
    spaces = conn.EnumerateInstances("CIM_Namespace", namespace="interop")
    assert {s["Name"] for s in spaces} >= {"root/virtualization", "interop"}
    server = pywbem.WBEMServer(conn)
    assert "root/virtualization" in server.namespaces
    assert server.brand == "vsms"
