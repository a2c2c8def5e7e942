"""What the hypervisor offers for an x86_64 hvm guest: domain types, the default emulator, and
the limits of one VM (virtual processors, memory) that the validator applies."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

import libvirt

from vsms.errors import InvalidParameter, NotSupported
from vsms.mapping.checks import MACHINE_LIMITS, Limits

DOMAIN_TYPES = ("qemu", "kvm", "auto")
_QEMU_BINARY = "qemu-system-x86_64"
MACHINE = "pc"  # the machine type domxml writes (i440fx)


@dataclass(frozen=True)
class GuestCaps:
    driver: str  # libvirt's driver name, e.g. "QEMU" or "Test"
    domain_types: frozenset[str]  # offered for an x86_64 hvm guest (empty: none listed)
    emulator: str | None  # the emulator libvirt picks by itself, if it lists one


def parse(caps_xml: str, driver: str) -> GuestCaps:
    root = ET.fromstring(caps_xml)
    for guest in root.findall("guest"):
        arch = guest.find("arch")
        if guest.findtext("os_type") != "hvm" or arch is None or arch.get("name") != "x86_64":
            continue
        types = frozenset(d.get("type", "") for d in arch.findall("domain"))
        return GuestCaps(driver, types - {""}, (arch.findtext("emulator") or "").strip() or None)
    return GuestCaps(driver, frozenset(), None)


def check_requested(domain_type: str) -> str:
    if domain_type not in DOMAIN_TYPES:
        raise InvalidParameter(f"domain type {domain_type!r} is not supported: "
                               f"use one of {', '.join(DOMAIN_TYPES)}")
    return domain_type


def resolve(requested: str, caps: GuestCaps, uri: str) -> tuple[str, str | None]:
    """The ``<domain type>`` to write and the ``<emulator>`` to name (None: let libvirt pick).

    "auto" becomes kvm when the host offers it for x86_64, else qemu (TCG).
    """
    is_qemu = caps.driver.upper() == "QEMU"
    if requested == "auto":
        domain_type = "kvm" if "kvm" in caps.domain_types else "qemu"
    else:
        domain_type = requested
    if is_qemu and caps.domain_types and domain_type not in caps.domain_types:
        raise NotSupported(
            f"libvirt at {uri} does not offer domain type {domain_type!r} for x86_64 guests "
            f"(it offers {', '.join(sorted(caps.domain_types))}): set domain_type to \"qemu\" "
            "or \"auto\"")
    if caps.emulator or not is_qemu:
        return domain_type, None
    found = shutil.which(_QEMU_BINARY)
    if found is None:
        raise NotSupported(f"libvirt at {uri} lists no x86_64 emulator and {_QEMU_BINARY} is "
                           "not on PATH: install QEMU (Debian: qemu-system-x86)")
    return domain_type, found


def max_vcpus(domcaps_xml: str) -> int | None:
    """``<vcpu max>`` of a domain capabilities document, or None when it gives none."""
    vcpu = ET.fromstring(domcaps_xml).find("vcpu")
    raw = vcpu.get("max", "") if vcpu is not None else ""
    return int(raw) if raw.isdigit() and int(raw) > 0 else None


def host_limits(conn: Any, domain_type: str, uri: str) -> Limits:
    """The most one VM may have on this host: the virtual processors libvirt's domain
    capabilities allow for our machine type and ``domain_type``, and the host's memory.
    A number libvirt does not give (the test driver has no domain capabilities) is the
    machine type's (``MACHINE_LIMITS``)."""
    vcpus: int | None = None
    try:
        vcpus = max_vcpus(conn.getDomainCapabilities(None, "x86_64", MACHINE, domain_type, 0))
    except libvirt.libvirtError as exc:
        if exc.get_error_code() not in (libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_INVALID_ARG,
                                        libvirt.VIR_ERR_CONFIG_UNSUPPORTED):
            raise
    memory_mb = int(conn.getInfo()[1])
    return Limits(max_processors=vcpus or MACHINE_LIMITS.max_processors,
                  max_memory_mb=memory_mb if memory_mb > 0 else MACHINE_LIMITS.max_memory_mb,
                  source=f"libvirt at {uri} ({domain_type})")
