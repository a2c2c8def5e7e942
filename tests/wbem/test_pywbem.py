"""Every operation through a real pywbem WBEMConnection against a real server on 127.0.0.1."""

from __future__ import annotations

import time
from typing import Any

import pytest
import pywbem

from tests.wbem.conftest import HOST
from tests.wbem.model import NS, SERVICE_PATH, ServiceProvider, setting
from vsms.providers.registry import Registry

VM1 = pywbem.CIMInstanceName("TST_VirtualSystem", {"CreationClassName": "TST_VirtualSystem",
                                                   "Name": "vm1"}, namespace=NS)
HOST_SYS = pywbem.CIMInstanceName("TST_System", {"CreationClassName": "TST_System",
                                                 "Name": "host1"}, namespace=NS)


def codes(fn, *args, **kw) -> int:
    with pytest.raises(pywbem.CIMError) as info:
        fn(*args, **kw)
    return int(info.value.status_code)


# ---------------------------------------------------------------------- classes
def test_class_operations(conn: pywbem.WBEMConnection) -> None:
    top = conn.EnumerateClassNames()
    assert set(top) == {"TST_ManagedElement", "TST_SystemSettings", "TST_HostedService",
                        "TST_AffectedJobElement"}
    deep = conn.EnumerateClassNames(DeepInheritance=True)
    assert "TST_VirtualSystem" in deep and len(deep) == 9
    assert conn.EnumerateClassNames(ClassName="TST_System") == ["TST_VirtualSystem"]

    full = conn.GetClass("TST_VirtualSystem", LocalOnly=False, IncludeQualifiers=True,
                         IncludeClassOrigin=True)
    assert full.superclass == "TST_System"
    assert full.properties["Name"].class_origin == "TST_System"
    assert full.properties["Name"].propagated is True
    assert full.properties["Notes"].propagated is False
    assert full.properties["Name"].qualifiers["Key"].value is True
    assert full.methods["RequestStateChange"].class_origin == "TST_System"
    vmap = full.properties["EnabledState"].qualifiers["ValueMap"].value
    assert vmap == ["2", "3", "32768"]

    local = conn.GetClass("TST_VirtualSystem")  # DSP0200 defaults: LocalOnly, qualifiers
    assert list(local.properties) == ["Notes"] and not local.methods
    bare = conn.GetClass("TST_VirtualSystem", LocalOnly=False, IncludeQualifiers=False,
                         PropertyList=["Name", "Notes"])
    assert list(bare.properties) == ["Notes", "Name"]
    assert not bare.properties["Name"].qualifiers and bare.properties["Name"].class_origin is None
    svc = conn.GetClass("TST_Service", LocalOnly=False)
    job = svc.methods["DefineSystem"].parameters["Job"]
    assert (job.type, job.reference_class) == ("reference", "TST_Job")
    assert svc.methods["DefineSystem"].parameters["ResourceSettings"].is_array

    classes = conn.EnumerateClasses(DeepInheritance=True, LocalOnly=False)
    assert len(classes) == 9
    assert codes(conn.GetClass, "TST_Nothing") == pywbem.CIM_ERR_NOT_FOUND
    assert codes(conn.EnumerateClassNames, ClassName="TST_Nothing") == pywbem.CIM_ERR_INVALID_CLASS


def test_qualifier_operations(conn: pywbem.WBEMConnection) -> None:
    quals = {q.name: q for q in conn.EnumerateQualifiers()}
    assert {"Key", "ValueMap", "EmbeddedInstance", "Association"} <= set(quals)
    key = conn.GetQualifier("Key")
    assert key.type == "boolean" and key.scopes["PROPERTY"] and not key.scopes["CLASS"]
    assert codes(conn.GetQualifier, "Nope") == pywbem.CIM_ERR_NOT_FOUND


# ---------------------------------------------------------------------- instances
def test_instance_operations(conn: pywbem.WBEMConnection) -> None:
    names = conn.EnumerateInstanceNames("TST_System")
    assert sorted(p["Name"] for p in names) == ["host1", "vm0", "vm1", "vm2"]
    insts = conn.EnumerateInstances("TST_System")
    vm = next(i for i in insts if i["Name"] == "vm1")
    assert vm.classname == "TST_VirtualSystem" and vm["Notes"] == "note 1"
    assert vm["Tags"] == ["a", "b"] and vm["Enabled"] is True and vm["MemoryMB"] == 512
    assert isinstance(vm["Created"], pywbem.CIMDateTime) and vm["Caption"] is None
    shallow = conn.EnumerateInstances("TST_System", DeepInheritance=False)
    assert all("Notes" not in i.properties for i in shallow)
    some = conn.EnumerateInstances("TST_System", PropertyList=["Name"])
    assert all(list(i.properties) == ["Name"] for i in some)
    with_origin = conn.EnumerateInstances("TST_VirtualSystem", IncludeClassOrigin=True)
    assert with_origin[0].properties["Name"].class_origin == "TST_System"
    assert with_origin[0].properties["Notes"].class_origin == "TST_VirtualSystem"

    got = conn.GetInstance(VM1)
    assert got["ElementName"] == "vm 1" and got.path.keybindings == VM1.keybindings
    only = conn.GetInstance(VM1, PropertyList=["ElementName", "EnabledState"])
    assert set(only.properties) == {"ElementName", "EnabledState"}
    local = conn.GetInstance(VM1, LocalOnly=True)
    assert list(local.properties) == ["Notes"]
    sd = conn.GetInstance(pywbem.CIMInstanceName("TST_SettingData", {"InstanceID": "sd-2"}))
    assert sd["Inner"].classname == "TST_SettingData" and sd["Inner"]["Quantity"] == 102

    missing = VM1.copy()
    missing.keybindings["Name"] = "nope"
    assert codes(conn.GetInstance, missing) == pywbem.CIM_ERR_NOT_FOUND
    assert codes(conn.EnumerateInstances, "TST_Nothing") == pywbem.CIM_ERR_INVALID_CLASS
    assert codes(conn.EnumerateInstances, "TST_System",
                 namespace="root/nothing") == pywbem.CIM_ERR_INVALID_NAMESPACE


def test_association_operations(conn: pywbem.WBEMConnection) -> None:
    assoc = conn.Associators(VM1)
    assert [i["InstanceID"] for i in assoc] == ["sd-1"]
    assert assoc[0].path.host == HOST and assoc[0].path.namespace == NS
    names = conn.AssociatorNames(VM1, ResultClass="TST_SettingData", Role="ManagedElement",
                                 ResultRole="SettingData", AssocClass="TST_SystemSettings")
    assert [p["InstanceID"] for p in names] == ["sd-1"]
    assert conn.AssociatorNames(VM1, ResultClass="TST_Service") == []
    refs = conn.References(VM1, PropertyList=["SettingData"])
    assert [r.classname for r in refs] == ["TST_SystemSettings"]
    assert list(refs[0].properties) == ["SettingData"]
    rnames = conn.ReferenceNames(HOST_SYS, ResultClass="TST_HostedService")
    assert [p.classname for p in rnames] == ["TST_HostedService"]
    assert rnames[0]["Dependent"]["Name"] == "svc"
    svc = conn.Associators(HOST_SYS, AssocClass="TST_HostedService")
    assert [i.classname for i in svc] == ["TST_Service"]

    assert codes(conn.Associators, VM1, ResultClass="TST_Nope") == \
        pywbem.CIM_ERR_INVALID_PARAMETER
    gone = VM1.copy()
    gone.keybindings["Name"] = "gone"
    assert codes(conn.Associators, gone) == pywbem.CIM_ERR_NOT_FOUND

    cls_assoc = conn.Associators("TST_System")  # class level: (path, class) tuples
    assert sorted(c.classname for _, c in cls_assoc) == ["TST_Job", "TST_Service",
                                                         "TST_SettingData"]
    cls_refs = conn.ReferenceNames("TST_SettingData")
    assert sorted(p.classname for p in cls_refs) == ["TST_AffectedJobElement",
                                                     "TST_SystemSettings"]


def test_exec_query(conn: pywbem.WBEMConnection) -> None:
    found = conn.ExecQuery("WQL", "SELECT * FROM TST_VirtualSystem WHERE ElementName = 'vm 2'")
    assert [i["Name"] for i in found] == ["vm2"] and found[0]["Notes"] == "note 2"
    proj = conn.ExecQuery("WQL", "SELECT Name FROM TST_System WHERE EnabledState = 3")
    assert [dict(i.items()) for i in proj] == [{"Name": "vm1"}]
    assert proj[0].path["CreationClassName"] == "TST_VirtualSystem"
    path = 'TST_VirtualSystem.CreationClassName="TST_VirtualSystem",Name="vm0"'
    assoc = conn.ExecQuery("WQL", f"ASSOCIATORS OF {{{path}}} WHERE ResultClass=TST_SettingData")
    assert [i["InstanceID"] for i in assoc] == ["sd-0"]
    assert codes(conn.ExecQuery, "WQL", "SELECT * FROM") == pywbem.CIM_ERR_INVALID_QUERY
    assert codes(conn.ExecQuery, "CQL", "SELECT * FROM TST_System") == \
        pywbem.CIM_ERR_QUERY_LANGUAGE_NOT_SUPPORTED


# ---------------------------------------------------------------------- pull
@pytest.fixture
def pull(url: str):
    c = pywbem.WBEMConnection(url, default_namespace=NS, use_pull_operations=True)
    yield c
    c.close()


def test_pull_operations(pull: pywbem.WBEMConnection) -> None:
    got = list(pull.IterEnumerateInstances("TST_System", MaxObjectCount=1))
    assert sorted(i["Name"] for i in got) == ["host1", "vm0", "vm1", "vm2"]
    paths = list(pull.IterEnumerateInstancePaths("TST_System", MaxObjectCount=3))
    assert len(paths) == 4 and all(p.host == HOST for p in paths)
    assert [i["InstanceID"] for i in pull.IterAssociatorInstances(VM1)] == ["sd-1"]
    assert [p.classname for p in pull.IterAssociatorInstancePaths(HOST_SYS)] == ["TST_Service"]
    assert [i.classname for i in pull.IterReferenceInstances(VM1)] == ["TST_SystemSettings"]
    assert len(list(pull.IterReferenceInstancePaths(HOST_SYS))) == 1
    rows = pull.IterQueryInstances("WQL", "SELECT Name FROM TST_System WHERE Name LIKE 'vm%'",
                                   MaxObjectCount=1)
    assert sorted(i["Name"] for i in rows.generator) == ["vm0", "vm1", "vm2"]


def test_pull_contexts(pull: pywbem.WBEMConnection, model) -> None:
    first = pull.OpenEnumerateInstances("TST_System", MaxObjectCount=1)
    assert len(first.instances) == 1 and not first.eos
    nxt = pull.PullInstancesWithPath(first.context, MaxObjectCount=2)
    assert len(nxt.instances) == 2 and not nxt.eos
    assert codes(pull.PullInstancePaths, nxt.context, 1) == \
        pywbem.CIM_ERR_INVALID_ENUMERATION_CONTEXT  # wrong kind of pull
    last = pull.PullInstancesWithPath(nxt.context, MaxObjectCount=5)
    assert len(last.instances) == 1 and last.eos

    opened = pull.OpenEnumerateInstancePaths("TST_System", MaxObjectCount=0)
    assert opened.paths == [] and not opened.eos
    pull.CloseEnumeration(opened.context)
    assert codes(pull.PullInstancePaths, opened.context, 1) == \
        pywbem.CIM_ERR_INVALID_ENUMERATION_CONTEXT

    short = pull.OpenEnumerateInstances("TST_System", MaxObjectCount=1, OperationTimeout=1)
    time.sleep(1.3)
    assert codes(pull.PullInstancesWithPath, short.context, 1) == \
        pywbem.CIM_ERR_INVALID_ENUMERATION_CONTEXT  # expired
    assert codes(pull.OpenEnumerateInstances, "TST_System", OperationTimeout=0) == \
        pywbem.CIM_ERR_INVALID_OPERATION_TIMEOUT
    assert codes(pull.OpenEnumerateInstances, "TST_System", FilterQueryLanguage="DMTF:FQL",
                 FilterQuery="Name='x'") == pywbem.CIM_ERR_FILTERED_ENUMERATION_NOT_SUPPORTED
    assert codes(pull.OpenEnumerateInstances, "TST_System", ContinueOnError=True) == \
        pywbem.CIM_ERR_CONTINUATION_ON_ERROR_NOT_SUPPORTED
    assert codes(pull.PullInstancesWithPath, ("bogus", NS), 1) == \
        pywbem.CIM_ERR_INVALID_ENUMERATION_CONTEXT


# ---------------------------------------------------------------------- methods
def test_invoke_with_refs_and_embedded_instances(conn: pywbem.WBEMConnection, model) -> None:
    svc: ServiceProvider = model[1]
    settings = setting("new", 5)
    settings.path = None
    settings["ElementName"] = "newvm"
    ref_cfg = pywbem.CIMInstanceName("TST_SettingData", {"InstanceID": "sd-1"}, namespace=NS)
    rv, out = conn.InvokeMethod("DefineSystem", SERVICE_PATH, [
        ("SystemSettings", settings), ("ResourceSettings", [settings, settings]),
        ("ReferenceConfiguration", ref_cfg)])
    assert rv == 4096
    job, system = out["Job"], out["ResultingSystem"]
    assert (job.classname, job.namespace, job.host) == ("TST_Job", NS, HOST)
    assert conn.GetInstance(job)["JobState"] == 7
    assert conn.GetInstance(system)["Notes"] == "defined"
    method, params = svc.calls[-1]
    assert method == "DefineSystem"
    assert isinstance(params["SystemSettings"], str) and "newvm" in params["SystemSettings"]
    assert len(params["ResourceSettings"]) == 2
    assert params["ReferenceConfiguration"]["InstanceID"] == "sd-1"

    rv, out = conn.InvokeMethod("DestroySystem", SERVICE_PATH, [("AffectedSystem", system)])
    assert rv == 4096 and out["Job"].classname == "TST_Job"
    rv, out = conn.InvokeMethod("DestroySystem", SERVICE_PATH, [("AffectedSystem", system)])
    assert rv == 32773 and "Job" not in out  # gone: the provider's own return code


def test_invoke_typed_parameters(conn: pywbem.WBEMConnection, model) -> None:
    svc: ServiceProvider = model[1]
    rv, out = conn.InvokeMethod("Echo", SERVICE_PATH, [
        ("U8", pywbem.Uint8(200)), ("S32", pywbem.Sint32(-9)), ("Flag", True),
        ("Texts", ["x", "y"]), ("Numbers", [pywbem.Uint16(1), pywbem.Uint16(2)]),
        ("When", pywbem.CIMDateTime("20240101000000.000000+000")), ("Letter", pywbem.Char16("q")),
        ("Real", pywbem.Real64(2.5)), ("Systems", [VM1, HOST_SYS])])
    assert rv == 0
    # (pywbem 1.9 reads any non-empty boolean OUT value as True, so only TRUE is checked here)
    assert (out["U8Out"], out["S32Out"], out["FlagOut"], out["TextsOut"]) == (200, -9, True,
                                                                          ["x", "y"])
    assert isinstance(out["Setting"], pywbem.CIMInstance) and out["Setting"]["Quantity"] == 7
    assert [p["Name"] for p in out["SystemsOut"]] == ["vm1", "host1"]
    got = svc.calls[-1][1]
    assert isinstance(got["U8"], pywbem.Uint8) and isinstance(got["Numbers"][0], pywbem.Uint16)
    assert isinstance(got["When"], pywbem.CIMDateTime) and got["Real"] == 2.5
    # strings where numbers are declared are converted (as sblim wbemcli sends them)
    rv, _ = conn.InvokeMethod("Echo", SERVICE_PATH, [("U8", "7"), ("Flag", "false")])
    assert rv == 0 and svc.calls[-1][1]["U8"] == 7 and svc.calls[-1][1]["Flag"] is False
    rv, out = conn.InvokeMethod("Version", pywbem.CIMClassName("TST_Service", namespace=NS))
    assert (rv, out["Text"]) == (0, "1.2.3")
    rv, _ = conn.InvokeMethod("RequestStateChange", VM1, [("RequestedState", pywbem.Uint16(3))])
    assert rv == 0


@pytest.mark.parametrize("method, params, status, words", [
    ("Echo", [("U8", pywbem.Uint16(300))], pywbem.CIM_ERR_INVALID_PARAMETER, "U8"),
    ("Echo", [("U8", "abc")], pywbem.CIM_ERR_INVALID_PARAMETER, "U8"),
    ("Echo", [("Flag", "maybe")], pywbem.CIM_ERR_INVALID_PARAMETER, "Flag"),
    ("Echo", [("Text", ["a", "b"])], pywbem.CIM_ERR_INVALID_PARAMETER, "Text"),
    ("Echo", [("Text", VM1)], pywbem.CIM_ERR_INVALID_PARAMETER, "Text"),
    ("Echo", [("Letter", "too long")], pywbem.CIM_ERR_INVALID_PARAMETER, "Letter"),
    ("Echo", [("Bogus", pywbem.Uint8(1))], pywbem.CIM_ERR_INVALID_PARAMETER, "Bogus"),
    ("Echo", [("U8Out", pywbem.Uint8(1))], pywbem.CIM_ERR_INVALID_PARAMETER, "not an input"),
    ("DestroySystem", [], pywbem.CIM_ERR_INVALID_PARAMETER, "AffectedSystem"),
    ("DestroySystem", [("AffectedSystem", pywbem.Uint32(5))], pywbem.CIM_ERR_INVALID_PARAMETER,
     "AffectedSystem"),
    ("NoSuchMethod", [], pywbem.CIM_ERR_METHOD_NOT_FOUND, "NoSuchMethod"),
])
def test_invoke_errors(conn: pywbem.WBEMConnection, method: str, params: list[Any], status: int,
                       words: str) -> None:
    with pytest.raises(pywbem.CIMError) as info:
        conn.InvokeMethod(method, SERVICE_PATH, params)
    assert info.value.status_code == status
    assert words in info.value.status_description


def test_invoke_on_missing_object_or_class(conn: pywbem.WBEMConnection) -> None:
    gone = SERVICE_PATH.copy()
    gone.keybindings["Name"] = "gone"
    assert codes(conn.InvokeMethod, "Version", gone) == pywbem.CIM_ERR_NOT_FOUND
    assert codes(conn.InvokeMethod, "Version",
                 pywbem.CIMClassName("TST_Nope", namespace=NS)) == pywbem.CIM_ERR_INVALID_CLASS
    assert codes(conn.InvokeMethod, "Version",
                 pywbem.CIMClassName("TST_Service", namespace="root/nope")) == \
        pywbem.CIM_ERR_INVALID_NAMESPACE


# ---------------------------------------------------------------------- interop
def test_interop_namespace(conn: pywbem.WBEMConnection, model) -> None:
    reg: Registry = model[0]
    server = pywbem.WBEMServer(conn)
    assert server.interop_ns == "interop"
    assert sorted(server.namespaces) == ["interop", "root/test"]
    assert server.brand == "vsms"
    managers = conn.EnumerateInstances("CIM_ObjectManager", namespace="interop")
    assert len(managers) == 1 and managers[0]["SystemName"] == reg.host
    ns_of = conn.AssociatorNames(managers[0].path, ResultClass="CIM_Namespace")
    assert sorted(p["Name"] for p in ns_of) == ["interop", "root/test"]
