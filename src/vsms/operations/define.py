"""DefineVirtualSystem: a new VM from an embedded VSGSD and optional RASDs.

Every VM gets the Hyper-V default devices (two IDE controllers, 512 MB of memory, one
processor); memory and processor RASDs among the client's change those defaults, the others add
devices. A RASD may name an earlier RASD of the same call as its Parent by the InstanceID the
client gave it. The plan is checked completely before anything is defined.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pywbem

from vsms.errors import OperationFailed
from vsms.mapping.checks import Checked
from vsms.mapping.resources import add_resource
from vsms.mapping.system import DEFAULT_NAME, apply_global_settings
from vsms.model.vm import VirtualSystem, default_controllers, new_guid
from vsms.operations.modify import check_defineable
from vsms.operations.paths import StorageRoots
from vsms.operations.resources import resource_env
from vsms.operations.undo import OpContext, Undefine
from vsms.virt.host import VirtHost

_GUID_ATTEMPTS = 5


@dataclass
class DefineSystem:
    host: VirtHost
    vs: VirtualSystem
    checked: Checked | None = None  # ``vs`` as check_defineable passed it (None: define checks)

    def run(self, ctx: OpContext) -> None:
        ctx.check_cancelled()
        ctx.add_undo(Undefine(self.vs.guid))
        self.host.define(self.checked or self.vs)
        ctx.set_result(guid=self.vs.guid)
        ctx.progress(100)


def _unused_guid(host: VirtHost) -> str:
    for _ in range(_GUID_ATTEMPTS):
        guid = new_guid()
        if host.get_system(guid) is None:
            return guid
    raise OperationFailed("could not find an unused virtual machine GUID")


def prepare_define(host: VirtHost, roots: StorageRoots, global_settings: pywbem.CIMInstance,
                   rasds: Sequence[pywbem.CIMInstance], *,
                   default_data_root: str = "") -> DefineSystem:
    """Plan the new VM (no side effects); raises a VsmsError naming the first bad input. A VM
    whose settings name no ExternalDataRoot gets ``default_data_root`` (the service's
    DefaultExternalDataRoot)."""
    guid = _unused_guid(host)
    vs = VirtualSystem(guid=guid, name=DEFAULT_NAME, controllers=default_controllers())
    vs = apply_global_settings(vs, global_settings, defining=True)
    if not vs.external_data_root:
        vs.external_data_root = default_data_root
    env = resource_env(roots, host, guid)
    for rasd in rasds:
        add_resource(vs, rasd, env, defining=True)
    return DefineSystem(host, vs, check_defineable(host, vs))
