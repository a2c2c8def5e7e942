"""Export and import methods of Msvm_VirtualSystemManagementService.

Each handler does the quick checks synchronously (a failure is its ReturnValue, at once) and
starts a job for the work (4096 + Job). Handlers are wrapped by ``guarded`` in the dispatcher.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

import pywbem

from vsms.cim import names
from vsms.cim.enums import ReturnCode
from vsms.errors import ValidationFailed
from vsms.exportdir.reader import read_export
from vsms.jobs.context import OpContext
from vsms.mapping.exportimport import (
    ExportOptions,
    ImportOptions,
    ImportPreview,
    import_setting_data,
    parse_export_setting_data,
    parse_import_setting_data,
)
from vsms.mapping.system import system_from_instances
from vsms.model.job import AffectedElement
from vsms.model.vm import new_guid
from vsms.operations.export import prepare_export
from vsms.operations.import_ import ImportWork, check_import_directory
from vsms.providers.common import (
    Handler,
    Params,
    Result,
    as_bool,
    as_instance,
    as_str,
    job_started,
    key,
    param,
    parse_path,
)
from vsms.providers.context import ServiceContext

Target: TypeAlias = "pywbem.CIMInstanceName | pywbem.CIMClassName"


def _vm_element(guid: str) -> AffectedElement:
    return AffectedElement(names.COMPUTER_SYSTEM,
                           {"CreationClassName": names.COMPUTER_SYSTEM, "Name": guid}, [2])


class _FailWith:
    """A job whose only work is to report problems found before it started."""

    def __init__(self, error: ValidationFailed) -> None:
        self.error = error

    def run(self, ctx: OpContext) -> None:
        raise self.error


def handlers(ctx: ServiceContext) -> dict[str, Handler]:
    def export(guid: str, directory: str, options: ExportOptions, allow_saved: bool) -> Result:
        work = prepare_export(ctx.host, ctx.roots, ctx.transitions, guid, directory, options,
                              allow_saved=allow_saved, book=ctx.store)
        try:
            rec = ctx.jobs.submit(name="Export Virtual System", description=work.description,
                                  work=work, affected=[_vm_element(guid)])
        except BaseException:
            ctx.transitions.end(work.vs.guid)
            raise
        return job_started(rec)

    def ExportVirtualSystem(target: Target, params: Params) -> Result:
        vm = parse_path(param(params, "ComputerSystem"), "ComputerSystem")
        state = as_bool(params, "CopyVmState", False)
        directory = as_str(params, "ExportDirectory") or ""
        options = ExportOptions(copy_storage=state, copy_runtime=state, create_subdirectory=True)
        return export(key(vm, "Name"), directory, options, allow_saved=False)

    def ExportVirtualSystemEx(target: Target, params: Params) -> Result:
        vm = parse_path(param(params, "ComputerSystem"), "ComputerSystem")
        directory = as_str(params, "ExportDirectory") or ""
        raw = param(params, "ExportSettingData", required=False)
        options = ExportOptions(create_subdirectory=False) if raw is None else \
            parse_export_setting_data(as_instance(raw, "ExportSettingData", names.EXPORT_SD))
        return export(key(vm, "Name"), directory, options, allow_saved=True)

    def start_import(directory_raw: str, options: ImportOptions) -> Result:
        directory = check_import_directory(ctx.roots, ctx.store, directory_raw)
        work = ImportWork(ctx.host, ctx.store, ctx.roots, directory, options)
        rec = ctx.jobs.submit(name="Import Virtual System", description=work.description,
                              work=work)
        return job_started(rec)

    def ImportVirtualSystem(target: Target, params: Params) -> Result:
        directory = as_str(params, "ImportDirectory") or ""
        new_id = as_bool(params, "GenerateNewID", False)
        return start_import(directory, ImportOptions(generate_new_id=new_id, create_copy=False))

    def ImportVirtualSystemEx(target: Target, params: Params) -> Result:
        directory = as_str(params, "ImportDirectory") or ""
        isd = as_instance(param(params, "ImportSettingData"), "ImportSettingData",
                          names.IMPORT_SD)
        options = parse_import_setting_data(isd)
        checks = [(options.target_vhd_data_root, "TargetVhdDataRoot"),
                  (options.target_vm_data_root, "TargetVmDataRoot"),
                  (options.target_snapshot_data_root, "TargetSnapshotDataRoot"),
                  (options.source_vhd_data_root, "SourceVhdDataRoot"),
                  (options.source_vm_data_root, "SourceVmDataRoot"),
                  (options.source_snapshot_data_root, "SourceSnapshotDataRoot")]
        checks += [(p, "SourceResourcePaths") for p in options.source_resource_paths]
        checks += [(p, "TargetResourcePaths") for p in options.target_resource_paths]
        for raw, what in checks:
            if raw:
                ctx.roots.confine(raw, what)
        return start_import(directory, options)

    def GetVirtualSystemImportSettingData(target: Target, params: Params) -> Result:
        directory = check_import_directory(ctx.roots, ctx.store,
                                           as_str(params, "ImportDirectory") or "")
        try:
            pkg = read_export(directory, verify=False)
            vs = system_from_instances(
                pkg.instances, formats={d.dev_id: d.format for d in pkg.config.disks})
        except ValidationFailed as err:
            rec = ctx.jobs.submit(name="Get Virtual System Import Setting Data",
                                  description=f"Reading the export in {directory}",
                                  work=_FailWith(err), cancellable=False)
            return job_started(rec)
        preview = ImportPreview(
            vm_name=pkg.config.vm_name,
            current_resource_paths=[d.original_path for d in pkg.config.disks],
            source_resource_paths=[str(directory / d.file) if d.file else d.original_path
                                   for d in pkg.config.disks],
            source_network_connections=[n.switch for n in vs.nics],
        )
        return int(ReturnCode.COMPLETED), {
            "ImportSettingData": import_setting_data(preview, new_guid())}

    table: dict[str, Callable[[Target, Params], Result]] = {
        "ExportVirtualSystem": ExportVirtualSystem,
        "ExportVirtualSystemEx": ExportVirtualSystemEx,
        "ImportVirtualSystem": ImportVirtualSystem,
        "ImportVirtualSystemEx": ImportVirtualSystemEx,
        "GetVirtualSystemImportSettingData": GetVirtualSystemImportSettingData,
    }
    return table
