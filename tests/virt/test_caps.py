"""Domain type resolution ("auto" → kvm or qemu) from both answers libvirt can give, and the
capabilities of this host's real libvirt."""

from __future__ import annotations

import libvirt
import pytest

from vsms.errors import InvalidParameter, NotSupported
from vsms.settings import Settings, load_settings
from vsms.virt import caps

URI = "qemu:///system"


def caps_xml(*domain_types: str, emulator: str = "/usr/bin/qemu-system-x86_64") -> str:
    domains = "".join(f"<domain type='{t}'/>" for t in domain_types)
    return (f"<capabilities><host><cpu><arch>x86_64</arch></cpu></host>"
            f"<guest><os_type>hvm</os_type><arch name='i686'><domain type='kvm'/></arch></guest>"
            f"<guest><os_type>hvm</os_type><arch name='x86_64'><wordsize>64</wordsize>"
            f"<emulator>{emulator}</emulator>{domains}</arch></guest></capabilities>")


def test_auto_is_the_default() -> None:
    assert Settings().domain_type == "auto"
    assert load_settings(env={}).domain_type == "auto"
    assert load_settings(env={"VSMS_DOMAIN_TYPE": "qemu"}).domain_type == "qemu"


def test_auto_picks_kvm_when_libvirt_offers_it() -> None:
    offered = caps.parse(caps_xml("qemu", "kvm"), "QEMU")
    assert offered.domain_types == {"qemu", "kvm"}
    assert caps.resolve("auto", offered, URI) == ("kvm", None)
    assert caps.resolve("qemu", offered, URI) == ("qemu", None)  # TCG can still be forced


def test_auto_falls_back_to_tcg_without_kvm() -> None:
    tcg_only = caps.parse(caps_xml("qemu"), "QEMU")
    assert caps.resolve("auto", tcg_only, URI) == ("qemu", None)
    with pytest.raises(NotSupported, match=r"does not offer domain type 'kvm'.*it offers qemu"):
        caps.resolve("kvm", tcg_only, URI)  # forcing kvm where there is none is refused


def test_unknown_domain_type_is_refused() -> None:
    with pytest.raises(InvalidParameter, match="domain type 'xen' is not supported: use one of "
                                               "qemu, kvm, auto"):
        caps.check_requested("xen")


@pytest.mark.qemu
def test_this_hosts_answer_is_resolved() -> None:
    conn = libvirt.open(URI)
    try:
        found = caps.parse(conn.getCapabilities(), conn.getType())
    finally:
        conn.close()
    assert "qemu" in found.domain_types
    expected = "kvm" if "kvm" in found.domain_types else "qemu"
    assert caps.resolve("auto", found, URI)[0] == expected
