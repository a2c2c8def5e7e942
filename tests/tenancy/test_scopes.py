"""Per-VM scopes on a real Service on qemu:///system, over CIM-XML with authentication: a table
over every intrinsic operation and every extrinsic method of the classes we serve.

Users: ``admin`` (administrator everywhere), ``alice`` (administrator in scope t1 only) and
``bob`` (reader in scope t2 only). VMs: A in t1, B in t2, C in no scope, and GHOST, a GUID no VM
has. Alice must see and manage A, never see B or C, and get the same answers for B as for GHOST.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pywbem

from tests.authserved import auth_served, define_in_scope
from tests.e2e import wbemflow
from vsms.app import Service
from vsms.auth.basic import Principal
from vsms.auth.policy import Role
from vsms.auth.scopes import ScopedRegistry
from vsms.cim import names
from vsms.cim.enums import ReturnCode
from vsms.cim.schema import load_schema
from vsms.model.vm import new_guid
from vsms.wbem.dispatch import INTRINSIC
from vsms.wbem.pull import PULL_OPS
from vsms.wbem.server import WbemServer

pytestmark = pytest.mark.qemu
DENIED = int(ReturnCode.ACCESS_DENIED)
PASSWORD = "scoped-pass-123"
NOT_FOUND = "not found"  # what a call answered when it raised CIM_ERR_NOT_FOUND


@dataclass
class Live:
    service: Service
    server: WbemServer
    root: Path
    a: pywbem.CIMInstanceName
    b: pywbem.CIMInstanceName
    c: pywbem.CIMInstanceName
    ghost: pywbem.CIMInstanceName

    def connect(self, user: str) -> pywbem.WBEMConnection:
        return pywbem.WBEMConnection(f"http://127.0.0.1:{self.server.ports['http']}",
                                     (user, PASSWORD), default_namespace=names.NAMESPACE,
                                     timeout=60)


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    users = [("admin", Role.ADMINISTRATOR, None), ("alice", Role.ADMINISTRATOR, "t1"),
             ("bob", Role.READER, "t2")]
    with auth_served(PASSWORD, users) as served:
        try:
            admin = served.connect("admin")
            token = served.root.name
            a = define_in_scope(admin, f"scope-a-{token}", "t1")
            b = define_in_scope(admin, f"scope-b-{token}", "t2")
            c = define_in_scope(admin, f"scope-c-{token}", "")
            ghost = pywbem.CIMInstanceName(names.COMPUTER_SYSTEM, keybindings={
                "CreationClassName": names.COMPUTER_SYSTEM, "Name": new_guid()},
                namespace=names.NAMESPACE)
            VM_GUIDS.update(guid(v) for v in (a, b, c, ghost))
            yield Live(served.service, served.server, served.root, a, b, c, ghost)
        finally:
            served.remove_vms()


def guid(vm: pywbem.CIMInstanceName) -> str:
    return str(vm.keybindings["Name"]).upper()


def vssd(vm: pywbem.CIMInstanceName) -> pywbem.CIMInstanceName:
    return pywbem.CIMInstanceName(names.VSSD, keybindings={"InstanceID": f"Microsoft:{guid(vm)}"},
                                  namespace=names.NAMESPACE)


def rasd_text(vm: pywbem.CIMInstanceName) -> str:
    inst = pywbem.CIMInstance(names.RASD, properties={
        "InstanceID": f"Microsoft:{guid(vm)}\\{new_guid()}", "ResourceType": pywbem.Uint16(21)})
    return str(inst.tocimxmlstr())


def rasd_ref(vm: pywbem.CIMInstanceName) -> pywbem.CIMInstanceName:
    return pywbem.CIMInstanceName(names.RASD, keybindings={
        "InstanceID": f"Microsoft:{guid(vm)}\\{new_guid()}"}, namespace=names.NAMESPACE)


def answer(call: Callable[[], Any]) -> Any:
    """The ReturnValue of a method call, or NOT_FOUND when it raised CIM_ERR_NOT_FOUND."""
    try:
        return call()
    except pywbem.CIMError as exc:
        if exc.status_code == pywbem.CIM_ERR_NOT_FOUND:
            return NOT_FOUND
        raise


def guids_in(found: list[Any]) -> set[str]:
    """Every VM GUID an answer names (instances, paths, or association instances)."""
    text = " ".join(str(x.path if isinstance(x, pywbem.CIMInstance) else x) for x in found)
    text += " ".join(str(dict(x.items())) for x in found if isinstance(x, pywbem.CIMInstance))
    return {g for g in VM_GUIDS if g in text.upper()}


VM_GUIDS: set[str] = set()  # A, B, C and GHOST, filled by the fixture

# ---------------------------------------------------------------------- intrinsic operations
Q = "SELECT * FROM Msvm_ComputerSystem"
INTRINSIC_TABLE: dict[str, Callable[[pywbem.WBEMConnection, pywbem.CIMInstanceName], Any]] = {
    "EnumerateInstances": lambda c, vm: c.EnumerateInstances(names.COMPUTER_SYSTEM)
    + c.EnumerateInstances("CIM_SettingData") + c.EnumerateInstances(names.SETTINGS_DEFINE_STATE)
    + c.EnumerateInstances(names.VSSD_COMPONENT) + c.EnumerateInstances(names.SYSTEM_EXPORT_SD),
    "EnumerateInstanceNames": lambda c, vm: c.EnumerateInstanceNames(names.COMPUTER_SYSTEM)
    + c.EnumerateInstanceNames(names.VSGSD),
    "GetInstance": lambda c, vm: [c.GetInstance(vm), c.GetInstance(vssd(vm))],
    "Associators": lambda c, vm: c.Associators(vm),
    "AssociatorNames": lambda c, vm: c.AssociatorNames(vm),
    "References": lambda c, vm: c.References(vm),
    "ReferenceNames": lambda c, vm: c.ReferenceNames(vm),
    "ExecQuery": lambda c, vm: c.ExecQuery("WQL", Q)
    + c.ExecQuery("WQL", f"SELECT * FROM {names.VSGSD}"),
    "OpenEnumerateInstances": lambda c, vm: list(c.IterEnumerateInstances(
        names.COMPUTER_SYSTEM, MaxObjectCount=1)),
    "OpenEnumerateInstancePaths": lambda c, vm: list(c.IterEnumerateInstancePaths(
        names.VSSD, MaxObjectCount=1)),
    "OpenReferenceInstances": lambda c, vm: list(c.IterReferenceInstances(vm)),
    "OpenReferenceInstancePaths": lambda c, vm: list(c.IterReferenceInstancePaths(vm)),
    "OpenAssociatorInstances": lambda c, vm: list(c.IterAssociatorInstances(vm)),
    "OpenAssociatorInstancePaths": lambda c, vm: list(c.IterAssociatorInstancePaths(vm)),
    "OpenQueryInstances": lambda c, vm: list(c.IterQueryInstances("WQL", Q).generator),
}
# class and qualifier operations name no VM: every user may run them, nothing is filtered
CLASS_OPERATIONS = {"GetClass", "EnumerateClasses", "EnumerateClassNames", "GetQualifier",
                    "EnumerateQualifiers"}
# the pull and close operations run inside the Iter* calls above (MaxObjectCount=1 pulls)
PULLED = {"PullInstancesWithPath", "PullInstancePaths", "PullInstances", "CloseEnumeration"}


def test_every_intrinsic_operation_is_in_the_table() -> None:
    assert set(INTRINSIC_TABLE) | CLASS_OPERATIONS | PULLED == set(INTRINSIC) | set(PULL_OPS)


@pytest.mark.parametrize("operation", sorted(INTRINSIC_TABLE))
def test_intrinsic_operations_are_filtered(live: Live, operation: str) -> None:
    run = INTRINSIC_TABLE[operation]
    admin, alice, bob = (live.connect(u) for u in ("admin", "alice", "bob"))
    # the administrator sees every VM (the test can fail: the filter is not a no-op)
    seen = set()
    for vm in (live.a, live.b, live.c):
        seen |= guids_in(run(admin, vm))
    assert {guid(live.a), guid(live.b), guid(live.c)} <= seen, operation
    # alice: A yes, B and C never; B answers exactly like GHOST
    assert guids_in(run(alice, live.a)) == {guid(live.a)}, operation
    for hidden in (live.b, live.c):
        got = answer(lambda h=hidden: guids_in(run(alice, h)))  # type: ignore[misc]
        ghost = answer(lambda: guids_in(run(alice, live.ghost)))
        assert got in (NOT_FOUND, set()) or got == {guid(live.a)}, (operation, got)
        assert (got == NOT_FOUND) == (ghost == NOT_FOUND), operation
    assert guids_in(run(bob, live.b)) == {guid(live.b)}, operation


def test_class_operations_stay_open(live: Live) -> None:
    alice = live.connect("alice")
    assert alice.GetClass(names.COMPUTER_SYSTEM).classname == names.COMPUTER_SYSTEM
    assert alice.EnumerateClassNames(DeepInheritance=True)
    assert alice.EnumerateClasses(ClassName=names.COMPUTER_SYSTEM) is not None
    assert alice.EnumerateQualifiers()
    assert alice.GetQualifier("Key").name == "Key"


# ---------------------------------------------------------------------- extrinsic methods
Params = Callable[[Live, pywbem.CIMInstanceName], dict[str, Any]]
U16, U64 = pywbem.Uint16, pywbem.Uint64

# methods whose parameters name a VM: alice may on A; B and GHOST are refused alike (32769)
VM_METHODS: dict[str, Params] = {
    "AddKvpItems": lambda lv, vm: {"TargetSystem": vm, "DataItems": []},
    "ModifyKvpItems": lambda lv, vm: {"TargetSystem": vm, "DataItems": []},
    "RemoveKvpItems": lambda lv, vm: {"TargetSystem": vm, "DataItems": []},
    "AddVirtualSystemResources": lambda lv, vm: {"TargetSystem": vm,
                                                 "ResourceSettingData": [rasd_text(vm)]},
    "ModifyVirtualSystemResources": lambda lv, vm: {"ComputerSystem": vm,
                                                    "ResourceSettingData": [rasd_text(vm)]},
    "RemoveVirtualSystemResources": lambda lv, vm: {"TargetSystem": vm,
                                                    "ResourceSettingData": [rasd_ref(vm)]},
    "ApplyVirtualSystemSnapshot": lambda lv, vm: {"ComputerSystem": vm,
                                                  "SnapshotSettingData": vssd(vm)},
    "ApplyVirtualSystemSnapshotEx": lambda lv, vm: {"ComputerSystem": vm,
                                                    "SnapshotSettingData": vssd(vm)},
    "CreateVirtualSystemSnapshot": lambda lv, vm: {"SourceSystem": vm},
    "RemoveVirtualSystemSnapshot": lambda lv, vm: {"SnapshotSettingData": vssd(vm)},
    "RemoveVirtualSystemSnapshotTree": lambda lv, vm: {"SnapshotSettingData": vssd(vm)},
    "ExportVirtualSystem": lambda lv, vm: {"ComputerSystem": vm, "CopyVmState": True,
                                           "ExportDirectory": str(lv.root / "no-such-dir")},
    "ExportVirtualSystemEx": lambda lv, vm: {"ComputerSystem": vm,
                                             "ExportDirectory": str(lv.root / "no-such-dir")},
    "GetSummaryInformation": lambda lv, vm: {"SettingData": [vssd(vm)],
                                             "RequestedInformation": [pywbem.Uint32(1)]},
    "GetSystemCompatibilityInfo": lambda lv, vm: {"ComputerSystem": vm},
    "GetVirtualSystemThumbnailImage": lambda lv, vm: {"TargetSystem": vssd(vm),
                                                      "WidthPixels": U16(80),
                                                      "HeightPixels": U16(60)},
    "ModifyVirtualSystem": lambda lv, vm: {"ComputerSystem": vm, "SystemSettingData": str(
        pywbem.CIMInstance(names.VSSD, properties={"InstanceID": f"Microsoft:{guid(vm)}"})
        .tocimxmlstr())},
    "DestroyVirtualSystem": lambda lv, vm: {"ComputerSystem": vm},  # run last (see below)
}
# methods that name no VM: they need the role everywhere (alice: 32769), except two readers
GLOBAL_METHODS: dict[str, Params] = {
    "ImportVirtualSystem": lambda lv, vm: {"ImportDirectory": str(lv.root / "none"),
                                           "GenerateNewID": True},
    "ModifyServiceSettings": lambda lv, vm: {"SettingData": ""},
    "CheckSystemCompatibilityInfo": lambda lv, vm: {"CompatibilityInfo": [U16(1)]},
    "RequestStateChange": lambda lv, vm: {"RequestedState": U16(2)},
    "StartService": lambda lv, vm: {}, "StopService": lambda lv, vm: {},
    "PlanVirtualSystem": lambda lv, vm: {}, "InstantiateVirtualSystem": lambda lv, vm: {},
    "CloneVirtualSystem": lambda lv, vm: {},
}
ANY_SCOPE_METHODS: dict[str, Params] = {
    "GetVirtualSystemImportSettingData": lambda lv, vm: {"ImportDirectory": str(lv.root / "n")},
    "FormatError": lambda lv, vm: {"Errors": []},
}


def _image_params(lv: Live, method: str) -> dict[str, Any]:
    """Plausible IN parameters of an image service method, from its declaration."""
    cls = next(c for c in load_schema(names.NAMESPACE).classes
               if c.classname == names.IMAGE_SERVICE)
    out: dict[str, Any] = {}
    for p in cls.methods[method].parameters.values():
        quals = {q.lower() for q in p.qualifiers}
        if "in" not in quals and "out" in quals:
            continue
        out[p.name] = {"string": str(lv.root / "img.vhd"), "uint64": U64(2**20),
                       "uint16": U16(2), "boolean": False}.get(p.type)
    return {k: v for k, v in out.items() if v is not None}


def _scoped_import(scope: str) -> Params:
    def build(lv: Live, vm: pywbem.CIMInstanceName) -> dict[str, Any]:
        isd = pywbem.CIMInstance(names.IMPORT_SD, properties={"SecurityScope": scope,
                                                              "CreateCopy": False})
        return {"ImportDirectory": str(lv.root / "none"), "ImportSettingData": isd}
    return build


def _scoped_define(scope: str) -> Params:
    def build(lv: Live, vm: pywbem.CIMInstanceName) -> dict[str, Any]:
        return {"SystemSettingData": pywbem.CIMInstance(names.VSGSD, properties={
            "ElementName": f"scope-new-{lv.root.name}", "ScopeOfResidence": scope})}
    return build


# methods that create a VM in a scope: the role is needed in that scope
SCOPE_METHODS = {"DefineVirtualSystem": _scoped_define, "ImportVirtualSystemEx": _scoped_import}


def _methods(classname: str) -> set[str]:
    cls = next(c for c in load_schema(names.NAMESPACE).classes if c.classname == classname)
    return set(cls.methods)


def test_every_method_is_in_the_table() -> None:
    assert set(VM_METHODS) | set(GLOBAL_METHODS) | set(ANY_SCOPE_METHODS) | set(
        SCOPE_METHODS) == _methods(names.VSMS)
    assert _methods(names.COMPUTER_SYSTEM) == set(SYSTEM_METHODS)
    assert _methods(names.CONCRETE_JOB) == _methods(names.STORAGE_JOB) == set(JOB_METHODS)


def call(conn: pywbem.WBEMConnection, target: Any, method: str, params: dict[str, Any]) -> Any:
    return answer(lambda: wbemflow.invoke(conn, target, method, **params)[0])


def test_vm_methods(live: Live) -> None:
    admin, alice, bob = live.connect("admin"), live.connect("alice"), live.connect("bob")
    for method, build in sorted(VM_METHODS.items()):
        for hidden in (live.b, live.c, live.ghost):
            assert call(alice, names.VSMS, method, build(live, hidden)) == DENIED, method
        # bob reads B but is no administrator there
        assert call(bob, names.VSMS, method, build(live, live.b)) == DENIED, method
        mine = live.a if method != "DestroyVirtualSystem" else define_in_scope(
            admin, f"scope-a2-{live.root.name}", "t1")
        assert call(alice, names.VSMS, method, build(live, mine)) not in (DENIED, NOT_FOUND)
    assert live.service.host.get_system(guid(live.b)) is not None
    gone = [vs for vs in live.service.host.list_systems()
            if vs.name == f"scope-a2-{live.root.name}"]
    assert gone == []  # alice destroyed the VM of her scope


def test_global_and_scope_methods(live: Live) -> None:
    admin, alice = live.connect("admin"), live.connect("alice")
    for method, build in GLOBAL_METHODS.items():
        assert call(alice, names.VSMS, method, build(live, live.a)) == DENIED, method
        assert call(admin, names.VSMS, method, build(live, live.a)) != DENIED, method
    for method, build in ANY_SCOPE_METHODS.items():
        assert call(alice, names.VSMS, method, build(live, live.a)) != DENIED, method
    for method in _methods(names.IMAGE_SERVICE):
        params = _image_params(live, method)
        assert call(alice, names.IMAGE_SERVICE, method, params) == DENIED, method
    for method, scoped in SCOPE_METHODS.items():
        assert call(alice, names.VSMS, method, scoped("t2")(live, live.a)) == DENIED, method
        assert call(alice, names.VSMS, method, scoped("")(live, live.a)) == DENIED, method
        assert call(alice, names.VSMS, method, scoped("t1")(live, live.a)) != DENIED, method
    mine = [vs for vs in live.service.host.list_systems()
            if vs.name == f"scope-new-{live.root.name}"]
    assert [vs.scope_of_residence for vs in mine] == ["t1"]  # alice defined it, in t1
    assert [guid(p) for p in alice.EnumerateInstanceNames(names.COMPUTER_SYSTEM)
            if guid(p) == mine[0].guid]


SYSTEM_METHODS: dict[str, dict[str, Any]] = {
    "RequestStateChange": {"RequestedState": U16(32768)},
    "SetPowerState": {"PowerState": pywbem.Uint32(1)},
}
JOB_METHODS: dict[str, dict[str, Any]] = {
    "GetError": {}, "GetErrorEx": {}, "KillJob": {"DeleteOnKill": False},
    "RequestStateChange": {"RequestedState": U16(4)},
}


def _drop_snapshots(conn: pywbem.WBEMConnection, vm: pywbem.CIMInstanceName) -> None:
    """Remove the snapshot trees of ``vm`` (the method table's CreateVirtualSystemSnapshot made
    one on A), waiting while the VM is busy; an export of a VM with snapshots is refused
    (32770)."""
    deadline = time.monotonic() + 120
    while True:
        roots = [s.path for s in conn.Associators(vm, AssocClass=names.ELEMENT_SETTING_DATA,
                                                  ResultClass=names.VSSD)
                 if s["SettingType"] == 5 and s["Parent"] is None]
        if not roots and not conn.GetInstance(vm)["OperationalStatus"][1:]:
            return  # no snapshot and no change in progress (OperationalStatus [2] alone)
        for root in roots:
            rv, out = wbemflow.invoke(conn, names.VSMS, "RemoveVirtualSystemSnapshotTree",
                                      SnapshotSettingData=root)
            if rv == ReturnCode.JOB_STARTED:
                wbemflow.wait_job(conn, out["Job"])
        assert time.monotonic() < deadline, "the snapshots of A were not removed"
        time.sleep(0.2)


def test_methods_on_vms_and_jobs(live: Live) -> None:
    admin, alice = live.connect("admin"), live.connect("alice")
    for method, params in SYSTEM_METHODS.items():
        for hidden in (live.b, live.c, live.ghost):
            assert call(alice, hidden, method, params) == NOT_FOUND, method
        assert call(alice, live.a, method, params) not in (DENIED, NOT_FOUND), method
    _drop_snapshots(admin, live.a)
    # jobs: admin exports B and A; alice sees the job on A (her VM), not the one on B
    jobs = {}
    for vm in (live.a, live.b):
        rv, out = wbemflow.invoke(admin, names.VSMS, "ExportVirtualSystem", ComputerSystem=vm,
                                  CopyVmState=True, ExportDirectory=str(live.root))
        assert rv == ReturnCode.JOB_STARTED, rv
        jobs[guid(vm)] = wbemflow.wait_job(admin, out["Job"]).path
    on_a, on_b = jobs[guid(live.a)], jobs[guid(live.b)]
    listed = {str(p.keybindings["InstanceID"]) for p in
              alice.EnumerateInstanceNames(names.CONCRETE_JOB)}
    assert str(on_a.keybindings["InstanceID"]) in listed
    assert str(on_b.keybindings["InstanceID"]) not in listed
    assert answer(lambda: alice.GetInstance(on_b)) == NOT_FOUND
    assert guids_in(alice.References(on_a)) == {guid(live.a)}
    for method, params in JOB_METHODS.items():
        assert call(alice, on_b, method, params) == NOT_FOUND, method
        assert call(alice, on_a, method, params) not in (DENIED, NOT_FOUND), method
    # a storage job names no VM: only its owner (and global users) see it
    rv, out = wbemflow.invoke(admin, names.IMAGE_SERVICE, "CreateDynamicVirtualHardDisk",
                              Path=str(live.root / "s.vhd"), MaxInternalSize=U64(2**20))
    assert rv == ReturnCode.JOB_STARTED
    storage = wbemflow.wait_job(admin, out["Job"]).path
    assert answer(lambda: alice.GetInstance(storage)) == NOT_FOUND
    assert admin.GetInstance(storage)["InstanceID"] == storage.keybindings["InstanceID"]
    # alice's own job is hers
    (live.root / "alice").mkdir()
    rv, out = wbemflow.invoke(alice, names.VSMS, "ExportVirtualSystem", ComputerSystem=live.a,
                              CopyVmState=True, ExportDirectory=str(live.root / "alice"))
    assert rv == ReturnCode.JOB_STARTED, rv
    assert wbemflow.wait_job(alice, out["Job"])["InstanceID"] == \
        out["Job"].keybindings["InstanceID"]


def test_python_api_through_the_registry(live: Live) -> None:
    def names_seen(user: str, grants: tuple[tuple[str, Role], ...]) -> set[str]:
        view = ScopedRegistry(live.service.registry,
                              Principal(user, Role.ADMINISTRATOR, "users-file", "", grants))
        return {guid(i.path) for i in view.enumerate_instances(names.NAMESPACE,
                                                               names.COMPUTER_SYSTEM)
                if guid(i.path) in VM_GUIDS | {guid(live.b), guid(live.c)}}
    assert names_seen("x", (("t2", Role.READER),)) == {guid(live.b)}
    assert names_seen("x", (("", Role.READER), ("t2", Role.ADMINISTRATOR))) >= {
        guid(live.b), guid(live.c)}
    assert guid(live.b) in names_seen("x", ())  # unscoped: everything


def test_a_scoped_user_sends_back_the_settings_the_service_gave(live: Live) -> None:
    """The memory and processor RASDs carry fixed DeviceIDs ("Microsoft:<GUID>" that name no
    VM): sent back by a scoped user, only their InstanceID decides whose VM they change."""
    alice = live.connect("alice")
    found = alice.Associators(vssd(live.a), AssocClass=names.VSSD_COMPONENT)
    mem = next(i for i in found if i.classname == names.MEMORY_SD)
    assert str(mem["DeviceID"]).startswith("Microsoft:")
    mem["VirtualQuantity"] = pywbem.Uint64(int(mem["VirtualQuantity"]) + 64)
    rv, out = wbemflow.invoke(alice, names.VSMS, "ModifyVirtualSystemResources",
                              ComputerSystem=live.a, ResourceSettingData=[mem.tocimxmlstr()])
    assert rv == 0, out
    again = live.service.host.get_system(guid(live.a))
    assert again is not None and again.memory_mb == int(mem["VirtualQuantity"])


def test_logical_devices_and_bios_follow_their_vm(live: Live) -> None:
    """Devices name their VM by SystemName, the BIOS element by SoftwareElementID: a scoped
    user sees those of the VMs of its scopes only, and a hidden VM's device is not found."""
    alice = live.connect("alice")
    devices = alice.EnumerateInstances("CIM_LogicalDevice")
    bios = alice.EnumerateInstances("Msvm_BIOSElement")
    assert devices and bios
    assert guids_in(devices) == guids_in(bios) == {guid(live.a)}
    admin = live.connect("admin")
    hidden = next(d for d in admin.EnumerateInstances("CIM_LogicalDevice")
                  if str(d["SystemName"]).upper() == guid(live.b))
    assert answer(lambda: alice.GetInstance(hidden.path)) == NOT_FOUND
