"""The text of shared instances is kept between enumerations (vsms.wbem.rendered), and never
shows an old value: the table on its own, and over WS-Man on qemu:///system a repeated
enumeration that is served from it, a VM changed behind the server's back (started and
stopped through libvirt directly: shown once its lifecycle event arrived; renamed through
ModifyVirtualSystem: at once), and a scoped user still seeing only its scope's VM after an
administrator warmed the table."""

from __future__ import annotations

import contextlib
import shutil
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import libvirt
import pytest
import pywbem
from pypsrp.wsman import NAMESPACES, SelectorSet, WSMan

from tests.conftest import QEMU_URI, fresh_dir
from tests.e2e import wbemflow
from tests.wsman.conftest import NS, WMI, free_port
from vsms.app import Service
from vsms.auth.policy import Role
from vsms.auth.setup import audit_from_settings, authenticator_from_settings
from vsms.auth.users import UsersFile
from vsms.cim import names
from vsms.cim.enums import OperationalStatus, RequestedState
from vsms.model.vm import VirtualSystem, default_controllers, new_guid
from vsms.operations.transitions import Transition
from vsms.settings import Settings
from vsms.wbem import encode as cimxml_encode
from vsms.wbem.rendered import Rendered
from vsms.wbem.server import WbemServer
from vsms.wsman import encode, ops

PASSWORD = "rendered-pass-123"
CS = WMI + "Msvm_ComputerSystem"


def inst(name: str, state: int = 3) -> pywbem.CIMInstance:
    return pywbem.CIMInstance(names.COMPUTER_SYSTEM, properties={
        "Name": name, "ElementName": f"vm {name}", "EnabledState": pywbem.Uint16(state)})


def test_the_same_object_only_is_given_its_kept_text() -> None:
    table: Rendered[str] = Rendered()
    written: list[str] = []

    def write(i: pywbem.CIMInstance, tag: str) -> str:
        written.append(tag)
        return f"{i['ElementName']}/{i['EnabledState']}/{tag}"
    a = inst("A")
    assert table.text(a, ("ns", None), lambda: write(a, "1")) == "vm A/3/1"
    assert table.text(a, ("ns", None), lambda: write(a, "2")) == "vm A/3/1"  # kept
    # other options: written again (and kept in place of the first)
    assert table.text(a, ("ns", frozenset({"name"})), lambda: write(a, "3")) == "vm A/3/3"
    # an equal instance that is another object is written afresh, as is a changed one
    same = inst("A")
    assert table.text(same, ("ns", None), lambda: write(same, "4")) == "vm A/3/4"
    moved = inst("A", 2)
    assert table.text(moved, ("ns", None), lambda: write(moved, "5")) == "vm A/2/5"
    assert written == ["1", "3", "4", "5"]
    assert (table.hits, table.misses) == (1, 4)


def test_the_table_drops_what_only_it_holds() -> None:
    table: Rendered[str] = Rendered(floor=16)
    kept = [inst(f"K{n}") for n in range(10)]
    for i in kept:
        table.text(i, None, lambda: "x")
    for n in range(1000):  # instances built for one answer, then dropped by their provider
        table.text(inst(f"F{n}"), None, lambda: "y")
        assert len(table) <= 2 * 16 + 1
    assert len(table) >= len(kept)
    misses = table.misses
    for i in kept:  # still alive elsewhere: still kept
        assert table.text(i, None, lambda: "written again") == "x"
    assert table.misses == misses
    del kept
    for n in range(40):
        table.text(inst(f"G{n}"), None, lambda: "z")
    assert len(table) <= 16 + 1


def test_a_kept_text_is_what_writing_it_afresh_gives() -> None:
    i = inst("B")
    i["OperationalStatus"] = [pywbem.Uint16(2)]
    first = encode.instance(i, names.NAMESPACE, None)
    assert encode.instance(i, names.NAMESPACE, None) is first  # served from the table
    assert first == encode.write_instance(i, names.NAMESPACE, None)
    only = encode.instance(i, names.NAMESPACE, None, {"name"})
    assert only == encode.write_instance(i, names.NAMESPACE, None, {"name"})
    assert "ElementName" not in only and "<p:Name>B</p:Name>" in only
    # the CIM-XML writer likewise, options included
    text = cimxml_encode.instance(i, None, False, False)
    assert cimxml_encode.instance(i, None, False, False) is text
    assert text == cimxml_encode.write_instance(i, None, False, False)
    origins = cimxml_encode.instance(i, None, {"name": "CIM_System"}, False)
    assert origins == cimxml_encode.write_instance(i, None, {"name": "CIM_System"}, False)
    assert 'CLASSORIGIN="CIM_System"' in origins and "CLASSORIGIN" not in text


# ---------------------------------------------------------------------- qemu:///system
@dataclass
class Live:
    server: WbemServer
    service: Service
    root: Path
    a: str  # in scope t1
    c: str  # in no scope

    def client(self, user: str) -> WSMan:
        return WSMan("127.0.0.1", port=self.server.ports["wsman-http"], ssl=False,
                     auth="basic", encryption="never", username=user, password=PASSWORD)

    def cimxml(self) -> pywbem.WBEMConnection:
        return pywbem.WBEMConnection(f"http://127.0.0.1:{self.server.ports['http']}",
                                     ("admin", PASSWORD), default_namespace=names.NAMESPACE)


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    root = fresh_dir()
    settings = Settings(state_dir=root / "state", storage_roots=(root,), libvirt_uri=QEMU_URI)
    users = UsersFile(settings.users_file)
    users.add("admin", Role.ADMINISTRATOR, PASSWORD)
    users.add("alice", Role.ADMINISTRATOR, PASSWORD, scope="t1")
    service = Service(settings)
    server = WbemServer(service.registry, http_port=0, workers=4,
                        auth=authenticator_from_settings(settings),
                        audit=audit_from_settings(settings), wsman_http_port=free_port())
    server.start()
    guids: list[str] = []
    try:
        for tag, scope in (("a", "t1"), ("c", "")):
            vs = VirtualSystem(guid=new_guid(), name=f"wsrender-{tag}-{root.name}",
                               memory_mb=64, controllers=default_controllers(),
                               scope_of_residence=scope)
            guids.append(vs.guid)
            service.host.define(vs)
        yield Live(server, service, root, guids[0], guids[1])
    finally:
        server.stop()
        for guid in guids:
            with contextlib.suppress(Exception):
                _domain(guid).destroy()
            with contextlib.suppress(Exception):
                service.host.undefine(guid)
        service.close()
        shutil.rmtree(root, ignore_errors=True)


def _domain(guid: str) -> libvirt.virDomain:
    return libvirt.open(QEMU_URI).lookupByUUIDString(guid)


def settles(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Does ``check()`` come true within ``timeout`` seconds? (A change made through another
    libvirt connection shows once its lifecycle event reached the server: milliseconds when
    the machine is idle; the bound allows for a loaded one.)"""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def systems(w: WSMan) -> dict[str, dict[str, str]]:
    """Optimized Enumerate of every Msvm_ComputerSystem in one response: Name -> values."""
    enum = ET.Element(f"{{{NAMESPACES['wsen']}}}Enumerate")
    ET.SubElement(enum, f"{{{NAMESPACES['wsman']}}}OptimizeEnumeration")
    ET.SubElement(enum, f"{{{NAMESPACES['wsman']}}}MaxElements").text = "32000"
    resp = w.enumerate(CS, resource=enum).find("n:EnumerateResponse", NS)
    assert resp is not None and resp.find("w:EndOfSequence", NS) is not None
    items = resp.find("w:Items", NS)
    assert items is not None
    return {el.findtext(f"{{{CS}}}Name") or "": {c.tag.split("}")[1]: c.text or "" for c in el}
            for el in items}


@pytest.mark.qemu
def test_an_enumeration_shows_every_change_at_once(live: Live) -> None:
    admin, alice = live.client("admin"), live.client("alice")
    first = systems(admin)
    assert first[live.a]["EnabledState"] == "3" and live.c in first
    hits = encode.RENDERED.hits
    again = systems(admin)
    assert again == first
    assert encode.RENDERED.hits - hits >= 2  # both VMs' text came from the table
    # a scoped user after the table is warm: still its scope's VM only
    mine = systems(alice)
    assert live.a in mine and live.c not in mine
    conn = live.cimxml()

    def cim_states() -> dict[str, int]:
        return {str(i["Name"]): int(i["EnabledState"])
                for i in conn.EnumerateInstances(names.COMPUTER_SYSTEM)}
    assert cim_states()[live.a] == 3
    hits = cimxml_encode.RENDERED.hits
    assert cim_states()[live.a] == 3
    assert cimxml_encode.RENDERED.hits - hits >= 2  # over CIM-XML too
    # started behind the server's back: the enumerations say so once its event arrived, for
    # both users and both protocols
    dom = _domain(live.a)
    dom.create()
    try:
        assert settles(lambda: systems(admin)[live.a]["EnabledState"] == "2")
        mine = systems(alice)
        assert mine[live.a]["EnabledState"] == "2" and live.c not in mine
        assert cim_states()[live.a] == 2
    finally:
        dom.destroy()
    assert settles(lambda: systems(admin)[live.a]["EnabledState"] == "3")
    assert cim_states()[live.a] == 3
    # renamed through the management service: the new name at once
    vm = pywbem.CIMInstanceName(names.COMPUTER_SYSTEM, {
        "CreationClassName": names.COMPUTER_SYSTEM, "Name": live.c})
    vssd = pywbem.CIMInstance(names.VSSD, properties={
        "InstanceID": f"Microsoft:{live.c}", "ElementName": f"renamed-{live.root.name}"})
    wbemflow.completed(conn, *wbemflow.invoke(conn, names.VSMS, "ModifyVirtualSystem",
                                              ComputerSystem=vm,
                                              SystemSettingData=vssd.tocimxmlstr()))
    after = systems(admin)
    assert after[live.c]["ElementName"] == f"renamed-{live.root.name}"
    assert {str(i["ElementName"]) for i in conn.EnumerateInstances(names.COMPUTER_SYSTEM)
            if i["Name"] == live.c} == {f"renamed-{live.root.name}"}
    assert after[live.a] == {**first[live.a], "TimeOfLastStateChange":
                             after[live.a]["TimeOfLastStateChange"]}


@pytest.mark.qemu
def test_an_unchanged_enumeration_is_the_same_answer_and_a_change_is_not(live: Live) -> None:
    """While nothing Msvm_ComputerSystem is made from changed, the registry gives the very
    same answer (the host's inventory, the provider's and the registry's tuples) and WS-Man
    its kept text (vsms.wsman.ops.BATCHES); a transition, a run (its OnTimeInMilliseconds
    moves with the clock) and a saved state removed behind the server's back (libvirt sends
    no event for it) are each shown at the first enumeration after them."""
    registry, admin = live.service.registry, live.client("admin")

    def answer() -> object:
        return registry.enumerate_instances(names.NAMESPACE, names.COMPUTER_SYSTEM)
    # other test processes' domains churn on this host: their events void nothing of ours
    assert settles(lambda: answer() is answer())
    assert settles(lambda: live.service.host.inventory() is live.service.host.inventory())
    first = systems(admin)
    hits = ops.BATCHES.hits
    assert systems(admin) == first
    assert ops.BATCHES.hits > hits  # the whole batch's text came from the table
    # a transition (an export under way, say) begins and ends: shown at once
    busy = live.service.context.transitions.begin(live.c.upper(), Transition(
        None, RequestedState.NOT_APPLICABLE, OperationalStatus.EXPORTING, "exporting"))
    try:
        assert systems(admin)[live.c]["OperationalStatus"] == str(int(OperationalStatus.EXPORTING))
    finally:
        busy.release()
    assert systems(admin)[live.c] == first[live.c]
    dom = _domain(live.c)
    dom.create()  # behind the server's back
    try:
        assert settles(lambda: systems(admin)[live.c]["EnabledState"] == "2")
        on = int(systems(admin)[live.c]["OnTimeInMilliseconds"])
        time.sleep(0.05)
        assert int(systems(admin)[live.c]["OnTimeInMilliseconds"]) >= on + 50
        assert answer() is not answer()  # a running VM's answer is never given again
        dom.managedSave()
        assert settles(lambda: systems(admin)[live.c]["EnabledState"] == "32769")
        assert systems(admin)[live.c]["EnabledState"] == "32769"
        dom.managedSaveRemove(0)  # no event: the very next enumeration must see it
        assert systems(admin)[live.c]["EnabledState"] == "3"
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            dom.destroy()
        with contextlib.suppress(libvirt.libvirtError):
            dom.managedSaveRemove(0)
    assert settles(lambda: systems(admin)[live.c]["EnabledState"] == "3")


# ------------------------------------------------- states kept by libvirt's lifecycle events
def _get_state(w: WSMan, guid: str) -> str:
    selectors = SelectorSet()
    selectors.add_option("CreationClassName", names.COMPUTER_SYSTEM)
    selectors.add_option("Name", guid)
    got = w.get(CS, selector_set=selectors)
    return got.findtext(f".//{{{CS}}}EnabledState") or ""


@pytest.mark.qemu
def test_states_come_from_events_and_from_a_listing_when_events_fail(
        live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    host, admin, conn = live.service.host, live.client("admin"), live.cimxml()
    vm = pywbem.CIMInstanceName(names.COMPUTER_SYSTEM, {
        "CreationClassName": names.COMPUTER_SYSTEM, "Name": live.a}, namespace=names.NAMESPACE)
    assert host.events_healthy()
    assert systems(admin)[live.a]["EnabledState"] == "3"  # the table is filled
    # while events are delivered, no enumeration or Get lists the domains (injected: a
    # listing through the server's connection fails the test)
    libvirt_conn = host._conn.get()

    def listed(*_args: object) -> None:
        raise AssertionError("an enumeration listed every domain")
    monkeypatch.setattr(libvirt_conn, "getAllDomainStats", listed, raising=False)
    monkeypatch.setattr(libvirt_conn, "listAllDomains", listed, raising=False)
    dom = _domain(live.a)
    try:
        dom.create()  # behind the server's back: shown once its event arrived
        assert settles(lambda: systems(admin)[live.a]["EnabledState"] == "2")
        assert _get_state(admin, live.a) == "2"
        assert int(conn.GetInstance(vm)["EnabledState"]) == 2
        # a change vsms makes shows as soon as its job ended, before any event
        wbemflow.completed(conn, *wbemflow.invoke(conn, vm, "RequestStateChange",
                                                  RequestedState=pywbem.Uint16(3)))
        assert systems(admin)[live.a]["EnabledState"] == "3"
        assert int(conn.GetInstance(vm)["EnabledState"]) == 3
        monkeypatch.undo()
        # events lost and reported as not registered: every enumeration lists again, and
        # a change made elsewhere shows at the next one
        monkeypatch.setattr(host._conn, "_on_lifecycle", lambda _guid: None)
        monkeypatch.setattr(host._conn, "events_ok", False)
        assert not host.events_healthy()
        dom.create()
        assert systems(admin)[live.a]["EnabledState"] == "2"
        assert _get_state(admin, live.a) == "2"
        dom.destroy()
        assert int(conn.GetInstance(vm)["EnabledState"]) == 3
        assert systems(admin)[live.a]["EnabledState"] == "3"
        # events lost unnoticed, then the connection dropped (what keep-alive or the close
        # callback reports): the new connection voids the table, the next read lists again
        monkeypatch.setattr(host._conn, "events_ok", True)
        dom.create()
        host._conn._dead_generation = host._conn._generation
        assert systems(admin)[live.a]["EnabledState"] == "2"
        monkeypatch.undo()
        assert host.events_healthy()
        dom.destroy()
        assert settles(lambda: systems(admin)[live.a]["EnabledState"] == "3")
        assert settles(lambda: int(conn.GetInstance(vm)["EnabledState"]) == 3)
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            dom.destroy()


@pytest.mark.qemu
def test_a_transient_domain_appears_and_vanishes_with_its_events(live: Live) -> None:
    """A domain of this instance created transiently through another connection (``virsh
    create``: libvirt sends STARTED, never DEFINED) is listed once its event arrived, while
    states come from events, and is gone once it stopped (a transient domain vanishes)."""
    host, admin = live.service.host, live.client("admin")
    assert host.events_healthy()
    other = libvirt.open(QEMU_URI)
    xml = other.lookupByUUIDString(live.c).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    guid = new_guid()
    root = ET.fromstring(xml)
    uuid_el = root.find("uuid")
    name_el = root.find("name")
    assert uuid_el is not None and name_el is not None
    uuid_el.text = guid
    name_el.text = f"transient-{live.root.name}"
    text = ET.tostring(root, encoding="unicode").replace(live.c, guid)
    assert systems(admin).get(guid) is None
    dom = other.createXML(text, 0)
    try:
        assert settles(lambda: systems(admin).get(guid, {}).get("EnabledState") == "2")
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            dom.destroy()
    assert settles(lambda: guid not in systems(admin))
