"""Our MOF against the syntax blocks of the Hyper-V v1 reference pages.

Each class page shows every property (inherited ones included) with its type; each method page
shows the method's parameters in order with direction and type. The pages live outside the
repository (VSMS_REFERENCE_PAGES, default ../shared/reference/hyperv-v1/pages beside
the checkout); without them
these tests are skipped.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import pywbem

from vsms.cim import names

PAGES = Path(os.environ.get(
    "VSMS_REFERENCE_PAGES",
    str(Path(__file__).resolve().parents[3] / "shared" / "reference" / "hyperv-v1" / "pages")))
pytestmark = pytest.mark.skipif(not PAGES.is_dir(), reason=f"no reference pages in {PAGES}")

CLASS_PAGES = {
    names.COMPUTER_SYSTEM: "msvm-computersystem", names.VSSD: "msvm-virtualsystemsettingdata",
    names.VSGSD: "msvm-virtualsystemglobalsettingdata",
    names.RASD: "msvm-resourceallocationsettingdata", names.MEMORY_SD: "msvm-memorysettingdata",
    names.PROCESSOR_SD: "msvm-processorsettingdata",
    names.SYNTHETIC_NIC_SD: "msvm-syntheticethernetportsettingdata",
    names.EMULATED_NIC_SD: "msvm-emulatedethernetportsettingdata",
    names.CONCRETE_JOB: "msvm-concretejob", names.STORAGE_JOB: "msvm-storagejob",
    names.VSMS: "msvm-virtualsystemmanagementservice",
    names.IMAGE_SERVICE: "msvm-imagemanagementservice", names.VHD_INFO: "msvm-virtualharddiskinfo",
    names.EXPORT_SD: "msvm-virtualsystemexportsettingdata",
    names.IMPORT_SD: "msvm-virtualsystemimportsettingdata",
    names.AFFECTED_JOB_ELEMENT: "msvm-affectedjobelement",
    names.SETTINGS_DEFINE_STATE: "msvm-settingsdefinestate",
    names.VSSD_COMPONENT: "msvm-virtualsystemsettingdatacomponent",
    names.SYSTEM_EXPORT_SD: "msvm-systemexportsettingdata",
    names.ELEMENT_SETTING_DATA: "msvm-elementsettingdata",
    names.HOSTED_SERVICE: "msvm-hostedservice",
    **{c: c.lower().replace("_", "-") for c in (
        "Msvm_ResourcePool", "Msvm_ProcessorPool", "Msvm_AllocationCapabilities",
        "Msvm_ElementCapabilities", "Msvm_SettingsDefineCapabilities",
        "Msvm_ElementAllocatedFromPool", "Msvm_ResourceAllocationFromPool")},
    names.SUMMARY_INFORMATION: "msvm-summaryinformation",
}
# properties the pages type as an object (array); in CIM-XML they are embedded-instance strings
OBJECT_PROPERTIES = {(names.SUMMARY_INFORMATION, "snapshots"),
                     (names.SUMMARY_INFORMATION, "asynchronoustasks")}
# method pages are named "<method>-<class page>" or "<class page>-<method>"
METHOD_OWNERS = {CLASS_PAGES[c]: c for c in (names.VSMS, names.IMAGE_SERVICE,
                                             names.COMPUTER_SYSTEM, names.CONCRETE_JOB,
                                             names.STORAGE_JOB)}
# OUT parameters the pages type as an object; in CIM-XML they are embedded-object strings
OBJECT_OUT_PARAMS = {("GetVirtualSystemImportSettingData", "ImportSettingData"),
                     ("GetSummaryInformation", "SummaryInformation")}


def syntax_block(page: Path) -> str:
    m = re.search(r"```[a-z ]*\n(.*?)```", page.read_text(encoding="utf-8"), re.S)
    assert m, f"no syntax block in {page.name}"
    return m.group(1)


def documented_properties(page: Path) -> dict[str, tuple[str, bool, str | None]]:
    block = syntax_block(page)
    body = block[block.index("{") + 1:block.rindex("}")]
    out = {}
    for decl in filter(None, (d.strip() for d in body.split(";"))):
        m = re.match(r"(\w+)\s+(REF\s+)?(\w+)(\[\])?", decl)
        assert m, decl
        typ, ref, name, arr = m.groups()
        out[name.lower()] = ("reference" if ref else typ.lower(), bool(arr),
                             typ.lower() if ref else None)
    return out


def method_pages() -> list[tuple[str, Path]]:
    out = []
    for page in sorted(PAGES.glob("*.md")):
        stem = page.stem
        for class_page, classname in METHOD_OWNERS.items():
            if stem.startswith(class_page + "-") or stem.endswith("-" + class_page):
                out.append((classname, page))
    return out


@pytest.mark.parametrize("classname", sorted(CLASS_PAGES))
def test_properties_match_the_class_page(classes: dict[str, pywbem.CIMClass],
                                         classname: str) -> None:
    expected = documented_properties(PAGES / f"{CLASS_PAGES[classname]}.md")
    for cn, prop in OBJECT_PROPERTIES:
        if cn == classname:
            expected[prop] = ("string", expected[prop][1], None)
    cls = classes[classname.lower()]
    got = {n.lower(): (p.type, p.is_array, (p.reference_class or "").lower() or None)
           for n, p in cls.properties.items()}
    assert sorted(got) == sorted(expected)
    assert got == expected


@pytest.mark.parametrize(("classname", "page"), method_pages() if PAGES.is_dir() else [],
                         ids=lambda v: v.stem if isinstance(v, Path) else v)
def test_methods_match_the_method_page(classes: dict[str, pywbem.CIMClass], classname: str,
                                       page: Path) -> None:
    m = re.match(r"\s*(\w+)\s+(\w+)\((.*)\);", syntax_block(page), re.S)
    assert m, page.name
    return_type, method, params = m.groups()
    meth = classes[classname.lower()].methods[method]
    assert meth.return_type == return_type.lower()
    expected = []
    for decl in filter(None, (p.strip() for p in params.split(","))):
        pm = re.match(r"\[(in|out)\]\s+(\w+)\s+(REF\s+)?(\w+)(\[\])?", decl)
        assert pm, decl
        direction, typ, ref, name, arr = pm.groups()
        if (method, name) in OBJECT_OUT_PARAMS:
            typ = "string"
        expected.append((name, direction, "reference" if ref else typ.lower(), bool(arr),
                         typ.lower() if ref else None))
    got = []
    for p in meth.parameters.values():
        q = {k.lower(): v.value for k, v in p.qualifiers.items()}
        direction = "out" if q.get("out") and q.get("in") is False else "in"
        got.append((p.name, direction, p.type, p.is_array,
                    p.reference_class.lower() if p.reference_class else None))
    assert got == expected


def test_every_documented_method_is_declared(classes: dict[str, pywbem.CIMClass]) -> None:
    """The method tables of the service pages, including the ones marked not supported."""
    for classname in (names.VSMS, names.IMAGE_SERVICE, names.CONCRETE_JOB, names.STORAGE_JOB,
                      names.COMPUTER_SYSTEM):
        text = (PAGES / f"{CLASS_PAGES[classname]}.md").read_text(encoding="utf-8")
        table = text.split("### Methods", 1)[1].split("### Properties", 1)[0]
        documented = set(re.findall(r"^\| \[?\*\*(\w+)\*\*", table, re.M))
        assert documented, classname
        assert documented <= set(classes[classname.lower()].methods), classname
