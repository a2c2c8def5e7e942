"""The cache's index of held switch ports (vsms.virt.portindex) follows every change to the VMs:
our own defines and undefines, and another connection's (as virsh's), through libvirt's events.
Nothing is started; the switch need not exist for a definition."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import libvirt

from tests.virt.conftest import Tracker, qemu_created, qemu_host, small_vm  # noqa: F401
from vsms.virt.host import VirtHost
from vsms.virt.portindex import held_by


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_held_ports_follow_every_change(qemu_host: VirtHost,  # noqa: F811
                                        qemu_created: Tracker) -> None:  # noqa: F811
    switch = str(uuid.uuid4()).upper()
    a = small_vm(qemu_created.new(), "port-index-a", nic_switch=switch)
    a.nics[0].port, a.nics[0].switch_id = "Port-A", switch
    b = small_vm(qemu_created.new(), "port-index-b", nic_switch=switch)
    b.nics[0].port, b.nics[0].switch_id = "port-b", switch
    qemu_host.define(a)
    qemu_host.define(b)
    held = qemu_host.held_ports()
    user = held.user(switch.lower(), "port-a")  # keys are case-insensitive
    assert user is not None and user.guid == a.guid
    assert held.user_nic(switch, "PORT-B") is not None
    assert held.switch_of("port-a") == switch.casefold()
    assert held.switch_of("no-such-port") is None
    assert sorted(p.name for p in held.ports(switch)) == ["Port-A", "port-b"]
    assert {p.friendly for p in held.ports(switch)} == {"Network adapter port"}
    # the same answers from an index built over a list of VMs
    listed = held_by([a, b])
    assert listed.user(switch, "port-b") is not None and listed.switch_of("PORT-A") is not None

    # our own redefinition moves A to another port: the old one is free
    a.nics[0].port = "port-a2"
    qemu_host.define(a)
    held = qemu_host.held_ports()
    assert not held.holds(switch, "port-a") and held.holds(switch, "port-a2")

    # another connection (as virsh would) takes B off its port: seen through the events
    conn = libvirt.open(qemu_host.uri)
    try:
        dom = conn.lookupByUUIDString(b.guid)
        xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        assert 'port="port-b"' in xml or "port='port-b'" in xml, xml
        conn.defineXML(xml.replace('port="port-b"', 'port=""').replace("port='port-b'",
                                                                      "port=''"))
        assert wait_until(lambda: not qemu_host.held_ports().holds(switch, "port-b"))
        # and undefines A: its port goes with it
        conn.lookupByUUIDString(a.guid).undefine()
        assert wait_until(lambda: not qemu_host.held_ports().holds(switch, "port-a2"))
    finally:
        conn.close()
    assert qemu_host.held_ports().ports(switch) == []
