"""The one validator with the host's real limits: read from libvirt, applied on every define,
once."""

from __future__ import annotations

import re

import libvirt
import pytest

from tests.virt.conftest import TEST_URI, Tracker, small_vm
from vsms.errors import InvalidParameter
from vsms.mapping import checks
from vsms.model.vm import VirtualSystem
from vsms.virt import caps
from vsms.virt.host import VirtHost


def libvirt_answers(uri: str, domain_type: str) -> tuple[int, int]:
    conn = libvirt.open(uri)
    try:
        domcaps = conn.getDomainCapabilities(None, "x86_64", "pc", domain_type, 0)
        found = re.search(r"<vcpu max='(\d+)'/>", domcaps)
        assert found is not None
        return int(found.group(1)), int(conn.getInfo()[1])
    finally:
        conn.close()


@pytest.mark.qemu
def test_limits_are_the_hosts(qemu_host: VirtHost, qemu_uri: str) -> None:
    limits = qemu_host.limits()
    conn = libvirt.open(qemu_uri)
    try:
        domain_type = "kvm" if "domain type='kvm'" in conn.getCapabilities() else "qemu"
    finally:
        conn.close()
    assert (limits.max_processors, limits.max_memory_mb) == libvirt_answers(qemu_uri,
                                                                             domain_type)
    assert limits.source == f"libvirt at {qemu_uri} ({domain_type})"


@pytest.mark.qemu
def test_define_refuses_what_the_host_cannot_give(qemu_host: VirtHost,
                                                  qemu_created: Tracker) -> None:
    limits = qemu_host.limits()
    vs = small_vm(qemu_created.new(), "too-big")
    vs.processors = limits.max_processors + 1
    vs.memory_mb = limits.max_memory_mb + 1
    with pytest.raises(InvalidParameter) as info:
        qemu_host.define(vs)
    text = str(info.value)
    assert text.startswith(f"cannot define virtual machine 'too-big' ({vs.guid}): ")
    assert (f"{vs.processors} virtual processors is out of range: give 1 to "
            f"{limits.max_processors} (the most {limits.source} allows)") in text
    assert (f"memory of {vs.memory_mb} MB is out of range: give 8 to {limits.max_memory_mb} MB "
            f"(the most {limits.source} allows)") in text
    assert qemu_host.get_system(vs.guid) is None  # nothing defined
    vs.processors, vs.memory_mb = limits.max_processors, 64  # the limit itself is allowed
    qemu_host.define(vs)
    got = qemu_host.get_system(vs.guid)
    assert got is not None and got.processors == limits.max_processors


def test_a_driver_without_domain_capabilities_gets_the_machine_limit(
        test_host: VirtHost) -> None:
    conn = libvirt.open(TEST_URI)
    try:
        memory = int(conn.getInfo()[1])
        assert caps.host_limits(conn, "qemu", TEST_URI) == checks.Limits(
            checks.MACHINE_LIMITS.max_processors, memory, f"libvirt at {TEST_URI} (qemu)")
    finally:
        conn.close()
    assert test_host.limits().max_memory_mb == memory


def test_each_define_is_checked_once(test_host: VirtHost, created: Tracker,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = checks.problems

    def counted(vs: VirtualSystem, limits: checks.Limits) -> list[str]:
        calls.append(vs.guid)
        return real(vs, limits)

    monkeypatch.setattr(checks, "problems", counted)
    vs = small_vm(created.new())
    checked = test_host.check(vs)
    test_host.define(checked)  # what check passed is not checked again
    assert calls == [vs.guid]
    vs.name = "renamed"
    test_host.define(vs)  # a model not checked before is checked by define
    assert calls == [vs.guid, vs.guid]
    got = test_host.get_system(vs.guid)
    assert got is not None and got.name == "renamed"


def test_checked_is_a_private_copy(test_host: VirtHost, created: Tracker) -> None:
    vs = small_vm(created.new())
    checked = test_host.check(vs)
    vs.memory_mb = 0  # changing the model after the check cannot reach libvirt unchecked
    test_host.define(checked)
    got = test_host.get_system(vs.guid)
    assert got is not None and got.memory_mb == 64
