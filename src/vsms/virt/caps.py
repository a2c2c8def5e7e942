"""What the hypervisor offers for an x86_64 hvm guest: domain types and the default emulator."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from vsms.errors import InvalidParameter, NotSupported

DOMAIN_TYPES = ("qemu", "kvm", "auto")
_QEMU_BINARY = "qemu-system-x86_64"


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
