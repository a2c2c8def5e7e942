"""Export and import methods of Msvm_VirtualSystemManagementService.

Each method does the quick checks synchronously (a failure is its ReturnValue, at once) and
starts a job for the work (4096 + Job).
"""

from __future__ import annotations

from vsms.auth.policy import Role
from vsms.cim import names
from vsms.cim.enums import ElementEffects, ReturnCode
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
from vsms.model.vm import new_guid
from vsms.operations.export import prepare_export
from vsms.operations.import_ import ImportWork, check_import_directory
from vsms.operations.switchports import import_network_preview
from vsms.providers.base import CIMTarget, ServiceProvider, method
from vsms.providers.common import (
    Params,
    Result,
    as_bool,
    as_instance,
    as_str,
    key,
    param,
    parse_path,
    vm_element,
)
from vsms.providers.vsms_service_settings import vhd_path


class _FailWith:
    """A job whose only work is to report problems found before it started."""

    def __init__(self, error: ValidationFailed) -> None:
        self.error = error

    def run(self, ctx: OpContext) -> None:
        raise self.error


_A = Role.ADMINISTRATOR


class ExportImportMethods(ServiceProvider):
    """ExportVirtualSystem(Ex), ImportVirtualSystem(Ex), GetVirtualSystemImportSettingData."""

    def _export(self, params: Params, options: ExportOptions, allow_saved: bool) -> Result:
        guid = key(parse_path(param(params, "ComputerSystem"), "ComputerSystem"), "Name")
        work = prepare_export(self.ctx.host, self.ctx.roots, self.ctx.transitions, guid,
                              as_str(params, "ExportDirectory") or "", options,
                              allow_saved=allow_saved, book=self.ctx.store)
        return self.start_job("Export Virtual System", work.description, work,
                              affected=[vm_element(work.vs.guid, ElementEffects.EXCLUSIVE_USE)],
                              reservation=work.reservation)

    @method("ExportVirtualSystem", _A, job=True,
            params=("ComputerSystem", "CopyVmState", "ExportDirectory"))
    def export(self, target: CIMTarget, params: Params) -> Result:
        state = as_bool(params, "CopyVmState", False)
        options = ExportOptions(copy_storage=state, copy_runtime=state, create_subdirectory=True)
        return self._export(params, options, allow_saved=False)

    @method("ExportVirtualSystemEx", _A, job=True,
            params=("ComputerSystem", "ExportDirectory", "ExportSettingData"))
    def export_ex(self, target: CIMTarget, params: Params) -> Result:
        raw = param(params, "ExportSettingData", required=False)
        options = ExportOptions(create_subdirectory=False) if raw is None else \
            parse_export_setting_data(as_instance(raw, "ExportSettingData", names.EXPORT_SD))
        return self._export(params, options, allow_saved=True)

    def _import(self, directory_raw: str, options: ImportOptions) -> Result:
        directory = check_import_directory(self.ctx.roots, self.ctx.store, directory_raw)
        work = ImportWork(self.ctx.host, self.ctx.store, self.ctx.roots, directory, options,
                          vhd_root=vhd_path(self.ctx))
        return self.start_job("Import Virtual System", work.description, work)

    @method("ImportVirtualSystem", _A, job=True, params=("ImportDirectory", "GenerateNewID"))
    def import_(self, target: CIMTarget, params: Params) -> Result:
        new_id = as_bool(params, "GenerateNewID", False)
        return self._import(as_str(params, "ImportDirectory") or "",
                            ImportOptions(generate_new_id=new_id, create_copy=False))

    @method("ImportVirtualSystemEx", _A, job=True, params=("ImportDirectory", "ImportSettingData"))
    def import_ex(self, target: CIMTarget, params: Params) -> Result:
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
                self.ctx.roots.confine(raw, what)
        return self._import(as_str(params, "ImportDirectory") or "", options)

    @method("GetVirtualSystemImportSettingData", _A, job=True, params=("ImportDirectory",))
    def get_import_setting_data(self, target: CIMTarget, params: Params) -> Result:
        directory = check_import_directory(self.ctx.roots, self.ctx.store,
                                           as_str(params, "ImportDirectory") or "")
        try:
            pkg = read_export(directory, verify=False)
            vs = system_from_instances(
                pkg.instances, formats={d.dev_id: d.format for d in pkg.config.disks})
        except ValidationFailed as err:
            return self.start_job("Get Virtual System Import Setting Data",
                                  f"Reading the export in {directory}", _FailWith(err),
                                  cancellable=False)
        preview = ImportPreview(
            vm_name=pkg.config.vm_name,
            current_resource_paths=[d.original_path for d in pkg.config.disks],
            source_resource_paths=[str(directory / d.file) if d.file else d.original_path
                                   for d in pkg.config.disks],
            **import_network_preview(self.ctx.host.networks.switches(), vs, pkg.config.nics),
        )
        return int(ReturnCode.COMPLETED), {
            "ImportSettingData": import_setting_data(preview, new_guid())}
