"""The decision table: every method of our MOF has a role; what each role may do."""

from __future__ import annotations

import pytest

from vsms.auth.policy import METHODS, Role, may_call, may_run, method_role
from vsms.cim.schema import load_schema
from vsms.providers.classdefs import resolve_classes
from vsms.wbem.dispatch import INTRINSIC
from vsms.wbem.pull import PULL_OPS


def mof_methods() -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for ns in ("root/virtualization", "interop"):
        for cls in resolve_classes(load_schema(ns).classes):
            out.update((cls.classname, m) for m in cls.methods)
    return out


def test_table_covers_exactly_the_methods_of_the_mof() -> None:
    table = {(c, m) for c, methods in METHODS.items() for m in methods}
    declared = mof_methods()
    assert declared, "the MOF declares methods"
    assert declared - table == set(), "methods without a decision"
    assert table - declared == set(), "decisions for methods the MOF does not declare"


def test_every_method_has_a_decision_for_every_role() -> None:
    for classname, method in sorted(mof_methods()):
        need = method_role(classname, method)
        assert need in (Role.OPERATOR, Role.ADMINISTRATOR), (classname, method)
        assert may_call(Role.ADMINISTRATOR, classname, method)
        assert not may_call(Role.READER, classname, method)  # intrinsic reads only
        assert may_call(Role.OPERATOR, classname, method) == (need == Role.OPERATOR)


OPERATOR_MAY = [
    ("Msvm_ComputerSystem", "RequestStateChange"),
    ("Msvm_ConcreteJob", "RequestStateChange"), ("Msvm_ConcreteJob", "KillJob"),
    ("Msvm_ConcreteJob", "GetError"), ("Msvm_StorageJob", "RequestStateChange"),
    ("Msvm_StorageJob", "GetErrorEx"),
    ("Msvm_VirtualSystemManagementService", "GetSummaryInformation"),
    ("Msvm_ImageManagementService", "GetVirtualHardDiskInfo"),
]
ADMIN_ONLY = [
    ("Msvm_VirtualSystemManagementService", m) for m in (
        "DefineVirtualSystem", "ModifyVirtualSystem", "DestroyVirtualSystem",
        "AddVirtualSystemResources", "ModifyVirtualSystemResources",
        "RemoveVirtualSystemResources", "ExportVirtualSystem", "ExportVirtualSystemEx",
        "ImportVirtualSystem", "ImportVirtualSystemEx", "GetVirtualSystemImportSettingData",
        "RequestStateChange", "StopService")
] + [("Msvm_ImageManagementService", m) for m in (
    "CreateDynamicVirtualHardDisk", "CreateFixedVirtualHardDisk",
    "CreateDifferencingVirtualHardDisk", "ConvertVirtualHardDisk", "Mount")]


@pytest.mark.parametrize("classname,method", OPERATOR_MAY)
def test_operator_starts_stops_and_watches_jobs(classname: str, method: str) -> None:
    assert may_call(Role.OPERATOR, classname, method)
    assert may_call(Role.OPERATOR, classname.lower(), method.upper())  # names are caseless
    assert not may_call(Role.READER, classname, method)


@pytest.mark.parametrize("classname,method", ADMIN_ONLY)
def test_define_destroy_export_import_and_disks_are_for_administrators(
        classname: str, method: str) -> None:
    assert not may_call(Role.OPERATOR, classname, method)
    assert may_call(Role.ADMINISTRATOR, classname, method)


def test_unknown_methods_and_classes_need_an_administrator() -> None:
    assert method_role("Msvm_ComputerSystem", "NoSuchMethod") == Role.ADMINISTRATOR
    assert method_role("TST_Service", "Echo") == Role.ADMINISTRATOR


def test_intrinsic_reads_for_all_writes_for_administrators() -> None:
    reads = set(INTRINSIC) | set(PULL_OPS)
    for op in reads:
        assert may_run(Role.READER, op), op
    for op in ("CreateInstance", "ModifyInstance", "DeleteInstance", "CreateClass",
               "ModifyClass", "DeleteClass", "SetProperty", "SetQualifier", "DeleteQualifier",
               "NoSuchOperation"):
        assert not may_run(Role.OPERATOR, op) and may_run(Role.ADMINISTRATOR, op), op


def test_role_names() -> None:
    assert Role.parse(" Operator ") == Role.OPERATOR
    assert [r.label for r in Role] == ["reader", "operator", "administrator"]
    with pytest.raises(ValueError, match="unknown role 'root'"):
        Role.parse("root")
