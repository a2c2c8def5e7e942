"""Resource pools, their allocation capabilities and the pool associations (``mapping.pools``).

``PoolProvider`` serves Msvm_ResourcePool, ``ProcessorPoolProvider`` Msvm_ProcessorPool (with
CalculatePossibleReserve), ``CapabilitiesProvider`` Msvm_AllocationCapabilities (with
CreateGoalSettings);
``PoolAssociationProvider`` serves Msvm_ElementCapabilities
(pool ↔ capabilities), Msvm_SettingsDefineCapabilities (capabilities ↔ their Default, Minimum,
Maximum and Increment settings), Msvm_HostedResourcePool (host ↔ pool) and
Msvm_ResourceAllocationFromPool (pool ↔ each RASD of every VM) and
Msvm_ElementAllocatedFromPool (pool ↔ each logical device of every VM that has a RASD: the
pool of its RASD). The defining settings themselves are Msvm_ResourceAllocationSettingData (and
subclass) instances, served with the VMs' settings by ``providers.settings_data``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pywbem

from vsms.auth.policy import Role
from vsms.cim import names
from vsms.cim.embedded import serialize_instance
from vsms.cim.enums import EnabledState
from vsms.errors import InvalidParameter, VsmsError
from vsms.mapping import ids, pools
from vsms.mapping.devices import SUB_MEMORY
from vsms.mapping.logical_devices import system_of
from vsms.mapping.pools import GoalReturn
from vsms.model.vm import VirtualSystem
from vsms.providers.base import CIMTarget, ServiceProvider, method
from vsms.providers.common import (
    ERROR_DESCRIPTION,
    Params,
    Result,
    as_instance,
    key,
    param,
    same_path,
)

_OFF = (EnabledState.DISABLED, EnabledState.SUSPENDED)  # hold no memory


class PoolProvider(ServiceProvider):
    classnames: tuple[str, ...] = (pools.RESOURCE_POOL,)

    def enumerate(self, classname: str) -> Iterable[pywbem.CIMInstance]:
        want = classname.lower()
        chosen = [p for p in pools.POOLS if p.classname.lower() == want]
        if want == pools.PROCESSOR_POOL.lower():  # fixed values, as the page gives them
            return [pools.pool_instance(p, capacity=100000, reserved=0) for p in chosen]
        inventory = self.ctx.host.inventory()
        held = pools.reserved([vs for vs, _ in inventory],
                              [vs for vs, state in inventory if state not in _OFF])
        memory_mb = self.ctx.host.limits().max_memory_mb
        return [pools.pool_instance(p, capacity=memory_mb if p.subtype == SUB_MEMORY else None,
                                    reserved=held[p.key]) for p in chosen]


class ProcessorPoolProvider(PoolProvider):
    classnames = (pools.PROCESSOR_POOL,)

    @method("CalculatePossibleReserve", Role.OPERATOR, params=("ProcessorCount",))
    def calculate_possible_reserve(self, target: CIMTarget, params: Params) -> Result:
        """As on Windows Server 2008: no processor reserve is calculated; always 0."""
        return 0, {}


class CapabilitiesProvider(ServiceProvider):
    classnames = (pools.ALLOCATION_CAPABILITIES,)

    def enumerate(self, classname: str) -> Iterable[pywbem.CIMInstance]:
        return [pools.capabilities_instance(p) for p in pools.POOLS]

    @method("CreateGoalSettings", Role.OPERATOR, params=("TemplateGoalSettings",))
    def create_goal_settings(self, target: CIMTarget, params: Params) -> Result:
        """DMTF codes, not Hyper-V's: 0 the template is supported as it is (or none was
        given: the Default), 6 Alternative Proposed (VirtualQuantity brought into range),
        5 Invalid Parameter (with ErrorDescription)."""
        assert isinstance(target, pywbem.CIMInstanceName)  # the registry found the instance
        pool = next(p for p in pools.POOLS
                    if p.capabilities_id.lower() == key(target, "InstanceID").lower())
        given = param(params, "TemplateGoalSettings", required=False) or []
        try:
            if len(given) > 1:
                raise InvalidParameter("TemplateGoalSettings holds more than one setting: give "
                                       "at most one, of this pool's kind")
            template = as_instance(given[0], "TemplateGoalSettings") if given else None
            setting, adjusted = pools.goal(pool, template, self.ctx.host.limits())
        except VsmsError as err:
            return int(GoalReturn.INVALID_PARAMETER), {ERROR_DESCRIPTION: err.message}
        done = GoalReturn.ALTERNATIVE_PROPOSED if adjusted else GoalReturn.SUCCESS
        return int(done), {
            "SupportedGoalSettings": [serialize_instance(setting)]}


class PoolAssociationProvider(ServiceProvider):
    classnames = (pools.ELEMENT_CAPABILITIES, pools.SETTINGS_DEFINE_CAPABILITIES,
                  pools.HOSTED_RESOURCE_POOL, pools.RESOURCE_ALLOCATION_FROM_POOL,
                  pools.ELEMENT_ALLOCATED_FROM_POOL)

    def _host(self) -> pywbem.CIMInstanceName:
        return pywbem.CIMInstanceName(names.COMPUTER_SYSTEM, {
            "CreationClassName": names.COMPUTER_SYSTEM, "Name": self.ctx.hostname},
            namespace=names.NAMESPACE)

    def _host_level(self, classname: str, chosen: Iterable[pools.Pool]
                    ) -> list[pywbem.CIMInstance]:
        want = classname.lower()
        if want == pools.ELEMENT_CAPABILITIES.lower():
            return [pools.element_capabilities(p) for p in chosen]
        if want == pools.SETTINGS_DEFINE_CAPABILITIES.lower():
            return [a for p in chosen for a in pools.define_capabilities(p)]
        if want == pools.HOSTED_RESOURCE_POOL.lower():
            return [pools.hosted_pool(p, self._host()) for p in chosen]
        return []

    def enumerate(self, classname: str) -> Iterable[pywbem.CIMInstance]:
        per_vm = _PER_VM.get(classname.lower())
        if per_vm is not None:
            return [a for vs in self.ctx.host.shared_systems() for a in per_vm(vs)]
        return self._host_level(classname, pools.POOLS)

    def references_to(self, classname: str, target: pywbem.CIMInstanceName
                      ) -> Iterable[pywbem.CIMInstance]:
        """Only what concerns ``target``: the one pool it names or belongs to, or the one VM
        whose settings it is (a pool's allocations: every VM)."""
        per_vm = _PER_VM.get(classname.lower())
        if per_vm is None:
            pool = self._pool_of(target)
            return self._host_level(classname, [pool] if pool else pools.POOLS)
        if self._pool_of(target) is not None:
            return self.enumerate(classname)
        guid = system_of(target)  # a logical device (or the VM)
        if guid is None:
            try:
                guid = ids.guid_of(key(target, "InstanceID"))  # a RASD
            except InvalidParameter:
                return []
        vs = self.ctx.host.get_system(guid)
        return per_vm(vs) if vs is not None else []

    @staticmethod
    def _pool_of(target: pywbem.CIMInstanceName) -> pools.Pool | None:
        try:
            iid = key(target, "InstanceID")
        except InvalidParameter:
            return None
        setting = pools.parse_setting_id(iid)
        if setting is not None:
            return setting[0]
        return next((p for p in pools.POOLS if iid.lower() in (
            p.instance_id.lower(), p.capabilities_id.lower())), None)

    def get(self, path: pywbem.CIMInstanceName) -> pywbem.CIMInstance | None:
        refs = [r for r in path.keybindings.values() if isinstance(r, pywbem.CIMInstanceName)]
        found = self.references_to(path.classname, refs[-1]) if refs else []
        return next((i for i in found if i.path is not None and same_path(i.path, path)), None)


#: the associations of each VM's settings (RASD) and devices with their pools
_PER_VM: dict[str, Callable[[VirtualSystem], list[pywbem.CIMInstance]]] = {
    pools.RESOURCE_ALLOCATION_FROM_POOL.lower(): pools.allocations,
    pools.ELEMENT_ALLOCATED_FROM_POOL.lower(): pools.element_allocations,
}
