"""Msvm_VirtualSystemExportSettingData and Msvm_VirtualSystemImportSettingData ⇄ options.

The options dataclasses are what the export and import operations take; nothing below this
module sees a CIM property name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pywbem

from vsms.cim import names
from vsms.cim.enums import CopySnapshotConfiguration
from vsms.errors import InvalidParameter

EXPORT_CAPTION = "Virtual System Export Setting Data"
EXPORT_DESCRIPTION = "Microsoft Virtual System Export Setting Data"
IMPORT_CAPTION = "Virtual System Import Setting Data"
IMPORT_DESCRIPTION = "Microsoft Virtual System Import Setting Data"


@dataclass(frozen=True)
class ExportOptions:
    copy_storage: bool = True
    copy_runtime: bool = True
    create_subdirectory: bool = True
    snapshots: CopySnapshotConfiguration = CopySnapshotConfiguration.EXPORT_ALL_SNAPSHOTS
    snapshot: str = ""  # SnapshotVirtualSystem (CopySnapshotConfiguration 2): a VSSD reference


@dataclass(frozen=True)
class ImportOptions:
    generate_new_id: bool = True
    create_copy: bool = False
    name: str = ""
    security_scope: str = ""
    source_vm_data_root: str = ""
    source_snapshot_data_root: str = ""
    source_vhd_data_root: str = ""
    target_vm_data_root: str = ""
    target_snapshot_data_root: str = ""
    target_vhd_data_root: str = ""
    source_resource_paths: tuple[str, ...] = ()
    target_resource_paths: tuple[str, ...] = ()
    target_network_connections: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImportPreview:
    """What GetVirtualSystemImportSettingData reports about one export."""

    vm_name: str
    current_resource_paths: list[str] = field(default_factory=list)
    source_resource_paths: list[str] = field(default_factory=list)
    source_network_connections: list[str] = field(default_factory=list)
    # per adapter: the ElementName of the switch here it would be connected to, "" when its
    # switch does not exist here (what the client should map); None: not reported
    target_network_connections: list[str] | None = None


def _prop(inst: pywbem.CIMInstance, name: str) -> Any:
    for key, prop in inst.properties.items():
        if key.lower() == name.lower():
            return prop.value
    return None


def _bool(inst: pywbem.CIMInstance, name: str, default: bool) -> bool:
    value = _prop(inst, name)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise InvalidParameter(f"{inst.classname}.{name} must be a boolean, got {value!r}")


def _str(inst: pywbem.CIMInstance, name: str) -> str:
    value = _prop(inst, name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidParameter(f"{inst.classname}.{name} must be a string, got {value!r}")
    return value


def _strs(inst: pywbem.CIMInstance, name: str) -> tuple[str, ...]:
    value = _prop(inst, name)
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str | None) for v in value):
        raise InvalidParameter(f"{inst.classname}.{name} must be an array of strings")
    return tuple(v or "" for v in value)


def _props(values: list[tuple[str, Any, str]]) -> list[pywbem.CIMProperty]:
    """Typed properties (the type is given so that NULL values serialise too)."""
    out = []
    for name, value, cim_type in values:
        array = cim_type.endswith("[]")
        out.append(pywbem.CIMProperty(name, value, type=cim_type.rstrip("[]"), is_array=array))
    return out


def export_setting_data(guid: str) -> pywbem.CIMInstance:
    """The VM's associated export setting data, with the values Hyper-V R2 reports."""
    iid = f"Microsoft:{guid}\\ExportSettingData"
    inst = pywbem.CIMInstance(names.EXPORT_SD, properties=_props([
        ("InstanceID", iid, "string"),
        ("Caption", EXPORT_CAPTION, "string"),
        ("Description", EXPORT_DESCRIPTION, "string"),
        ("ElementName", EXPORT_DESCRIPTION, "string"),
        ("CopySnapshotConfiguration", int(CopySnapshotConfiguration.EXPORT_ALL_SNAPSHOTS),
         "uint8"),
        ("CopyVmRuntimeInformation", True, "boolean"),
        ("CopyVmStorage", True, "boolean"),
        ("CreateVmExportSubdirectory", False, "boolean"),
        ("SnapshotVirtualSystem", None, "string"),
    ]))
    inst.path = pywbem.CIMInstanceName(names.EXPORT_SD, keybindings={"InstanceID": iid},
                                       namespace=names.NAMESPACE)
    return inst


def parse_export_setting_data(inst: pywbem.CIMInstance) -> ExportOptions:
    if inst.classname.lower() != names.EXPORT_SD.lower():
        raise InvalidParameter(
            f"ExportSettingData must hold a {names.EXPORT_SD} instance, not {inst.classname}")
    raw = _prop(inst, "CopySnapshotConfiguration")
    try:
        snaps = CopySnapshotConfiguration(int(raw)) if raw is not None else \
            CopySnapshotConfiguration.EXPORT_ALL_SNAPSHOTS
    except (TypeError, ValueError):
        raise InvalidParameter(
            f"CopySnapshotConfiguration {raw!r} is not one of 0 (all), 1 (none), 2 (one)") from None
    snapshot = _str(inst, "SnapshotVirtualSystem")
    if snaps is CopySnapshotConfiguration.EXPORT_ONE_SNAPSHOT and not snapshot:
        raise InvalidParameter(
            "CopySnapshotConfiguration 2 (export one snapshot) needs SnapshotVirtualSystem: the "
            "path of the snapshot's Msvm_VirtualSystemSettingData (SettingType 5)")
    return ExportOptions(
        copy_storage=_bool(inst, "CopyVmStorage", True),
        copy_runtime=_bool(inst, "CopyVmRuntimeInformation", True),
        create_subdirectory=_bool(inst, "CreateVmExportSubdirectory", False),
        snapshots=snaps,
        snapshot=snapshot if snaps is CopySnapshotConfiguration.EXPORT_ONE_SNAPSHOT else "",
    )


def import_setting_data(preview: ImportPreview, instance_guid: str) -> pywbem.CIMInstance:
    """A filled Msvm_VirtualSystemImportSettingData (GetVirtualSystemImportSettingData)."""
    return pywbem.CIMInstance(names.IMPORT_SD, properties=_props([
        ("InstanceID", f"Microsoft:{instance_guid}", "string"),
        ("Caption", IMPORT_CAPTION, "string"),
        ("Description", IMPORT_DESCRIPTION, "string"),
        ("ElementName", IMPORT_DESCRIPTION, "string"),
        ("GenerateNewId", True, "boolean"),
        ("CreateCopy", True, "boolean"),
        ("Name", preview.vm_name, "string"),
        ("SecurityScope", None, "string"),
        ("SourceVmDataRoot", None, "string"),
        ("SourceSnapshotDataRoot", None, "string"),
        ("SourceVhdDataRoot", None, "string"),
        ("TargetVmDataRoot", None, "string"),
        ("TargetSnapshotDataRoot", None, "string"),
        ("TargetVhdDataRoot", None, "string"),
        ("CurrentResourcePaths", list(preview.current_resource_paths), "string[]"),
        ("SourceResourcePaths", list(preview.source_resource_paths), "string[]"),
        ("TargetResourcePaths", None, "string[]"),
        ("SourceNetworkConnections", list(preview.source_network_connections), "string[]"),
        ("TargetNetworkConnections", preview.target_network_connections, "string[]"),
    ]))


def parse_import_setting_data(inst: pywbem.CIMInstance) -> ImportOptions:
    if inst.classname.lower() != names.IMPORT_SD.lower():
        raise InvalidParameter(
            f"ImportSettingData must hold a {names.IMPORT_SD} instance, not {inst.classname}")
    return ImportOptions(
        generate_new_id=_bool(inst, "GenerateNewId", True),
        create_copy=_bool(inst, "CreateCopy", False),
        name=_str(inst, "Name"),
        security_scope=_str(inst, "SecurityScope"),
        source_vm_data_root=_str(inst, "SourceVmDataRoot"),
        source_snapshot_data_root=_str(inst, "SourceSnapshotDataRoot"),
        source_vhd_data_root=_str(inst, "SourceVhdDataRoot"),
        target_vm_data_root=_str(inst, "TargetVmDataRoot"),
        target_snapshot_data_root=_str(inst, "TargetSnapshotDataRoot"),
        target_vhd_data_root=_str(inst, "TargetVhdDataRoot"),
        source_resource_paths=_strs(inst, "SourceResourcePaths"),
        target_resource_paths=_strs(inst, "TargetResourcePaths"),
        target_network_connections=_strs(inst, "TargetNetworkConnections"),
    )
