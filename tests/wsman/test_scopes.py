"""Per-VM scopes over WS-Management (a real Service on qemu:///system behind a WbemServer with
its WS-Man listener): a user with a role in one scope sees and manages that scope's VM only, as
over CIM-XML; another VM answers as one that does not exist."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import pywbem
from pypsrp.exceptions import WSManFaultError
from pypsrp.wsman import NAMESPACES, SelectorSet, WSMan

from tests.authserved import auth_served
from tests.e2e import wbemflow
from tests.wsman.conftest import NS, WMI
from vsms.auth.policy import Role
from vsms.cim import names
from vsms.model.vm import new_guid
from vsms.wbem.server import WbemServer

pytestmark = pytest.mark.qemu
PASSWORD = "scoped-pass-123"
CS = WMI + "Msvm_ComputerSystem"


@dataclass
class Live:
    server: WbemServer
    a: str
    c: str

    def client(self, user: str) -> WSMan:
        return WSMan("127.0.0.1", port=self.server.ports["wsman-http"], ssl=False,
                     auth="basic", encryption="never", username=user, password=PASSWORD)


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    users = [("admin", Role.ADMINISTRATOR, None), ("alice", Role.ADMINISTRATOR, "t1")]
    with auth_served(PASSWORD, users, wsman=True) as served:
        try:
            admin = served.connect("admin")
            guids = []
            for tag, scope in (("a", "t1"), ("c", "")):
                gsd = pywbem.CIMInstance(names.VSGSD, properties={
                    "ElementName": f"wscope-{tag}-{served.root.name}",
                    "ScopeOfResidence": scope})
                out = wbemflow.completed(admin, *wbemflow.invoke(
                    admin, names.VSMS, "DefineVirtualSystem", SystemSettingData=gsd))
                guids.append(str(out["DefinedSystem"].keybindings["Name"]))
            yield Live(served.server, guids[0], guids[1])
        finally:
            served.remove_vms()


def names_seen(w: WSMan) -> set[str]:
    enum = ET.Element(f"{{{NAMESPACES['wsen']}}}Enumerate")
    ET.SubElement(enum, f"{{{NAMESPACES['wsman']}}}OptimizeEnumeration")
    ET.SubElement(enum, f"{{{NAMESPACES['wsman']}}}MaxElements").text = "1000"
    items = w.enumerate(CS, resource=enum).find("n:EnumerateResponse/w:Items", NS)
    assert items is not None
    return {el.findtext(f"{{{CS}}}Name") or "" for el in items}


def get_fault(w: WSMan, guid: str) -> tuple[object, str]:
    sel = SelectorSet()
    sel.add_option("CreationClassName", "Msvm_ComputerSystem")
    sel.add_option("Name", guid)
    with pytest.raises(WSManFaultError) as err:
        w.get(CS, selector_set=sel)
    return err.value.code, str(err.value.reason).replace(guid, "GUID")


def test_a_scoped_user_sees_its_scope_only(live: Live) -> None:
    admin, alice = live.client("admin"), live.client("alice")
    assert {live.a, live.c} <= names_seen(admin)
    seen = names_seen(alice)
    assert live.a in seen and live.c not in seen
    sel = SelectorSet()
    sel.add_option("CreationClassName", "Msvm_ComputerSystem")
    sel.add_option("Name", live.a)
    assert alice.get(CS, selector_set=sel) is not None
    # the VM outside her scope answers as one that does not exist
    assert get_fault(alice, live.c) == get_fault(alice, new_guid())
