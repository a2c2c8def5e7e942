"""CreateSwitch, the switch's Get, CreateSwitchPort and DeleteSwitch over WS-Management (pypsrp
against the module's served service): the switch service is reachable like every other
class."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET

import pytest
from pypsrp.wsman import SelectorSet, WSMan

from tests.switches.conftest import Net, virsh
from tests.wsman.conftest import NS, WMI
from vsms.mapping import switch_paths as sp

pytestmark = pytest.mark.qemu
URI = WMI + sp.SERVICE
S = "{http://www.w3.org/2003/05/soap-envelope}"


def _invoke(client: WSMan, sel: SelectorSet, method: str, params: list[tuple[str, object]]
            ) -> ET.Element:
    body = ET.Element(f"{{{URI}}}{method}_INPUT")
    for name, value in params:
        el = ET.SubElement(body, f"{{{URI}}}{name}")
        if isinstance(value, ET.Element):
            el.extend(list(value))
        else:
            el.text = str(value)
    resp = client.invoke(f"{URI}/{method}", URI, body, selector_set=sel)
    out = resp.find(f"{S}Body/{{{URI}}}{method}_OUTPUT")
    assert out is not None, ET.tostring(resp)
    return out


def test_create_and_delete_switch_over_wsman(net: Net) -> None:
    port = net.served.server.ports["wsman-http"]
    client = WSMan("127.0.0.1", port=port, ssl=False, auth="basic", encryption="never",
                   username="any", password="any", operation_timeout=20, read_timeout=60)
    svc = net.conn.EnumerateInstanceNames(sp.SERVICE)[0]
    sel = SelectorSet()
    for k, v in svc.keybindings.items():
        sel.add_option(k, str(v))
    name = str(uuid.uuid4()).upper()
    net.switches.append(name)
    out = _invoke(client, sel, "CreateSwitch", [("Name", name), ("FriendlyName", "over wsman"),
                                                ("NumLearnableAddresses", 16)])
    assert out.findtext(f"{{{URI}}}ReturnValue") == "0"
    created = out.find(f"{{{URI}}}CreatedVirtualSwitch")
    assert created is not None
    selectors = {s.get("Name"): s.text for s in created.iterfind(
        "a:ReferenceParameters/w:SelectorSet/w:Selector", NS)}
    assert selectors["Name"] == name
    get = SelectorSet()
    for k, v in selectors.items():
        get.add_option(k or "", v or "")
    inst = client.get(WMI + sp.SWITCH, selector_set=get)[0]
    assert inst.findtext(f"{{{WMI + sp.SWITCH}}}ElementName") == "over wsman"
    assert name in virsh("net-list", "--name").split()
    holder = ET.Element("epr")
    holder.extend(list(created))
    # CreateSwitchPort (what a client calls once per VM adapter) answers 0 and the port
    out = _invoke(client, sel, "CreateSwitchPort", [("VirtualSwitch", holder),
                                                    ("Name", f"ws-{name}"),
                                                    ("FriendlyName", "ws port")])
    assert out.findtext(f"{{{URI}}}ReturnValue") == "0"
    made = out.find(f"{{{URI}}}CreatedSwitchPort")
    assert made is not None
    port_keys = {s.get("Name"): s.text for s in made.iterfind(
        "a:ReferenceParameters/w:SelectorSet/w:Selector", NS)}
    assert (port_keys["Name"], port_keys["SystemName"]) == (f"ws-{name}", name)
    sw = net.served.service.host.networks.get(name)
    assert sw is not None and f"ws-{name}" in {p.name for p in sw.ports}
    out = _invoke(client, sel, "DeleteSwitch", [("VirtualSwitch", holder)])
    assert out.findtext(f"{{{URI}}}ReturnValue") == "0"
    assert name not in virsh("net-list", "--all", "--name").split()
