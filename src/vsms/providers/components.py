"""The integration components of every VM (``mapping.components``) and their settings, and
Msvm_ShutdownComponent.InitiateShutdown.

Enumerating reads the VMs and their states once (``host.inventory()``: from the event-kept
table, no libvirt call when nothing changed), plus,
for the heartbeat and KVP components only, one guest-agent round trip per running VM whose
agent channel is connected. Their associations (Msvm_SystemDevice, Msvm_ElementSettingData,
Msvm_VirtualSystemSettingDataComponent) are served with the other devices' and settings'.

InitiateShutdown presses the VM's ACPI power button and answers 4096 with an Msvm_ConcreteJob
that completes when the VM is off, or fails with 32772 (Timeout) and an ErrorDescription saying
the guest did not react, and how to turn the VM off, after ``shutdown_timeout_seconds``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable
from dataclasses import dataclass

import pywbem

from vsms.auth.policy import Role
from vsms.cim import names
from vsms.cim.enums import ElementEffects, EnabledState, ReturnCode
from vsms.cim.schema import shared_classes
from vsms.errors import InvalidParameter, NotFound, VsmsError
from vsms.jobs.context import OpContext
from vsms.mapping import components as mc
from vsms.mapping import ids
from vsms.mapping import logical_devices as ld
from vsms.model.vm import VirtualSystem
from vsms.providers.base import CIMTarget, ServiceProvider, method
from vsms.providers.common import Params, Result, key, param, same_path, vm_element
from vsms.virt import agent
from vsms.virt.host import VirtHost

_POLL = 0.5


@dataclass
class GuestShutdown:
    """The job: wait until the VM is off; fail with Timeout when it is not after ``timeout``."""

    host: VirtHost
    guid: str
    label: str
    timeout: float

    def run(self, ctx: OpContext) -> None:
        start = time.monotonic()
        while True:
            ctx.check_cancelled()
            state = self.host.state(self.guid)
            if state in (EnabledState.DISABLED, EnabledState.SUSPENDED):
                ctx.progress(100)
                return
            waited = time.monotonic() - start
            if waited >= self.timeout:
                raise VsmsError(
                    f"the guest operating system of {self.label} did not react to the shutdown "
                    f"request (an ACPI power-button press) within {self.timeout:g} seconds: it "
                    "may have no operating system yet, no ACPI support, or be configured to "
                    "ignore the power button; the virtual machine was left running. Turn it off "
                    "with RequestStateChange(RequestedState=3) if it must stop (unsaved data in "
                    "the guest is lost), or make the guest handle the power button",
                    code=ReturnCode.TIMEOUT)
            ctx.progress(min(99.0, 100.0 * waited / self.timeout) if self.timeout else 99.0)
            ctx.status(f"waiting for the guest of {self.label} to shut down")
            time.sleep(_POLL)


class ComponentProvider(ServiceProvider):
    """Every component class but the shutdown component, and every settings class."""

    classnames = tuple(c for c in (*mc.COMPONENT_CLASSES, *mc.SETTING_CLASSES)
                       if c != mc.SHUTDOWN)

    @functools.cached_property
    def classes(self) -> dict[str, pywbem.CIMClass]:
        return dict(shared_classes(names.NAMESPACE))  # read only (docs/contracts.md)

    def _instances(self, vs: VirtualSystem, state: EnabledState, classname: str
                   ) -> list[pywbem.CIMInstance]:
        want = classname.lower()
        cls, item = self.classes[want], self.classes[mc.DATA_ITEM.lower()]
        if want in (c.lower() for c in mc.SETTING_CLASSES):
            return [mc.settings_instance(cls, vs, item)]
        view = agent.GuestView()
        if want in (mc.HEARTBEAT.lower(), mc.KVP.lower()) and state is EnabledState.ENABLED:
            try:
                view = agent.guest_view(self.ctx.host, vs.guid, with_items=want == mc.KVP.lower())
            except NotFound:
                return []  # gone meanwhile
        return [mc.component_instance(cls, vs, state, view.contact, view.items, item)]

    def enumerate(self, classname: str) -> Iterable[pywbem.CIMInstance]:
        return [i for vs, state in self.ctx.host.inventory()
                for i in self._instances(vs, state, classname)]

    def get(self, path: pywbem.CIMInstanceName) -> pywbem.CIMInstance | None:
        guid = self._guid_of(path)
        vs = self.ctx.host.get_system(guid) if guid else None
        if vs is None:
            return None
        state = self.ctx.host.cached_state(vs.guid)
        return next((i for i in self._instances(vs, state, path.classname)
                     if i.path is not None and same_path(i.path, path)), None)

    @staticmethod
    def _guid_of(path: pywbem.CIMInstanceName) -> str | None:
        guid = ld.system_of(path)
        if guid is not None:
            return guid
        try:
            return ids.guid_of(key(path, "InstanceID"))
        except InvalidParameter:
            return None


class ShutdownComponentProvider(ComponentProvider):
    """Msvm_ShutdownComponent and its method."""

    classnames = (mc.SHUTDOWN,)

    @method("InitiateShutdown", Role.OPERATOR, params=("Force", "Reason"), job=True)
    def initiate_shutdown(self, target: CIMTarget, params: Params) -> Result:
        if not isinstance(target, pywbem.CIMInstanceName) or \
                target.classname.lower() != mc.SHUTDOWN.lower():
            raise InvalidParameter("InitiateShutdown is a method of an Msvm_ShutdownComponent "
                                   "instance: invoke it on the component of the virtual machine")
        guid = self._guid_of(target)
        if not guid:
            raise InvalidParameter("the Msvm_ShutdownComponent path names no virtual machine "
                                   "(SystemName): use the path enumeration returns")
        comp = self.get(target)
        if comp is None:
            raise NotFound(f"there is no Msvm_ShutdownComponent {key(target, 'DeviceID')!r} "
                           f"of a virtual machine {guid}: enumerate Msvm_ShutdownComponent and "
                           "use a path it returns")
        reason = param(params, "Reason", required=False)
        force = bool(param(params, "Force", required=False))
        label = agent.press_power_button(self.ctx.host, guid)
        why = f" (reason: {reason})" if isinstance(reason, str) and reason.strip() else ""
        work = GuestShutdown(self.ctx.host, guid, label,
                             max(0.0, self.ctx.settings.shutdown_timeout_seconds))
        return self.start_job(
            "Shut Down Guest", f"Shutting down the guest of {label}{why}"
            f"{' (Force requested)' if force else ''}", work,
            affected=[vm_element(guid, ElementEffects.PERFORMANCE_IMPACT)])
