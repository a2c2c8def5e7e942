"""root/cimv2: the host's identity as WMI shows it (Win32_ComputerSystem,
Win32_ComputerSystemProduct, Win32_OperatingSystem, Win32_Processor) and CIM_DataFile, declared
with no instance (vsms exposes no file system).

Every value is read from the running host on each request (:mod:`vsms.providers.hostfacts`);
nothing names a VM or a job, so per-VM scopes never hide these instances (host-level, like
the interop namespace) and every role may read them. The classes have no methods.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import pywbem

from vsms.cim.datetimes import to_cim
from vsms.cim.schema import load_schema
from vsms.providers.base import Provider
from vsms.providers.hostfacts import HostFacts, Processor
from vsms.providers.registry import Registry

CIMV2_NAMESPACE = "root/cimv2"
COMPUTER_SYSTEM = "Win32_ComputerSystem"
COMPUTER_SYSTEM_PRODUCT = "Win32_ComputerSystemProduct"
OPERATING_SYSTEM = "Win32_OperatingSystem"
PROCESSOR = "Win32_Processor"
DATA_FILE = "CIM_DataFile"
WORKGROUP = "WORKGROUP"

_U16, _U32, _U64 = pywbem.Uint16, pywbem.Uint32, pywbem.Uint64


def _instance(classname: str, keys: dict[str, str], values: dict[str, Any],
              types: dict[str, str]) -> pywbem.CIMInstance:
    """An instance of ``classname`` keyed by ``keys``; ``values`` typed per ``types`` (NULLs
    keep their declared type)."""
    path = pywbem.CIMInstanceName(classname, keybindings=keys, namespace=CIMV2_NAMESPACE)
    inst = pywbem.CIMInstance(classname, path=path)
    for name, value in {**keys, **values}.items():
        inst.properties[name] = pywbem.CIMProperty(name, value, type=types.get(name, "string"))
    return inst


def processor_caption(proc: Processor) -> str | None:
    """WMI's Caption of a processor: "Intel64 Family 6 Model 85 Stepping 7"."""
    if proc.cpuid is None:
        return proc.model
    family = {"genuineintel": "Intel64", "authenticamd": "AMD64"}.get(
        (proc.vendor or "").lower(), platform.machine())
    return f"{family} {proc.cpuid}"


class HostIdentityProvider(Provider):
    """The Win32 host classes, one instance each (one Win32_Processor per socket)."""

    classnames = (COMPUTER_SYSTEM, COMPUTER_SYSTEM_PRODUCT, OPERATING_SYSTEM, PROCESSOR)

    def __init__(self, hostname: str, facts: HostFacts | None = None) -> None:
        self.hostname = hostname  # the Name key: the SystemName used across vsms
        self.facts = facts or HostFacts()

    def enumerate(self, classname: str) -> Iterable[pywbem.CIMInstance]:
        build = {COMPUTER_SYSTEM.lower(): self.computer_system,
                 COMPUTER_SYSTEM_PRODUCT.lower(): self.product,
                 OPERATING_SYSTEM.lower(): self.operating_system}.get(classname.lower())
        if build is not None:
            return [build()]
        if classname.lower() == PROCESSOR.lower():
            return self.processors()
        return []

    def computer_system(self) -> pywbem.CIMInstance:
        f = self.facts
        procs = f.processors()
        product = f.product()
        domain = f.dns_domain()
        _, _, width = f.architecture()
        return _instance(COMPUTER_SYSTEM, {"Name": self.hostname}, {
            "Caption": self.hostname,
            "Description": "AT/AT COMPATIBLE",
            "Status": "OK",
            "CreationClassName": COMPUTER_SYSTEM,
            "PrimaryOwnerName": None,
            "DNSHostName": f.dns_host_name(),
            "Domain": domain or WORKGROUP,
            "DomainRole": _U16(2),  # Standalone Server
            "Manufacturer": product.vendor,
            "Model": product.name,
            "NumberOfProcessors": _U32(len(procs)),
            "NumberOfLogicalProcessors": _U32(sum(p.threads for p in procs)),
            "PartOfDomain": False,
            "SystemType": "x64-based PC" if width == 64 else "X86-based PC",
            "TotalPhysicalMemory": _opt(_U64, _times(f.memory().total_kib, 1024)),
            "Workgroup": None if domain else WORKGROUP,
        }, {"InstallDate": "datetime", "DomainRole": "uint16", "NumberOfProcessors": "uint32",
            "NumberOfLogicalProcessors": "uint32", "PartOfDomain": "boolean",
            "TotalPhysicalMemory": "uint64"})

    def product(self) -> pywbem.CIMInstance:
        p = self.facts.product()
        return _instance(COMPUTER_SYSTEM_PRODUCT, {
            "IdentifyingNumber": p.serial or p.uuid or "",
            "Name": p.name or "", "Version": p.version or ""}, {
            "Caption": "Computer System Product",
            "Description": "Computer System Product",
            "SKUNumber": None,
            "Vendor": p.vendor,
            "UUID": p.uuid,
        }, {})

    def operating_system(self) -> pywbem.CIMInstance:
        f = self.facts
        caption = f.os_caption()
        uname = os.uname()
        mem = f.memory()
        boot = f.boot_time()
        _, os_arch, _ = f.architecture()
        swap_total = mem.swap_total_kib or 0
        return _instance(OPERATING_SYSTEM, {"Name": f"{caption}|/"}, {
            "Caption": caption,
            "Description": f"{uname.sysname} {uname.release}",
            "Status": "OK",
            "CreationClassName": OPERATING_SYSTEM,
            "CSName": self.hostname,
            "OSType": _U16(36),  # LINUX
            "Version": uname.release,
            "BuildNumber": uname.version,
            "OSArchitecture": os_arch,
            "LastBootUpTime": to_cim(boot) if boot is not None else None,
            "LocalDateTime": pywbem.CIMDateTime(datetime.now().astimezone()),
            "NumberOfProcesses": _opt(_U32, f.process_count()),
            "TotalVisibleMemorySize": _opt(_U64, mem.total_kib),
            "FreePhysicalMemory": _opt(_U64, mem.available_kib),
            "TotalVirtualMemorySize": _opt(_U64, _plus(mem.total_kib, swap_total)),
            "FreeVirtualMemory": _opt(_U64, _plus(mem.available_kib, mem.swap_free_kib or 0)),
        }, {"InstallDate": "datetime", "OSType": "uint16", "LastBootUpTime": "datetime",
            "LocalDateTime": "datetime", "NumberOfProcesses": "uint32",
            **{k: "uint64" for k in ("TotalVisibleMemorySize", "FreePhysicalMemory",
                                     "TotalVirtualMemorySize", "FreeVirtualMemory")}})

    def processors(self) -> list[pywbem.CIMInstance]:
        arch, _, width = self.facts.architecture()
        out = []
        for i, proc in enumerate(self.facts.processors()):
            out.append(_instance(PROCESSOR, {"DeviceID": f"CPU{i}"}, {
                "Caption": processor_caption(proc),
                "Description": processor_caption(proc),
                "Name": proc.model,
                "Status": "OK",
                "CreationClassName": PROCESSOR,
                "SystemName": self.hostname,
                "Architecture": _opt(_U16, arch),
                "Manufacturer": proc.vendor,
                "NumberOfCores": _U32(proc.cores),
                "NumberOfLogicalProcessors": _U32(proc.threads),
                "MaxClockSpeed": _opt(_U32, proc.max_mhz),
                "CurrentClockSpeed": _opt(_U32, proc.current_mhz),
                "AddressWidth": _U16(width),
                "DataWidth": _U16(width),
            }, {"InstallDate": "datetime", "Architecture": "uint16", "NumberOfCores": "uint32",
                "NumberOfLogicalProcessors": "uint32", "MaxClockSpeed": "uint32",
                "CurrentClockSpeed": "uint32", "AddressWidth": "uint16", "DataWidth": "uint16"}))
        return out


class DataFileProvider(Provider):
    """CIM_DataFile: declared so that inventory queries find the class; never an instance."""

    classnames = (DATA_FILE,)


def _opt(kind: Any, value: int | None) -> Any:
    return kind(value) if value is not None else None


def _times(value: int | None, factor: int) -> int | None:
    return value * factor if value is not None else None


def _plus(a: int | None, b: int) -> int | None:
    return a + b if a is not None else None


def install_cimv2(registry: Registry, hostname: str, facts: HostFacts | None = None,
                  namespace: str = CIMV2_NAMESPACE) -> HostIdentityProvider:
    """Add root/cimv2 and its providers to ``registry``."""
    schema = load_schema(CIMV2_NAMESPACE)
    registry.add_namespace(namespace, schema.classes, schema.qualifiers)
    provider = HostIdentityProvider(hostname, facts)
    registry.add_provider(namespace, provider)
    registry.add_provider(namespace, DataFileProvider())
    return provider
