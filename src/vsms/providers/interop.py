"""The Interop namespace: one CIM_ObjectManager, one CIM_Namespace per served namespace.

WBEM clients discover a server through it (``pywbemcli namespace list``, ``server brand``;
pywbem's ``WBEMServer`` looks for ``interop`` first). The instances are computed on every
request from the registry, so a namespace added later shows up at once.
"""

from __future__ import annotations

from collections.abc import Iterator

import pywbem

import vsms
from vsms.cim import names
from vsms.cim.schema import load_schema
from vsms.providers.base import Provider, association
from vsms.providers.registry import Registry

NAMESPACE_CLASS = "CIM_Namespace"
OBJECT_MANAGER_CLASS = "CIM_ObjectManager"
NAMESPACE_IN_MANAGER = "CIM_NamespaceInManager"
SYSTEM_CLASS = "CIM_ComputerSystem"
BRAND = "vsms"


class InteropProvider(Provider):
    """Instances of CIM_Namespace, CIM_ObjectManager and CIM_NamespaceInManager."""

    classnames = (NAMESPACE_CLASS, OBJECT_MANAGER_CLASS, NAMESPACE_IN_MANAGER)

    def __init__(self, registry: Registry, namespace: str = names.INTEROP_NAMESPACE,
                 brand: str = BRAND, version: str = vsms.__version__) -> None:
        self.registry = registry
        self.namespace = namespace
        self.brand = brand
        self.version = version

    def _manager_path(self) -> pywbem.CIMInstanceName:
        return pywbem.CIMInstanceName(OBJECT_MANAGER_CLASS, keybindings={
            "SystemCreationClassName": SYSTEM_CLASS, "SystemName": self.registry.host,
            "CreationClassName": OBJECT_MANAGER_CLASS, "Name": self._manager_name()},
            namespace=self.namespace)

    def _manager_name(self) -> str:
        return f"{self.brand}:{self.registry.host}"

    def _manager(self) -> pywbem.CIMInstance:
        path = self._manager_path()
        inst = pywbem.CIMInstance(OBJECT_MANAGER_CLASS, path=path)
        for k, v in path.keybindings.items():
            inst[k] = v
        inst["ElementName"] = self.brand
        inst["Caption"] = f"{self.brand} CIM server"
        inst["Description"] = (f"{self.brand} {self.version}: Hyper-V compatible virtual system "
                               f"management service (CIM-XML)")
        inst["Started"] = True
        inst["Version"] = self.version
        return inst

    def _namespaces(self) -> Iterator[pywbem.CIMInstance]:
        for name in self.registry.namespaces():
            path = pywbem.CIMInstanceName(NAMESPACE_CLASS, keybindings={
                "SystemCreationClassName": SYSTEM_CLASS, "SystemName": self.registry.host,
                "ObjectManagerCreationClassName": OBJECT_MANAGER_CLASS,
                "ObjectManagerName": self._manager_name(),
                "CreationClassName": NAMESPACE_CLASS, "Name": name}, namespace=self.namespace)
            inst = pywbem.CIMInstance(NAMESPACE_CLASS, path=path)
            for k, v in path.keybindings.items():
                inst[k] = v
            inst["ElementName"] = name
            yield inst

    def enumerate(self, classname: str) -> list[pywbem.CIMInstance]:
        key = classname.lower()
        if key == OBJECT_MANAGER_CLASS.lower():
            return [self._manager()]
        if key == NAMESPACE_CLASS.lower():
            return list(self._namespaces())
        if key == NAMESPACE_IN_MANAGER.lower():
            manager = self._manager_path()
            out = []
            for ns in self._namespaces():
                out.append(association(NAMESPACE_IN_MANAGER, {
                    "Antecedent": manager, "Dependent": ns.path}, namespace=self.namespace))
            return out
        return []

def install_interop(registry: Registry, namespace: str = names.INTEROP_NAMESPACE,
                    brand: str = BRAND) -> InteropProvider:
    """Add the Interop namespace and its provider to ``registry``."""
    schema = load_schema(names.INTEROP_NAMESPACE)
    registry.add_namespace(namespace, schema.classes, schema.qualifiers)
    provider = InteropProvider(registry, namespace, brand)
    registry.add_provider(namespace, provider)
    return provider
