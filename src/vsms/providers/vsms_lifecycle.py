"""Life-cycle methods of Msvm_VirtualSystemManagementService.

DefineVirtualSystem, ModifyVirtualSystem and Add/Modify/RemoveVirtualSystemResources change a
libvirt definition only, so they complete within the call (ReturnValue 0 and their out
parameters); DestroyVirtualSystem runs as an Msvm_ConcreteJob (4096 + Job) affecting the VM.
Refusals return their code at once (32773 bad input, 32775 wrong state, 32769 a path outside
the storage roots, 32770 SourceSetting) with nothing changed.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pywbem

from vsms.auth.policy import Role
from vsms.cim import names
from vsms.cim.enums import ElementEffects, RequestedState, ReturnCode
from vsms.errors import InvalidParameter, NotSupported
from vsms.mapping import ids
from vsms.mapping.devices import device_instances
from vsms.model.vm import VirtualSystem
from vsms.operations.define import prepare_define
from vsms.operations.destroy import prepare_destroy
from vsms.operations.modify import prepare_modify
from vsms.operations.resources import (
    ResourceChange,
    prepare_add,
    prepare_modify_resources,
    prepare_remove,
)
from vsms.operations.transitions import Transition
from vsms.operations.undo import Operation, run_now, undo_handlers
from vsms.providers.base import CIMTarget, ServiceProvider, method
from vsms.providers.common import (
    Params,
    Result,
    as_instance,
    key,
    param,
    parse_path,
    vm_element,
    vm_path,
)
from vsms.providers.context import ServiceContext
from vsms.providers.vsms_service_settings import external_data_root

_A = Role.ADMINISTRATOR


def target_guid(ctx: ServiceContext, params: Params, name: str) -> str:
    """The VM GUID a REF parameter names (an Msvm_ComputerSystem path that is not the host)."""
    path = parse_path(param(params, name), name)
    if not path.classname.lower().endswith("computersystem"):
        raise InvalidParameter(f"parameter {name} must reference an {names.COMPUTER_SYSTEM}, not "
                               f"a {path.classname}")
    guid = key(path, "Name")
    if guid.upper() == ctx.hostname.upper():
        raise InvalidParameter(f"parameter {name} references the host computer system "
                               f"{guid!r}: pass the path of a virtual machine")
    return guid.upper()


def instances(params: Params, name: str, *, required: bool) -> list[pywbem.CIMInstance]:
    """An array of embedded instances (strings or CIMInstances); a single value is accepted."""
    value = param(params, name, required=required)
    if value is None:
        return []
    items = value if isinstance(value, list | tuple) else [value]
    return [as_instance(v, f"{name}[{i}]") for i, v in enumerate(items)]


def references(params: Params, name: str) -> list[Any]:
    value = param(params, name)
    items = value if isinstance(value, list | tuple) else [value]
    return [v for v in items if v is not None]


def device_paths(vs: VirtualSystem, dev_ids: list[str]) -> list[pywbem.CIMInstanceName]:
    """Paths of the RASDs of these devices (memory and processors keep their subclasses)."""
    by_id = {str(i.path.keybindings["InstanceID"]): i.path for i in device_instances(vs)}
    return [by_id[ids.device_id(vs.guid, d)] for d in dev_ids if ids.device_id(vs.guid, d)
            in by_id]


def _busy(what: str) -> Transition:
    return Transition(None, RequestedState.NOT_APPLICABLE, what=what)


class LifecycleMethods(ServiceProvider):
    """Define, modify, add/modify/remove resources, destroy."""

    def _vm_name(self, guid: str) -> str:
        vs = self.ctx.host.get_system(guid)
        return vs.name if vs else ""

    def _changing(self, guid: str) -> AbstractContextManager[None]:
        """A configuration change holds the VM (no state change or export meanwhile)."""
        return self.ctx.transitions.during(guid, _busy("a configuration change"),
                                           self._vm_name(guid))

    def _run_now(self, op: Operation) -> None:
        run_now(op, undo_handlers(self.ctx.host, self.ctx.store))

    @method("DefineVirtualSystem", _A,
            params=("SourceSetting", "SystemSettingData", "ResourceSettingData"))
    def define(self, target: CIMTarget, params: Params) -> Result:
        if param(params, "SourceSetting", required=False) is not None:
            raise NotSupported("SourceSetting (defining a machine from a template) is not "
                               "supported: pass SystemSettingData and ResourceSettingData")
        setting = as_instance(param(params, "SystemSettingData"), "SystemSettingData")
        if not setting.classname.lower().endswith("virtualsystemglobalsettingdata"):
            raise InvalidParameter(f"SystemSettingData holds a {setting.classname}: pass an "
                                   f"embedded {names.VSGSD} instance")
        op = prepare_define(self.ctx.host, self.ctx.roots, setting,
                            instances(params, "ResourceSettingData", required=False),
                            default_data_root=external_data_root(self.ctx))
        self._run_now(op)
        return int(ReturnCode.COMPLETED), {"DefinedSystem": vm_path(op.vs.guid)}

    @method("ModifyVirtualSystem", _A, params=("ComputerSystem", "SystemSettingData"))
    def modify(self, target: CIMTarget, params: Params) -> Result:
        guid = target_guid(self.ctx, params, "ComputerSystem")
        setting = as_instance(param(params, "SystemSettingData"), "SystemSettingData")
        with self._changing(guid):
            self._run_now(prepare_modify(self.ctx.host, guid, setting))
        return int(ReturnCode.COMPLETED), {
            "ModifiedSettingData": ids.setting_path(names.VSSD, ids.vssd_id(guid))}

    def _resources(self, params: Params, system: str,
                   change: Callable[[str], ResourceChange]) -> ResourceChange:
        guid = target_guid(self.ctx, params, system)
        with self._changing(guid):
            done = change(guid)
            self._run_now(done.op)
        return done

    @method("AddVirtualSystemResources", _A, params=("TargetSystem", "ResourceSettingData"))
    def add_resources(self, target: CIMTarget, params: Params) -> Result:
        rasds = instances(params, "ResourceSettingData", required=True)
        done = self._resources(params, "TargetSystem", lambda guid: prepare_add(
            self.ctx.host, self.ctx.roots, guid, rasds))
        return int(ReturnCode.COMPLETED), {"NewResources": device_paths(done.op.new,
                                                                        done.dev_ids)}

    @method("ModifyVirtualSystemResources", _A, params=("ComputerSystem", "ResourceSettingData"))
    def modify_resources(self, target: CIMTarget, params: Params) -> Result:
        rasds = instances(params, "ResourceSettingData", required=True)
        self._resources(params, "ComputerSystem", lambda guid: prepare_modify_resources(
            self.ctx.host, self.ctx.roots, guid, rasds))
        return int(ReturnCode.COMPLETED), {}

    @method("RemoveVirtualSystemResources", _A, params=("TargetSystem", "ResourceSettingData"))
    def remove_resources(self, target: CIMTarget, params: Params) -> Result:
        refs = references(params, "ResourceSettingData")
        self._resources(params, "TargetSystem", lambda guid: prepare_remove(
            self.ctx.host, guid, refs))
        return int(ReturnCode.COMPLETED), {}

    @method("DestroyVirtualSystem", _A, params=("ComputerSystem",), job=True)
    def destroy(self, target: CIMTarget, params: Params) -> Result:
        guid = target_guid(self.ctx, params, "ComputerSystem")
        with self.ctx.transitions.begin(guid, _busy("the destruction of the machine"),
                                        self._vm_name(guid)) as held:
            op = prepare_destroy(self.ctx.host, guid, self.ctx.roots)
            return self.start_job(
                "Destroy Virtual Machine", f"Destroying virtual machine '{op.vs.name}' ({guid})",
                op, affected=[vm_element(guid, ElementEffects.ELEMENT_INTEGRITY)],
                reservation=held, cancellable=False)
