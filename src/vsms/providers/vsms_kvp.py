"""AddKvpItems, ModifyKvpItems and RemoveKvpItems of Msvm_VirtualSystemManagementService.

The host's key-value items of a VM (``virt.kvp``) are kept in its libvirt metadata; each call
rewrites the VM's definition once, within the call (ReturnValue 0), whatever state the VM is in
(a running VM keeps running). A call changes every item it names or none: an item to add that
exists, an item to modify or remove that does not, a repeated name, a Source other than 0
(host items), more than 128 items, or DataItems that are not embedded Msvm_KvpExchangeDataItem
instances answer 32773 (Invalid parameter) with an ErrorDescription naming the item; an unknown
VM answers 32773 too, a VM busy with another change 32774.
"""

from __future__ import annotations

import copy

from vsms.auth.policy import Role
from vsms.cim.enums import RequestedState, ReturnCode
from vsms.errors import InvalidParameter, NotFound
from vsms.mapping import components as mc
from vsms.operations.transitions import Transition
from vsms.providers.base import CIMTarget, ServiceProvider, method
from vsms.providers.common import Params, Result, as_instance, param
from vsms.providers.vsms_lifecycle import target_guid
from vsms.virt import kvp

_A = Role.ADMINISTRATOR
_PARAMS = ("TargetSystem", "DataItems")


def _requested(params: Params, change: kvp.Change) -> list[tuple[str, str]]:
    value = param(params, "DataItems", required=False)
    if value is None:
        raise InvalidParameter("DataItems is missing: pass an array of embedded "
                               "Msvm_KvpExchangeDataItem instances")
    items = value if isinstance(value, list | tuple) else [value]
    if len(items) > kvp.MAX_PER_CALL:  # before parsing them all
        raise InvalidParameter(f"DataItems holds {len(items)} items; at most "
                               f"{kvp.MAX_PER_CALL} are allowed per call: split the request")
    out = []
    for i, raw in enumerate(items):
        where = f"DataItems[{i}]"
        inst = as_instance(raw, where)
        if inst.classname.lower() != mc.DATA_ITEM.lower():
            raise InvalidParameter(f"{where} is an embedded {inst.classname}: pass an "
                                   f"embedded {mc.DATA_ITEM}")
        source = inst.get("Source")
        if source is not None and int(source) != mc.SOURCE_HOST:
            raise InvalidParameter(f"{where}: Source {int(source)} is not supported: the host "
                                   "can only change its own items (Source 0, HostExchangeItems)")
        out.append(kvp.check_item(inst.get("Name"), inst.get("Data"), where, change))
    return out


class KvpMethods(ServiceProvider):
    """The host's key-value pairs of a VM."""

    def _change_items(self, params: Params, change: kvp.Change) -> Result:
        guid = target_guid(self.ctx, params, "TargetSystem")
        requested = _requested(params, change)
        vs = self.ctx.host.get_system(guid)
        if vs is None:
            raise NotFound(f"there is no virtual machine {guid}: pass the path of an existing "
                           "Msvm_ComputerSystem as TargetSystem")
        busy = Transition(None, RequestedState.NOT_APPLICABLE, what="a key-value item change")
        with self.ctx.transitions.during(guid, busy, vs.name):
            current = self.ctx.host.get_system(guid)
            if current is None:
                raise NotFound(f"the virtual machine {guid} was removed meanwhile")
            label = f"'{current.name}' ({guid})"
            new = copy.deepcopy(current)
            new.kvp_items = kvp.apply(current.kvp_items, requested, change, label)
            self.ctx.host.define(new)
        return int(ReturnCode.COMPLETED), {}

    @method("AddKvpItems", _A, params=_PARAMS)
    def add_kvp_items(self, target: CIMTarget, params: Params) -> Result:
        return self._change_items(params, kvp.Change.ADD)

    @method("ModifyKvpItems", _A, params=_PARAMS)
    def modify_kvp_items(self, target: CIMTarget, params: Params) -> Result:
        return self._change_items(params, kvp.Change.MODIFY)

    @method("RemoveKvpItems", _A, params=_PARAMS)
    def remove_kvp_items(self, target: CIMTarget, params: Params) -> Result:
        return self._change_items(params, kvp.Change.REMOVE)
