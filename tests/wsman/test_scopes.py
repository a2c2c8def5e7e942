"""Per-VM scopes over WS-Management (a real Service on qemu:///system behind a WbemServer with
its WS-Man listener): a user with a role in one scope sees and manages that scope's VM only, as
over CIM-XML; another VM answers as one that does not exist."""

from __future__ import annotations

import contextlib
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pywbem
from pypsrp.exceptions import WSManFaultError
from pypsrp.wsman import NAMESPACES, SelectorSet, WSMan

from tests.conftest import QEMU_URI, fresh_dir
from tests.e2e import wbemflow
from tests.wsman.conftest import NS, WMI, free_port
from vsms.app import Service
from vsms.auth.policy import Role
from vsms.auth.setup import audit_from_settings, authenticator_from_settings
from vsms.auth.users import UsersFile
from vsms.cim import names
from vsms.model.vm import new_guid
from vsms.settings import Settings
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
    try:
        admin = pywbem.WBEMConnection(f"http://127.0.0.1:{server.ports['http']}",
                                      ("admin", PASSWORD), default_namespace=names.NAMESPACE)
        guids = []
        for tag, scope in (("a", "t1"), ("c", "")):
            gsd = pywbem.CIMInstance(names.VSGSD, properties={
                "ElementName": f"wscope-{tag}-{root.name}", "ScopeOfResidence": scope})
            out = wbemflow.completed(admin, *wbemflow.invoke(
                admin, names.VSMS, "DefineVirtualSystem", SystemSettingData=gsd))
            guids.append(str(out["DefinedSystem"].keybindings["Name"]))
        yield Live(server, guids[0], guids[1])
    finally:
        server.stop()
        _cleanup(service, root)


def _cleanup(service: Service, root: Path) -> None:
    for vs in service.host.list_systems():
        if root.name in vs.name:
            with contextlib.suppress(Exception):
                service.host.undefine(vs.guid)
    service.close()
    shutil.rmtree(root, ignore_errors=True)


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
