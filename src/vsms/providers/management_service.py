"""Msvm_VirtualSystemManagementService: the singleton service and its method dispatch.

Life-cycle methods come from ``vsms_lifecycle``, export/import from ``vsms_exportimport``; every
other method the class declares returns 32770 (Not supported) and does nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pywbem

from vsms.cim import names
from vsms.providers import vsms_exportimport, vsms_lifecycle
from vsms.providers.common import Handler, guarded, not_supported
from vsms.providers.context import ServiceContext


class ManagementServiceProvider:
    classnames = (names.VSMS,)

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        table: dict[str, Handler] = {}
        table.update(vsms_lifecycle.handlers(ctx))
        table.update(vsms_exportimport.handlers(ctx))
        self._handlers = {name.lower(): guarded(fn) for name, fn in table.items()}

    def path(self) -> pywbem.CIMInstanceName:
        return pywbem.CIMInstanceName(names.VSMS, keybindings={
            "CreationClassName": names.VSMS, "Name": names.VSMS_NAME,
            "SystemCreationClassName": names.COMPUTER_SYSTEM, "SystemName": self.ctx.hostname,
        }, namespace=names.NAMESPACE)

    def instance(self) -> pywbem.CIMInstance:
        inst = pywbem.CIMInstance(names.VSMS, properties={
            "CreationClassName": names.VSMS, "Name": names.VSMS_NAME,
            "SystemCreationClassName": names.COMPUTER_SYSTEM, "SystemName": self.ctx.hostname,
            "Caption": "Virtual System Management Service",
            "ElementName": "Virtual System Management Service",
            "Description": "Service for creating, manipulating, and managing virtual systems",
            "EnabledState": pywbem.Uint16(2), "EnabledDefault": pywbem.Uint16(2),
            "RequestedState": pywbem.Uint16(12), "HealthState": pywbem.Uint16(5),
            "OperationalStatus": [pywbem.Uint16(2)], "StatusDescriptions": ["OK"],
            "Started": True, "StartMode": "Automatic",
        })
        inst.path = self.path()
        return inst

    def enumerate(self, classname: str) -> Iterable[pywbem.CIMInstance]:
        return [self.instance()]

    def get(self, path: pywbem.CIMInstanceName) -> pywbem.CIMInstance | None:
        want = {k.lower(): str(v).lower() for k, v in path.keybindings.items()}
        have = {k.lower(): str(v).lower() for k, v in self.path().keybindings.items()}
        return self.instance() if want == have else None

    def invoke(self, target: pywbem.CIMInstanceName | pywbem.CIMClassName, method: str,
               params: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        handler = self._handlers.get(method.lower())
        if handler is None:
            return not_supported(names.VSMS, method)
        return handler(target, params)
