"""Every wire enum in vsms.cim.enums against the ValueMap of what it stands for in our MOF.

A row of TABLE names an enum, a target and how the two must agree:
  "Class.Property"           a property's ValueMap
  "Class.Method()"           a method's return-value ValueMap
  "Class.Method(Parameter)"  a parameter's ValueMap
Modes: "same" (explicit ValueMap values == enum values), "enum_in_mof" (every enum value is an
explicit ValueMap entry), "mof_in_enum" (every explicit ValueMap entry is an enum member) and
"vendor_same" (enum_in_mof, and the vendor values >= 32768 of the MOF are all in the enum).
Range entries such as "..", "7..4095" or "32768..65535" are reserved space, not values.
"""

from __future__ import annotations

import inspect
from enum import IntEnum

import pytest
import pywbem

from vsms.cim import enums, names
from vsms.cim.enums import ReturnCode

TABLE: list[tuple[type[IntEnum], str, str]] = [
    (enums.JobState, f"{names.CONCRETE_JOB}.JobState", "same"),
    (enums.JobState, f"{names.STORAGE_JOB}.JobState", "same"),
    (enums.JobRequestedState, f"{names.CONCRETE_JOB}.RequestStateChange(RequestedState)", "same"),
    (enums.JobRequestedState, f"{names.STORAGE_JOB}.RequestStateChange(RequestedState)", "same"),
    (enums.StateChangeReturn, f"{names.CONCRETE_JOB}.RequestStateChange()", "same"),
    (enums.StateChangeReturn, f"{names.STORAGE_JOB}.RequestStateChange()", "same"),
    (enums.EnabledState, f"{names.COMPUTER_SYSTEM}.EnabledState", "vendor_same"),
    (enums.RequestedState, f"{names.COMPUTER_SYSTEM}.RequestedState", "vendor_same"),
    (enums.RequestedState, f"{names.COMPUTER_SYSTEM}.RequestStateChange(RequestedState)",
     "mof_in_enum"),
    (enums.HealthState, f"{names.COMPUTER_SYSTEM}.HealthState", "same"),
    (enums.OperationalStatus, f"{names.COMPUTER_SYSTEM}.OperationalStatus", "same"),
    (enums.ResourceType, f"{names.RASD}.ResourceType", "same"),
    (enums.ResourceType, f"{names.MEMORY_SD}.ResourceType", "same"),
    (enums.SettingType, f"{names.VSGSD}.SettingType", "same"),
    (enums.SettingType, f"{names.VSSD}.SettingType", "mof_in_enum"),
    (enums.VirtualHardDiskType, f"{names.VHD_INFO}.Type", "same"),
    (enums.StorageJobType, f"{names.STORAGE_JOB}.Type", "same"),
    (enums.CopySnapshotConfiguration, f"{names.EXPORT_SD}.CopySnapshotConfiguration", "same"),
    (enums.ElementEffects, f"{names.AFFECTED_JOB_ELEMENT}.ElementEffects", "same"),
    (enums.SummaryItem, f"{names.VSMS}.GetSummaryInformation(RequestedInformation)", "same"),
    (enums.HeartbeatStatus, f"{names.SUMMARY_INFORMATION}.Heartbeat", "same"),
]

# ReturnCode is the return value of every Msvm method that documents the 327xx codes.
RETURN_CODE_CLASSES = (names.VSMS, names.IMAGE_SERVICE)
RETURN_CODE_METHODS = (f"{names.COMPUTER_SYSTEM}.RequestStateChange",
                       f"{names.CONCRETE_JOB}.GetError", f"{names.CONCRETE_JOB}.GetErrorEx",
                       f"{names.STORAGE_JOB}.GetErrorEx")
NOT_SUPPORTED_METHODS = {"PlanVirtualSystem", "InstantiateVirtualSystem", "CloneVirtualSystem"}
INHERITED_DMTF_METHODS = {"RequestStateChange", "StartService", "StopService"}


def value_map(element: pywbem.CIMProperty | pywbem.CIMMethod | pywbem.CIMParameter
              ) -> tuple[set[int], list[str]]:
    """(explicit values, range entries) of an element's ValueMap."""
    q = element.qualifiers.get("ValueMap")
    assert q is not None, f"{element.name} has no ValueMap"
    explicit: set[int] = set()
    ranges: list[str] = []
    for entry in q.value:
        if ".." in entry:
            ranges.append(entry)
        else:
            explicit.add(int(entry, 0))
    return explicit, ranges


def target(classes: dict[str, pywbem.CIMClass], spec: str
           ) -> pywbem.CIMProperty | pywbem.CIMMethod | pywbem.CIMParameter:
    classname, member = spec.split(".", 1)
    cls = classes[classname.lower()]
    if "(" not in member:
        return cls.properties[member]
    method, param = member[:-1].split("(")
    meth = cls.methods[method]
    return meth.parameters[param] if param else meth


def test_every_enum_is_checked() -> None:
    wire_enums = {obj for _, obj in inspect.getmembers(enums, inspect.isclass)
                  if issubclass(obj, IntEnum) and obj is not IntEnum}
    covered = {row[0] for row in TABLE} | {ReturnCode}
    missing = sorted(e.__name__ for e in wire_enums - covered)
    assert not missing, (f"add a row to TABLE in {__file__} for each new wire enum, naming the "
                         f"MOF property or method it stands for: {missing}")


@pytest.mark.parametrize(("enum", "spec", "mode"), TABLE,
                         ids=[f"{e.__name__}-{s}" for e, s, _ in TABLE])
def test_enum_matches_value_map(classes: dict[str, pywbem.CIMClass], enum: type[IntEnum],
                                spec: str, mode: str) -> None:
    explicit, _ = value_map(target(classes, spec))
    members = {int(m) for m in enum}
    if mode == "same":
        assert explicit == members, (f"{spec}: only in MOF {sorted(explicit - members)}, "
                                     f"only in {enum.__name__} {sorted(members - explicit)}")
    if mode in ("enum_in_mof", "vendor_same"):
        assert members <= explicit, f"{enum.__name__} not in {spec}: {sorted(members - explicit)}"
    if mode == "vendor_same":
        vendor = {v for v in explicit if v >= 32768}
        assert vendor <= members, f"{spec} vendor values not in {enum.__name__}: " \
                                  f"{sorted(vendor - members)}"
    if mode == "mof_in_enum":
        assert explicit <= members, f"{spec} values not in {enum.__name__}: " \
                                    f"{sorted(explicit - members)}"


def return_code_methods(classes: dict[str, pywbem.CIMClass]) -> dict[str, pywbem.CIMMethod]:
    out = {}
    for classname in RETURN_CODE_CLASSES:
        for name, meth in classes[classname.lower()].methods.items():
            if name not in NOT_SUPPORTED_METHODS | INHERITED_DMTF_METHODS:
                out[f"{classname}.{name}"] = meth
    for spec in RETURN_CODE_METHODS:
        classname, name = spec.split(".")
        out[spec] = classes[classname.lower()].methods[name]
    return out


def test_return_codes_of_every_method_are_return_code_members(
        classes: dict[str, pywbem.CIMClass]) -> None:
    members = {int(m) for m in ReturnCode}
    union: set[int] = set()
    for spec, meth in return_code_methods(classes).items():
        explicit, _ = value_map(meth)
        assert explicit <= members, f"{spec} returns codes missing from ReturnCode: " \
                                    f"{sorted(explicit - members)}"
        union |= explicit
    assert members <= union, f"ReturnCode members no method returns: {sorted(members - union)}"


def test_documented_return_code_sets(classes: dict[str, pywbem.CIMClass]) -> None:
    """The reference pages: 0, 4096 and 32768-32778 for the management service methods;
    32779 added for the image service; 32784 only for CheckSystemCompatibilityInfo;
    no 4096 for Unmount, GetError(Ex) and (instead a DMTF reserved range) RequestStateChange."""
    common = {int(c) for c in ReturnCode} - {ReturnCode.FILE_NOT_FOUND, ReturnCode.NOT_COMPATIBLE}
    methods = return_code_methods(classes)
    for spec, meth in methods.items():
        explicit, _ = value_map(meth)
        classname, name = spec.split(".")
        expected = set(common)
        if classname == names.IMAGE_SERVICE:
            expected.add(ReturnCode.FILE_NOT_FOUND)
        if name == "CheckSystemCompatibilityInfo":
            expected.add(ReturnCode.NOT_COMPATIBLE)
        if name in ("Unmount", "GetError", "GetErrorEx"):
            expected.discard(ReturnCode.JOB_STARTED)
        assert explicit == expected, spec


def test_hyperv_virtual_system_type(classes: dict[str, pywbem.CIMClass]) -> None:
    for classname in (names.VSSD, names.VSGSD):
        prop = classes[classname.lower()].properties["VirtualSystemType"]
        explicit, _ = value_map(prop)
        assert enums.VIRTUAL_SYSTEM_TYPE_HYPERV in explicit
        assert prop.value == enums.VIRTUAL_SYSTEM_TYPE_HYPERV
        values = dict(zip(prop.qualifiers["ValueMap"].value, prop.qualifiers["Values"].value,
                          strict=True))
        assert values[str(enums.VIRTUAL_SYSTEM_TYPE_HYPERV)] == "Microsoft Hyper-V"


def test_resource_type_uses_v1_numbering(classes: dict[str, pywbem.CIMClass]) -> None:
    """FACTS.md 5.4: 11 is Other Network Adapter, so serial port is 17 and disk is 22."""
    prop = classes[names.RASD.lower()].properties["ResourceType"]
    values = dict(zip(prop.qualifiers["ValueMap"].value, prop.qualifiers["Values"].value,
                      strict=True))
    assert values["11"] == "Other Network Adapter"
    assert (values["17"], values["21"], values["22"]) == ("Serial port", "Storage Extent", "Disk")
    assert (int(enums.ResourceType.STORAGE_EXTENT), int(enums.ResourceType.DISK)) == (21, 22)
