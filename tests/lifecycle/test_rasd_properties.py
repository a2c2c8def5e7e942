"""Every property of every RASD class we serve, set by a client through
ModifyVirtualSystemResources on qemu:///system: kept (the RASD then shows it, and the export
carries it) or refused with 32773 naming the property, never silently dropped."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pywbem

from tests.conftest import QEMU_URI, fresh_dir
from vsms.cim import names
from vsms.cim.enums import ReturnCode
from vsms.providers.common import ERROR_DESCRIPTION

from .service import Harness, make_iso, make_vhd, running_service, text

pytestmark = pytest.mark.qemu

SUB_SYNTHETIC_NIC = "Microsoft Synthetic Ethernet Port"
# A property a client sets that the service must keep (kind = ResourceSubType).
KEPT = {("*", "ElementName"), ("Microsoft Virtual Machine Memory", "VirtualQuantity"),
        ("Microsoft Processor", "VirtualQuantity"), (SUB_SYNTHETIC_NIC, "StaticMacAddress"),
        (SUB_SYNTHETIC_NIC, "Address"), (SUB_SYNTHETIC_NIC, "VirtualSystemIdentifiers"),
        (SUB_SYNTHETIC_NIC, "Connection"), ("Microsoft Emulated Ethernet Port", "Address"),
        ("Microsoft Synthetic Disk Drive", "Address"), ("Microsoft Synthetic DVD Drive", "Address"),
        ("Microsoft Virtual Hard Disk", "Connection"),
        ("Microsoft Virtual CD/DVD Disk", "Connection")}
# What names the device rather than describing it: changing it names another device.
IDENTITY = {"InstanceID", "ResourceType", "ResourceSubType", "Parent"}


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    path = fresh_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def svc(root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with running_service(root, tmp_path_factory.mktemp("state"), QEMU_URI) as harness:
        yield harness


def rasd(classname: str = names.RASD, **props: Any) -> str:
    inst = pywbem.CIMInstance(classname, properties={
        k: pywbem.Uint16(v) if k == "ResourceType" else v for k, v in props.items()})
    return text(inst)


def settings(svc: Harness, vm: pywbem.CIMInstanceName) -> dict[str, pywbem.CIMInstance]:
    vssd = svc.associators(vm, assoc_class=names.SETTINGS_DEFINE_STATE, result_class=names.VSSD)
    parts = svc.associators(vssd[0].path, assoc_class=names.VSSD_COMPONENT,
                            result_class="CIM_ResourceAllocationSettingData")
    return {str(i["InstanceID"]): i for i in parts}


@pytest.fixture(scope="module")
def vm(svc: Harness, root: Path) -> pywbem.CIMInstanceName:
    for name in ("a.vhd", "b.vhd"):
        make_vhd(root / name)
    make_iso(root / "c.iso")
    make_iso(root / "d.iso")
    gsd = pywbem.CIMInstance(names.VSGSD, properties={"ElementName": f"rasd-{uuid.uuid4().hex}"})
    rv, out = svc.vsms("DefineVirtualSystem", SystemSettingData=text(gsd), ResourceSettingData=[
        rasd(ResourceType=6, ResourceSubType="Microsoft Synthetic SCSI Controller"),
        rasd(names.SYNTHETIC_NIC_SD, ResourceType=10),
        rasd(names.EMULATED_NIC_SD, ResourceType=10)])
    assert rv == ReturnCode.COMPLETED, out
    path: pywbem.CIMInstanceName = out["DefinedSystem"]
    ide = {str(i["Address"]): i.path.to_wbem_uri() for i in settings(svc, path).values()
           if i["ResourceSubType"] == "Microsoft Emulated IDE Controller"}
    rv, out = svc.vsms("AddVirtualSystemResources", TargetSystem=path, ResourceSettingData=[
        rasd(ResourceType=22, ResourceSubType="Microsoft Synthetic Disk Drive",
             InstanceID="disk", Parent=ide["0"], Address="0"),
        rasd(ResourceType=21, ResourceSubType="Microsoft Virtual Hard Disk", Parent="disk",
             Connection=[str(root / "a.vhd")]),
        rasd(ResourceType=16, ResourceSubType="Microsoft Synthetic DVD Drive",
             InstanceID="dvd", Parent=ide["1"], Address="0"),
        rasd(ResourceType=21, ResourceSubType="Microsoft Virtual CD/DVD Disk", Parent="dvd",
             Connection=[str(root / "c.iso")])])
    assert rv == ReturnCode.COMPLETED, out
    return path


def _other(p: pywbem.CIMProperty, subtype: str, root: Path) -> Any:
    """A value the property does not have, of its type (a valid one where the service reads it)."""
    special = {
        ("Address", SUB_SYNTHETIC_NIC): "00155D7A7B01",
        ("Address", "Microsoft Emulated Ethernet Port"): "00155D7A7B02",
        ("Address", "Microsoft Synthetic Disk Drive"): "1",
        ("Address", "Microsoft Synthetic DVD Drive"): "1",
        ("Connection", "Microsoft Virtual Hard Disk"): [str(root / "b.vhd")],
        ("Connection", "Microsoft Virtual CD/DVD Disk"): [str(root / "d.iso")],
        ("VirtualQuantity", "Microsoft Virtual Machine Memory"): pywbem.Uint64(640),
        ("VirtualQuantity", "Microsoft Processor"): pywbem.Uint64(2),
        ("VirtualSystemIdentifiers", SUB_SYNTHETIC_NIC): ["{6B0C3F3E-1D1A-4E0F-9E47-0A1B2C3D4E5F}"],
        ("StaticMacAddress", SUB_SYNTHETIC_NIC): False,
    }
    if (p.name, subtype) in special:
        return special[(p.name, subtype)]
    if p.type == "boolean":
        return p.value is not True
    if p.type == "string":
        return ["other-value"] if p.is_array else f"{p.name} set by the client"
    number = pywbem.type_from_name(p.type)(7 if p.value != 7 else 8)
    return [number] if p.is_array else number


def cases() -> list[tuple[str, str]]:
    """(ResourceSubType, property) for every property of every RASD the VM above serves."""
    classes = {
        "Microsoft Virtual Machine Memory": names.MEMORY_SD, "Microsoft Processor":
        names.PROCESSOR_SD, "Microsoft Emulated IDE Controller": names.RASD,
        "Microsoft Synthetic SCSI Controller": names.RASD,
        "Microsoft Synthetic Disk Drive": names.RASD, "Microsoft Synthetic DVD Drive": names.RASD,
        "Microsoft Virtual Hard Disk": names.RASD, "Microsoft Virtual CD/DVD Disk": names.RASD,
        SUB_SYNTHETIC_NIC: names.SYNTHETIC_NIC_SD,
        "Microsoft Emulated Ethernet Port": names.EMULATED_NIC_SD}
    from vsms.cim.schema import load_schema
    by_name = {c.classname: c for c in load_schema(names.NAMESPACE).classes}
    return [(sub, p) for sub, cn in classes.items() for p in by_name[cn].properties
            if p not in IDENTITY]


@pytest.mark.parametrize("subtype,name", cases())
def test_a_property_a_client_sets_is_kept_or_refused_by_name(
        svc: Harness, root: Path, vm: pywbem.CIMInstanceName, subtype: str, name: str) -> None:
    before = next(i for i in settings(svc, vm).values() if i["ResourceSubType"] == subtype)
    sent = before.copy()
    prop = sent.properties.get(name)
    if prop is None:  # declared by the class, not served: typed as the class declares it
        cls = svc.registry.get_class(svc.ns, before.classname)
        decl = cls.properties[name]
        prop = pywbem.CIMProperty(name, None, type=decl.type, is_array=decl.is_array)
    value = _other(prop, subtype, root)
    sent.properties[name] = pywbem.CIMProperty(name, value, type=prop.type,
                                               is_array=prop.is_array)
    rv, out = svc.vsms("ModifyVirtualSystemResources", ComputerSystem=vm,
                       ResourceSettingData=[text(sent)])
    after = settings(svc, vm)[str(before["InstanceID"])]
    if rv == ReturnCode.COMPLETED:
        assert after[name] == value, f"{name} was accepted but not kept"
        restore = before.copy()
        rv, out = svc.vsms("ModifyVirtualSystemResources", ComputerSystem=vm,
                           ResourceSettingData=[text(restore)])
        assert rv == ReturnCode.COMPLETED, out
    else:
        assert ((subtype, name) not in KEPT and ("*", name) not in KEPT), out
        # 32773, or 32770 for a feature vsms does not have (DynamicMemoryEnabled TRUE)
        assert rv in (ReturnCode.INVALID_PARAMETER, ReturnCode.NOT_SUPPORTED), out
        assert name in out[ERROR_DESCRIPTION]
        assert after.items() == before.items(), "a refused change changed something"


def test_kept_values_survive_an_export_and_import(svc: Harness, root: Path) -> None:
    gsd = pywbem.CIMInstance(names.VSGSD, properties={"ElementName": f"keep-{uuid.uuid4().hex}"})
    rv, out = svc.vsms("DefineVirtualSystem", SystemSettingData=text(gsd), ResourceSettingData=[
        rasd(names.SYNTHETIC_NIC_SD, ResourceType=10, ElementName="Team NIC",
             StaticMacAddress=True, Address="00155D7A7B99",
             VirtualSystemIdentifiers=["{0D7BD4A2-3C63-4B4C-9A55-0A7C4BE4C0DE}"])])
    assert rv == ReturnCode.COMPLETED, out
    vm = out["DefinedSystem"]
    nic = next(i for i in settings(svc, vm).values() if i.classname == names.SYNTHETIC_NIC_SD)
    assert (nic["ElementName"], nic["Address"], nic["StaticMacAddress"],
            list(nic["VirtualSystemIdentifiers"])) == (
        "Team NIC", "00155D7A7B99", True, ["{0D7BD4A2-3C63-4B4C-9A55-0A7C4BE4C0DE}"])
    (root / "exp").mkdir()
    rv, out = svc.vsms("ExportVirtualSystem", ComputerSystem=vm, CopyVmState=False,
                       ExportDirectory=str(root / "exp"))
    assert svc.wait(out["Job"])["JobState"] == 7
    svc.host.undefine(str(vm["Name"]))
    exported = next((root / "exp").iterdir())
    rv, out = svc.vsms("ImportVirtualSystem", ImportDirectory=str(exported), GenerateNewID=False)
    job = svc.wait(out["Job"])
    assert job["JobState"] == 7, job["ErrorDescription"]
    nic = next(i for i in settings(svc, vm).values() if i.classname == names.SYNTHETIC_NIC_SD)
    assert (nic["ElementName"], nic["Address"], list(nic["VirtualSystemIdentifiers"])) == (
        "Team NIC", "00155D7A7B99", ["{0D7BD4A2-3C63-4B4C-9A55-0A7C4BE4C0DE}"])
    svc.defined.append(str(vm["Name"]))
