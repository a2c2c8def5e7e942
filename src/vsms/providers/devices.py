"""The logical devices of every VM (``mapping.logical_devices``) and their associations.

``LogicalDeviceProvider`` serves Msvm_Processor, Msvm_Memory, the controllers, drives, images
(Msvm_LogicalDisk), Ethernet ports, keyboard, mouse, display, serial and diskette devices and
Msvm_BIOSElement; ``DeviceAssociationProvider`` serves Msvm_SystemDevice, Msvm_SystemBIOS,
Msvm_ControlledBy, Msvm_ProtocolControllerForUnit, Msvm_MediaPresent,
Msvm_SerialPortOnSerialController and Msvm_VideoHeadOnController. Enumeration reads the VMs and
their states once (``host.inventory()``: from the event-kept table, no libvirt call when
nothing changed); ``get`` and the associations of one VM read that VM only. The instances are
built from the class definitions of our MOF (compiled once per provider, on first use), so each
carries every property of its class.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import pywbem

from vsms.cim import names
from vsms.cim.enums import EnabledState
from vsms.cim.schema import shared_classes
from vsms.mapping import logical_devices as ld
from vsms.model.vm import VirtualSystem
from vsms.providers.base import ServiceProvider
from vsms.providers.common import same_path


class _Classes(ServiceProvider):
    @functools.cached_property
    def classes(self) -> dict[str, pywbem.CIMClass]:
        return dict(shared_classes(names.NAMESPACE))  # read only (docs/contracts.md)

    def _one(self, guid: str) -> VirtualSystem | None:
        return self.ctx.host.get_system(guid)


class LogicalDeviceProvider(_Classes):
    classnames = (*ld.DEVICE_CLASSES, ld.BIOS)

    def _instances(self, vs: VirtualSystem, state: EnabledState, classname: str
                   ) -> list[pywbem.CIMInstance]:
        want = classname.lower()
        cls = self.classes[want]
        if want == ld.BIOS.lower():
            return [ld.bios_instance(cls, vs)]
        return [ld.instance(cls, vs, state, d) for d in ld.devices(vs)
                if d.classname.lower() == want]

    def enumerate(self, classname: str) -> Iterable[pywbem.CIMInstance]:
        return [i for vs, state in self.ctx.host.inventory()
                for i in self._instances(vs, state, classname)]

    def get(self, path: pywbem.CIMInstanceName) -> pywbem.CIMInstance | None:
        guid = ld.system_of(path)
        vs = self._one(guid) if guid else None
        if vs is None:
            return None
        state = self.ctx.host.cached_state(vs.guid)
        return next((i for i in self._instances(vs, state, path.classname)
                     if i.path is not None and same_path(i.path, path)), None)


class DeviceAssociationProvider(_Classes):
    classnames = ld.ASSOCIATIONS

    def _associations(self, vs: VirtualSystem, classname: str) -> list[pywbem.CIMInstance]:
        want = classname.lower()
        cls = self.classes[want]
        return [ld.from_class(cls, pywbem.CIMInstanceName(cls.classname, keybindings=link.refs,
                                                          namespace=names.NAMESPACE),
                              link.values)
                for link in ld.links(vs) if link.classname.lower() == want]

    def enumerate(self, classname: str) -> Iterable[pywbem.CIMInstance]:
        return [a for vs in self.ctx.host.shared_systems()
                for a in self._associations(vs, classname)]

    def references_to(self, classname: str, target: pywbem.CIMInstanceName
                      ) -> Iterable[pywbem.CIMInstance]:
        """Those of the one VM ``target`` (the VM, its BIOS or one of its devices) belongs to."""
        guid = ld.system_of(target)
        vs = self._one(guid) if guid else None
        return self._associations(vs, classname) if vs is not None else []

    def get(self, path: pywbem.CIMInstanceName) -> pywbem.CIMInstance | None:
        refs = [r for r in path.keybindings.values() if isinstance(r, pywbem.CIMInstanceName)]
        candidates = self.references_to(path.classname, refs[0]) if refs else []
        return next((i for i in candidates if same_path(i.path, path)), None)
