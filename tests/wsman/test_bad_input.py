"""Bad WS-Management input against a real ``vsms serve`` (qemu:///system): a SOAP fault or a
4xx, never a traceback, never a hang; the server keeps serving afterwards."""

from __future__ import annotations

import socket
import time
import xml.etree.ElementTree as ET

import pytest
import requests

from tests.wsman.conftest import NS, WMI, WsServer, text

pytestmark = pytest.mark.qemu
CS = WMI + "Msvm_ComputerSystem"
ANON = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"


def envelope(*, action: str | None = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get",
             message_id: str | None = "uuid:11111111-2222-3333-4444-555555555555",
             uri: str | None = CS, max_size: int | None = 153600, body: str = "",
             selectors: str = "") -> str:
    head = []
    if action is not None:
        head.append(f'<wsa:Action s:mustUnderstand="true">{action}</wsa:Action>')
    if max_size is not None:
        head.append(f'<wsman:MaxEnvelopeSize s:mustUnderstand="true">{max_size}'
                    f"</wsman:MaxEnvelopeSize>")
    if message_id is not None:
        head.append(f"<wsa:MessageID>{message_id}</wsa:MessageID>")
    head.append(f"<wsa:ReplyTo><wsa:Address>{ANON}</wsa:Address></wsa:ReplyTo>")
    if uri is not None:
        head.append(f'<wsman:ResourceURI s:mustUnderstand="true">{uri}</wsman:ResourceURI>')
    if selectors:
        head.append(f"<wsman:SelectorSet>{selectors}</wsman:SelectorSet>")
    return ('<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
            'xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
            'xmlns:wsman="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" '
            'xmlns:wsen="http://schemas.xmlsoap.org/ws/2004/09/enumeration">'
            f"<s:Header>{''.join(head)}</s:Header><s:Body>{body}</s:Body></s:Envelope>")


def post(ws: WsServer, body: str | bytes, *, ctype: str = "application/soap+xml;charset=UTF-8",
         path: str = "/wsman") -> requests.Response:
    return requests.post(f"http://127.0.0.1:{ws.port}{path}", data=body,
                         headers={"Content-Type": ctype},
                         auth=(ws.served.user, ws.served.password), timeout=60)


def subcode(r: requests.Response) -> str:
    assert r.status_code == 500, (r.status_code, r.text)
    assert "Traceback" not in r.text
    root = ET.fromstring(r.content)
    return text(root.find("s:Body/s:Fault/s:Code/s:Subcode/s:Value", NS))


def wsman_code(r: requests.Response) -> int:
    root = ET.fromstring(r.content)
    fault = root.find("s:Body/s:Fault/s:Detail/f:WSManFault", NS)
    assert fault is not None
    return int(fault.get("Code", "0"))


def still_serving(ws: WsServer) -> None:
    r = post(ws, envelope(action="http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate",
                          body="<wsen:Enumerate/>"))
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(("body", "want"), [
    ("not xml at all", "w:SchemaValidationError"),
    ("<a><b></a>", "w:SchemaValidationError"),
    ('<?xml version="1.0"?><!DOCTYPE s [<!ENTITY x "boom">]><s>&x;</s>',
     "w:SchemaValidationError"),
    ('<?xml version="1.0"?><!DOCTYPE s [<!ENTITY x SYSTEM "file:///etc/passwd">]><s>&x;</s>',
     "w:SchemaValidationError"),
    ('<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body/></s:Envelope>',
     "w:SchemaValidationError"),
    (envelope(action=None), "a:MessageInformationHeaderRequired"),
    (envelope(message_id=None), "a:MessageInformationHeaderRequired"),
    (envelope(uri=None), "a:DestinationUnreachable"),
    (envelope(action="http://example.org/NoSuchAction"), "a:ActionNotSupported"),
    (envelope(selectors='<wsman:Selector Name="Bogus">1</wsman:Selector>'),
     "w:InvalidSelectors"),
    (envelope(action="http://schemas.xmlsoap.org/ws/2004/09/enumeration/Pull",
              body="<wsen:Pull><wsen:EnumerationContext>uuid:nope</wsen:EnumerationContext>"
                   "</wsen:Pull>"), "n:InvalidEnumerationContext"),
    (envelope(action="http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate",
              body='<wsen:Enumerate><wsman:Filter Dialect="urn:nope">x</wsman:Filter>'
                   "</wsen:Enumerate>"), "w:CannotProcessFilter"),
])
def test_malformed_requests_are_faults(ws: WsServer, body: str, want: str) -> None:
    assert subcode(post(ws, body)) == want
    still_serving(ws)


def test_max_envelope_size_too_small(ws: WsServer) -> None:
    r = post(ws, envelope(action="http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate",
                          max_size=600, body="<wsen:Enumerate><wsman:OptimizeEnumeration/>"
                                             "<wsman:MaxElements>100</wsman:MaxElements>"
                                             "</wsen:Enumerate>"))
    assert subcode(r) == "w:EncodingLimit"


def test_utf16_body_is_accepted(ws: WsServer) -> None:
    body = envelope(action="http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate",
                    body="<wsen:Enumerate/>")
    r = post(ws, '<?xml version="1.0" encoding="UTF-16"?>'.encode("utf-16") +
             body.encode("utf-16")[2:], ctype="application/soap+xml;charset=UTF-16")
    assert r.status_code == 200, r.text
    assert ET.fromstring(r.content).find("s:Body/n:EnumerateResponse/n:EnumerationContext",
                                         NS) is not None


def test_http_level_refusals(ws: WsServer) -> None:
    assert post(ws, envelope(), path="/nope").status_code == 404
    assert post(ws, envelope(), ctype="text/plain").status_code == 415
    r = requests.post(f"http://127.0.0.1:{ws.port}/wsman", data=envelope(), timeout=60,
                      headers={"Content-Type": "application/soap+xml;charset=UTF-8"})
    assert r.status_code == 401 and "Basic" in r.headers.get("WWW-Authenticate", "")
    # a 16 MiB body: refused before it is read
    with socket.create_connection(("127.0.0.1", ws.port), timeout=30) as s:
        import base64
        cred = base64.b64encode(f"{ws.served.user}:{ws.served.password}".encode()).decode()
        s.sendall(f"POST /wsman HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {cred}\r\n"
                  f"Content-Type: application/soap+xml;charset=UTF-8\r\n"
                  f"Content-Length: {16 * 1024 * 1024 + 1}\r\n\r\n".encode())
        started = time.monotonic()
        reply = s.recv(4096)
        assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
        assert time.monotonic() - started < 10
    still_serving(ws)


def test_operation_timeout_passed_is_timed_out(ws: WsServer) -> None:
    body = envelope(action="http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate",
                    body="<wsen:Enumerate><wsman:OptimizeEnumeration/></wsen:Enumerate>")
    body = body.replace("</s:Header>",
                        "<wsman:OperationTimeout>PT0.000001S</wsman:OperationTimeout></s:Header>")
    r = post(ws, body)
    assert subcode(r) == "w:TimedOut" and wsman_code(r) == 2150858793


def test_a_reply_larger_than_max_envelope_size(ws: WsServer) -> None:
    import pywbem

    from tests.wsman.test_operations import invoke
    from vsms.cim import names
    for i in range(2):
        gsd = pywbem.CIMInstance(names.VSGSD,
                                 properties={"ElementName": f"big{i}-{ws.served.root.name}"})
        invoke(ws, "DefineVirtualSystem", [("SystemSettingData", gsd.tocimxmlstr())])
    body = ("<wsen:Enumerate><wsman:OptimizeEnumeration/><wsman:MaxElements>1000"
            "</wsman:MaxElements><wsman:EnumerationMode>EnumerateObjectAndEPR"
            "</wsman:EnumerationMode><wsman:Filter "
            'Dialect="http://schemas.microsoft.com/wbem/wsman/1/WQL">'
            "SELECT * FROM CIM_ResourceAllocationSettingData</wsman:Filter></wsen:Enumerate>")
    action = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate"
    big = post(ws, envelope(action=action, uri=WMI + "*", max_size=10_000_000, body=body))
    assert big.status_code == 200 and len(big.content) > 8192, big.text[:500]
    r = post(ws, envelope(action=action, uri=WMI + "*", max_size=8192, body=body))
    assert subcode(r) == "w:EncodingLimit"
    assert "MaxEnvelopeSize 8192" in r.text and "MaxElements" in r.text


def test_probing_the_v2_namespace_gets_the_wmi_invalid_namespace_code(ws: WsServer) -> None:
    """What inventory tools test: MSFT_WmiError/error_Code 2150858778, and no data."""
    v2 = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/"
    for uri, body in ((v2 + "*", '<wsen:Enumerate><wsman:Filter Dialect="http://schemas.'
                                 'microsoft.com/wbem/wsman/1/WQL">SELECT * FROM '
                                 "Msvm_ComputerSystem</wsman:Filter></wsen:Enumerate>"),
                      (v2 + "Msvm_ComputerSystem", "<wsen:Enumerate/>")):
        r = post(ws, envelope(action="http://schemas.xmlsoap.org/ws/2004/09/enumeration/"
                                     "Enumerate", uri=uri, body=body))
        assert subcode(r) == "a:DestinationUnreachable"
        assert wsman_code(r) == 2150858778
        root = ET.fromstring(r.content)
        code = root.find("s:Body/s:Fault/s:Detail/{http://schemas.microsoft.com/wbem/wsman/1/"
                         "wmi/root/cimv2/MSFT_WmiError}MSFT_WmiError/{http://schemas.microsoft"
                         ".com/wbem/wsman/1/wmi/root/cimv2/MSFT_WmiError}error_Code", NS)
        assert text(code) == "2150858778"
        assert "Msvm_ComputerSystem\"" not in r.text and "EnumerationContext" not in r.text
