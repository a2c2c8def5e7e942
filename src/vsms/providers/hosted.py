"""Msvm_HostedService: the host's Msvm_ComputerSystem → each service it hosts (every
singleton service vsms serves: the virtual system management service, the image management
service, the virtual switch management service, and any added later), as Hyper-V links them
so that a client can discover the services from the host."""

from __future__ import annotations

from collections.abc import Iterable

import pywbem

from vsms.cim import names
from vsms.providers.base import ServiceProvider, SingletonService, association


class HostedServiceProvider(ServiceProvider):
    classnames = (names.HOSTED_SERVICE,)

    def _host(self) -> pywbem.CIMInstanceName:
        return pywbem.CIMInstanceName(names.COMPUTER_SYSTEM, {
            "CreationClassName": names.COMPUTER_SYSTEM, "Name": self.ctx.hostname},
            namespace=names.NAMESPACE)

    def _services(self) -> list[pywbem.CIMInstanceName]:
        """The path of each singleton service (the keys ``SingletonService.path`` gives)."""
        from vsms.providers.build import PROVIDERS  # build imports this module
        out = []
        for cls in PROVIDERS:
            if issubclass(cls, SingletonService):
                cn = cls.classnames[0]
                out.append(pywbem.CIMInstanceName(cn, {
                    "CreationClassName": cn, "Name": cls.service_name,
                    "SystemCreationClassName": names.COMPUTER_SYSTEM,
                    "SystemName": self.ctx.hostname}, namespace=names.NAMESPACE))
        return out

    def enumerate(self, classname: str) -> Iterable[pywbem.CIMInstance]:
        host = self._host()
        return [association(names.HOSTED_SERVICE, {"Antecedent": host, "Dependent": service},
                            ref_classes={"Antecedent": "CIM_System", "Dependent": "CIM_Service"})
                for service in self._services()]
