"""Life-cycle methods of Msvm_VirtualSystemManagementService.

DefineVirtualSystem, ModifyVirtualSystem and Add/Modify/RemoveVirtualSystemResources change a
libvirt definition only, so they complete within the call (ReturnValue 0 and their out
parameters); DestroyVirtualSystem runs as an Msvm_ConcreteJob (4096 + Job) affecting the VM.
Refusals return their code at once (32773 bad input, 32775 wrong state, 32769 a path outside
the storage roots, 32770 SourceSetting) with nothing changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pywbem

from vsms.cim import names
from vsms.cim.enums import ElementEffects, RequestedState, ReturnCode
from vsms.errors import InvalidParameter, NotSupported
from vsms.mapping import ids
from vsms.mapping.devices import device_instances
from vsms.model.job import AffectedElement
from vsms.model.vm import VirtualSystem
from vsms.operations.define import prepare_define
from vsms.operations.destroy import prepare_destroy
from vsms.operations.modify import prepare_modify
from vsms.operations.resources import prepare_add, prepare_modify_resources, prepare_remove
from vsms.operations.transitions import Transition, Transitions
from vsms.operations.undo import OpContext, Operation, run_now, undo_handlers
from vsms.providers.common import (
    Handler,
    Params,
    Result,
    as_instance,
    job_started,
    key,
    param,
    parse_path,
    vm_path,
)
from vsms.providers.context import ServiceContext


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


def affected(guid: str, effect: ElementEffects) -> AffectedElement:
    return AffectedElement(names.COMPUTER_SYSTEM,
                           {"CreationClassName": names.COMPUTER_SYSTEM, "Name": guid},
                           [int(effect)])


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


@dataclass
class EndTransition:
    """A job body that ends the VM's transition whatever happens."""

    work: Operation
    transitions: Transitions
    guid: str

    def run(self, ctx: OpContext) -> None:
        try:
            self.work.run(ctx)
        finally:
            self.transitions.end(self.guid)


def handlers(ctx: ServiceContext) -> dict[str, Handler]:
    """Method name -> handler, for the management service's dispatch."""
    undo = undo_handlers(ctx.host, ctx.store)

    def changing(guid: str, fn: Callable[[], Result]) -> Result:
        """Run a configuration change while no state change or export runs on the VM."""
        vs = ctx.host.get_system(guid)
        with ctx.transitions.during(guid, Transition(None, RequestedState.NOT_APPLICABLE,
                                                     what="a configuration change"),
                                    vs.name if vs else ""):
            return fn()

    def define_virtual_system(target: Any, params: Params) -> Result:
        if param(params, "SourceSetting", required=False) is not None:
            raise NotSupported("SourceSetting (defining a machine from a template) is not "
                               "supported: pass SystemSettingData and ResourceSettingData")
        setting = as_instance(param(params, "SystemSettingData"), "SystemSettingData")
        if not setting.classname.lower().endswith("virtualsystemglobalsettingdata"):
            raise InvalidParameter(f"SystemSettingData holds a {setting.classname}: pass an "
                                   f"embedded {names.VSGSD} instance")
        op = prepare_define(ctx.host, ctx.roots, setting,
                            instances(params, "ResourceSettingData", required=False))
        run_now(op, undo)
        return int(ReturnCode.COMPLETED), {"DefinedSystem": vm_path(op.vs.guid)}

    def modify_virtual_system(target: Any, params: Params) -> Result:
        guid = target_guid(ctx, params, "ComputerSystem")
        setting = as_instance(param(params, "SystemSettingData"), "SystemSettingData")

        def work() -> Result:
            run_now(prepare_modify(ctx.host, guid, setting), undo)
            return int(ReturnCode.COMPLETED), {
                "ModifiedSettingData": ids.setting_path(names.VSSD, ids.vssd_id(guid))}
        return changing(guid, work)

    def add_resources(target: Any, params: Params) -> Result:
        guid = target_guid(ctx, params, "TargetSystem")
        rasds = instances(params, "ResourceSettingData", required=True)

        def work() -> Result:
            change = prepare_add(ctx.host, ctx.roots, guid, rasds)
            run_now(change.op, undo)
            return int(ReturnCode.COMPLETED), {
                "NewResources": device_paths(change.op.new, change.dev_ids)}
        return changing(guid, work)

    def modify_resources(target: Any, params: Params) -> Result:
        guid = target_guid(ctx, params, "ComputerSystem")
        rasds = instances(params, "ResourceSettingData", required=True)

        def work() -> Result:
            run_now(prepare_modify_resources(ctx.host, ctx.roots, guid, rasds).op, undo)
            return int(ReturnCode.COMPLETED), {}
        return changing(guid, work)

    def remove_resources(target: Any, params: Params) -> Result:
        guid = target_guid(ctx, params, "TargetSystem")
        refs = references(params, "ResourceSettingData")

        def work() -> Result:
            run_now(prepare_remove(ctx.host, guid, refs).op, undo)
            return int(ReturnCode.COMPLETED), {}
        return changing(guid, work)

    def destroy_virtual_system(target: Any, params: Params) -> Result:
        guid = target_guid(ctx, params, "ComputerSystem")
        vs = ctx.host.get_system(guid)
        ctx.transitions.begin(guid, Transition(None, RequestedState.NOT_APPLICABLE,
                                               what="the destruction of the machine"),
                              vs.name if vs else "")
        try:
            op = prepare_destroy(ctx.host, guid)
            rec = ctx.jobs.submit(
                name="Destroy Virtual Machine",
                description=f"Destroying virtual machine '{op.vs.name}' ({guid})",
                work=EndTransition(op, ctx.transitions, guid),
                affected=[affected(guid, ElementEffects.ELEMENT_INTEGRITY)], cancellable=False)
        except BaseException:
            ctx.transitions.end(guid)
            raise
        return job_started(rec)

    return {
        "DefineVirtualSystem": define_virtual_system,
        "ModifyVirtualSystem": modify_virtual_system,
        "AddVirtualSystemResources": add_resources,
        "ModifyVirtualSystemResources": modify_resources,
        "RemoveVirtualSystemResources": remove_resources,
        "DestroyVirtualSystem": destroy_virtual_system,
    }
