"""The MS-WSMV §4.1 examples (Get §4.1.1, Enumerate and Pull §4.1.2, Invoke §4.1.4), adapted to
our classes and sent byte for byte as the specification lays them out (line breaks and
indentation inside the header values included); the replies checked element by element."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
import pywbem
import requests

from tests.wsman.conftest import NS, WsServer, text
from tests.wsman.test_operations import cimxml
from vsms.cim import names

pytestmark = pytest.mark.qemu
ANON = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
VSMS = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/" \
       "Msvm_VirtualSystemManagementService"

HEAD = """<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"
xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing"
xmlns:wsen="http://schemas.xmlsoap.org/ws/2004/09/enumeration"
xmlns:wsman="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd">
<s:Header>
<wsa:To>http://server:80/wsman</wsa:To>
<wsman:ResourceURI s:mustUnderstand="true">
{uri}
</wsman:ResourceURI>
<wsa:ReplyTo>
<wsa:Address s:mustUnderstand="true">
http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous
</wsa:Address>
</wsa:ReplyTo>
<wsa:Action s:mustUnderstand="true">
{action}
</wsa:Action>
<wsman:MaxEnvelopeSize s:mustUnderstand="true">
51200
</wsman:MaxEnvelopeSize>
<wsa:MessageID>
{mid}
</wsa:MessageID>
{selectors}<wsman:OperationTimeout>PT60.000S</wsman:OperationTimeout>
</s:Header>
<s:Body>
{body}
</s:Body>
</s:Envelope>
"""


def send(ws: WsServer, *, uri: str, action: str, mid: str, body: str = "",
         selectors: str = "") -> ET.Element:
    data = HEAD.format(uri=uri, action=action, mid=mid, body=body, selectors=selectors)
    r = requests.post(f"http://127.0.0.1:{ws.port}/wsman", data=data.encode(),
                      headers={"Content-Type": "application/soap+xml;charset=UTF-8"},
                      auth=(ws.served.user, ws.served.password), timeout=60)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].lower().startswith("application/soap+xml")
    root = ET.fromstring(r.content)
    header = root.find("s:Header", NS)
    assert header is not None
    assert text(header.find("a:To", NS)) == ANON
    assert text(header.find("a:Action", NS)) == action + "Response"
    assert text(header.find("a:RelatesTo", NS)) == mid
    assert text(header.find("a:MessageID", NS)).startswith("uuid:")
    body_el = root.find("s:Body", NS)
    assert body_el is not None and len(body_el) == 1
    return body_el[0]


def service_selectors(ws: WsServer) -> tuple[pywbem.CIMInstanceName, str]:
    path = cimxml(ws).EnumerateInstanceNames("Msvm_VirtualSystemManagementService")[0]
    sels = "".join(f'<wsman:Selector Name="{k}">{v}</wsman:Selector>\n'
                   for k, v in path.keybindings.items())
    return path, f"<wsman:SelectorSet>\n{sels}</wsman:SelectorSet>\n"


def test_4_1_1_get(ws: WsServer) -> None:
    path, sels = service_selectors(ws)
    inst = send(ws, uri=VSMS, action="http://schemas.xmlsoap.org/ws/2004/09/transfer/Get",
                mid="uuid:5E6FD101-710A-4EEA-A50D-70C0BF863AA3", selectors=sels)
    assert inst.tag == f"{{{VSMS}}}Msvm_VirtualSystemManagementService"
    assert inst.get(f"{{{NS['xsi']}}}type") == "p:Msvm_VirtualSystemManagementService_Type"
    want = cimxml(ws).GetInstance(path)
    got = {c.tag.split("}")[1]: c for c in inst}
    for name, p in want.properties.items():
        el = got[name]
        if p.value is None:
            assert el.get(f"{{{NS['xsi']}}}nil") == "true", name
        elif isinstance(p.value, bool):
            assert el.text == str(p.value).lower(), name
        elif isinstance(p.value, (str, int)) and not isinstance(p.value, list):
            assert el.text == str(p.value), name


def test_4_1_2_enumerate_and_pull(ws: WsServer) -> None:
    uri = VSMS.rsplit("/", 1)[0] + "/Msvm_ComputerSystem"
    resp = send(ws, uri=uri, action="http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate",
                mid="uuid:C61CA1DC-51C0-4353-AE46-3E42ED0DA794", body="<wsen:Enumerate/>")
    assert resp.tag == f"{{{NS['n']}}}EnumerateResponse"
    ctx = text(resp.find("n:EnumerationContext", NS))
    want = len(cimxml(ws).EnumerateInstanceNames("Msvm_ComputerSystem"))
    seen = 0
    for i in range(want):
        pull = send(ws, uri=uri, action="http://schemas.xmlsoap.org/ws/2004/09/enumeration/Pull",
                    mid=f"uuid:1B3F5AC6-44FB-41CF-87FE-30{i:010d}",
                    body=f"<wsen:Pull>\n<wsen:EnumerationContext>{ctx}</wsen:EnumerationContext>"
                         f"\n<wsen:MaxElements>1</wsen:MaxElements>\n</wsen:Pull>")
        assert pull.tag == f"{{{NS['n']}}}PullResponse"
        items = pull.find("n:Items", NS)
        assert items is not None and len(items) == 1
        assert items[0].tag == f"{{{uri}}}Msvm_ComputerSystem"
        seen += 1
        last = i == want - 1
        assert (pull.find("n:EndOfSequence", NS) is not None) == last
        assert (pull.find("n:EnumerationContext", NS) is None) == last
    assert seen == want


def test_4_1_4_invoke(ws: WsServer) -> None:
    _, sels = service_selectors(ws)
    name = f"example-{ws.served.root.name}"
    gsd = pywbem.CIMInstance(names.VSGSD, properties={"ElementName": name}).tocimxmlstr()
    body = (f'<p:DefineVirtualSystem_INPUT\nxmlns:p="{VSMS}"\n>\n'
            f"<p:SystemSettingData><![CDATA[{gsd}]]></p:SystemSettingData>\n"
            f"</p:DefineVirtualSystem_INPUT>")
    out = send(ws, uri=VSMS, action=VSMS + "/DefineVirtualSystem",
               mid="uuid:9A989269-283B-4624-BAC5-BC291F72E854", body=body, selectors=sels)
    assert out.tag == f"{{{VSMS}}}DefineVirtualSystem_OUTPUT"
    assert [c.tag.split("}")[1] for c in out][-1] == "ReturnValue"
    assert text(out.find(f"{{{VSMS}}}ReturnValue")) in ("0", "4096")
    defined = out.find(f"{{{VSMS}}}DefinedSystem")
    assert defined is not None
    assert text(defined.find("a:Address", NS)) == ANON
    sels_out = {s.get("Name"): s.text for s in defined.iterfind(
        "a:ReferenceParameters/w:SelectorSet/w:Selector", NS)}
    assert set(sels_out) == {"CreationClassName", "Name", "__cimnamespace"}
    vm = cimxml(ws).GetInstance(pywbem.CIMInstanceName(
        "Msvm_ComputerSystem", {"CreationClassName": "Msvm_ComputerSystem",
                                "Name": sels_out["Name"]}))
    assert vm["ElementName"] == name
