"""Malformed and hostile requests over raw HTTP: each gets the standard answer, and the server
keeps serving."""

from __future__ import annotations

import http.client
import re
import socket
import time
from collections.abc import Iterator

import pytest
import pywbem

from tests.wbem.model import NS
from vsms.providers.registry import Registry
from vsms.wbem.server import WbemServer

HEAD = '<?xml version="1.0" encoding="utf-8" ?>'
NSPATH = '<LOCALNAMESPACEPATH><NAMESPACE NAME="root"/><NAMESPACE NAME="test"/></LOCALNAMESPACEPATH>'


def imethod(name: str, params: str = "", nspath: str = NSPATH) -> bytes:
    return (f'{HEAD}<CIM CIMVERSION="2.0" DTDVERSION="2.0"><MESSAGE ID="77" '
            f'PROTOCOLVERSION="1.0"><SIMPLEREQ><IMETHODCALL NAME="{name}">{nspath}{params}'
            f"</IMETHODCALL></SIMPLEREQ></MESSAGE></CIM>").encode()


SVC = ('<INSTANCENAME CLASSNAME="TST_Service">'
       '<KEYBINDING NAME="SystemCreationClassName"><KEYVALUE>TST_System</KEYVALUE></KEYBINDING>'
       '<KEYBINDING NAME="SystemName"><KEYVALUE>host1</KEYVALUE></KEYBINDING>'
       '<KEYBINDING NAME="CreationClassName"><KEYVALUE>TST_Service</KEYVALUE></KEYBINDING>'
       '<KEYBINDING NAME="Name"><KEYVALUE>svc</KEYVALUE></KEYBINDING></INSTANCENAME>')
SVC_OBJECT = ('root/test:TST_Service.CreationClassName="TST_Service",Name="svc",'
              'SystemCreationClassName="TST_System",SystemName="host1"')


def method(name: str, params: str = "") -> bytes:
    return (f'{HEAD}<CIM CIMVERSION="2.0" DTDVERSION="2.0"><MESSAGE ID="78" '
            f'PROTOCOLVERSION="1.0"><SIMPLEREQ><METHODCALL NAME="{name}"><LOCALINSTANCEPATH>'
            f"{NSPATH}{SVC}</LOCALINSTANCEPATH>{params}</METHODCALL></SIMPLEREQ></MESSAGE>"
            f"</CIM>").encode()


class Raw:
    def __init__(self, port: int) -> None:
        self.port = port

    def post(self, body: bytes, op: str | None, obj: str | None = NS,
             headers: dict[str, str | None] | None = None, verb: str = "POST"
             ) -> tuple[int, dict[str, str], str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        hdrs: dict[str, str | None] = {"Content-Type": 'application/xml; charset="utf-8"',
                                       "CIMOperation": "MethodCall"}
        if op is not None:
            hdrs["CIMMethod"] = op
        if obj is not None:
            hdrs["CIMObject"] = obj
        hdrs.update(headers or {})
        sent = {k: v for k, v in hdrs.items() if v is not None}
        try:
            conn.request(verb, "/cimom", body=body, headers=sent)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, \
                resp.read().decode()
        finally:
            conn.close()


@pytest.fixture
def raw(server: WbemServer) -> Iterator[Raw]:
    yield Raw(server.ports["http"])


def cim_error(text: str) -> int | None:
    m = re.search(r'<ERROR CODE="(\d+)"', text)
    return int(m.group(1)) if m else None


def still_serving(raw: Raw) -> None:
    status, _, text = raw.post(imethod("EnumerateClassNames"), "EnumerateClassNames")
    assert status == 200 and "TST_ManagedElement" in text and cim_error(text) is None


@pytest.mark.parametrize("body, op, obj, headers, status, cimerror", [
    (b"<CIM><oops></CIM>", "GetClass", NS, {}, 400, "request-not-well-formed"),
    (b'<!DOCTYPE x [<!ENTITY a "b">]><CIM>&a;</CIM>', "GetClass", NS, {}, 400,
     "request-not-well-formed"),
    (b"<NOTCIM/>", "GetClass", NS, {}, 400, "request-not-valid"),
    (imethod("GetClass"), "GetClass", NS, {"CIMOperation": "MethodRequest"}, 400,
     "unsupported-operation"),
    (imethod("GetClass"), "GetClass", NS, {"CIMOperation": None}, 400, "unsupported-operation"),
    (imethod("GetClass"), "EnumerateClasses", NS, {}, 400, "header-mismatch"),
    (imethod("GetClass"), "GetClass", "root/other", {}, 400, "header-mismatch"),
    (imethod("GetClass"), None, NS, {}, 400, "header-mismatch"),
    (imethod("GetClass"), "GetClass", None, {}, 400, "header-mismatch"),
    (method("Version"), "Version", "root/test:TST_Other.Name=\"x\"", {}, 400, "header-mismatch"),
    (imethod("GetClass"), "GetClass", NS, {"CIMProtocolVersion": "2.0"}, 501,
     "unsupported-protocol-version"),
    (imethod("GetClass"), "GetClass", NS, {"CIMBatch": "1"}, 501,
     "multiple-requests-unsupported"),
    (imethod("GetClass"), "GetClass", NS, {"Content-Type": "text/plain"}, 400, None),
    (imethod("GetClass"), "GetClass", NS, {"Content-Type": "application/xml; charset=latin-1"},
     400, None),
])
def test_protocol_errors(raw: Raw, body: bytes, op: str | None, obj: str | None,
                         headers: dict[str, str | None], status: int,
                         cimerror: str | None) -> None:
    got, hdrs, text = raw.post(body, op, obj, headers)
    assert got == status, text
    assert hdrs.get("cimerror") == cimerror
    assert text.strip()  # the reason, in the body and in PGErrorDetail
    assert "pgerrordetail" in hdrs
    still_serving(raw)


def test_http_method_and_framing_errors(raw: Raw, server: WbemServer) -> None:
    status, hdrs, _ = raw.post(b"", None, None, verb="GET")
    assert status == 405 and "POST" in hdrs["allow"]
    # no Content-Length
    with socket.create_connection(("127.0.0.1", server.ports["http"]), timeout=10) as s:
        s.sendall(b"POST /cimom HTTP/1.1\r\nHost: x\r\nCIMOperation: MethodCall\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 411 ")
    with socket.create_connection(("127.0.0.1", server.ports["http"]), timeout=10) as s:
        s.sendall(b"BLAH\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 400 ")
    still_serving(raw)


@pytest.mark.parametrize("body, op, code", [
    (imethod("FrobnicateInstances"), "FrobnicateInstances", pywbem.CIM_ERR_NOT_SUPPORTED),
    (imethod("CreateInstance"), "CreateInstance", pywbem.CIM_ERR_NOT_SUPPORTED),
    (imethod("GetClass", '<IPARAMVALUE NAME="ClassName"><CLASSNAME NAME="TST_Nope"/>'
                         "</IPARAMVALUE>"), "GetClass", pywbem.CIM_ERR_NOT_FOUND),
    (imethod("EnumerateInstances", '<IPARAMVALUE NAME="ClassName"><CLASSNAME NAME="TST_Nope"/>'
                                   "</IPARAMVALUE>"), "EnumerateInstances",
     pywbem.CIM_ERR_INVALID_CLASS),
    (imethod("GetInstance"), "GetInstance", pywbem.CIM_ERR_INVALID_PARAMETER),  # missing param
    (imethod("GetClass", '<IPARAMVALUE NAME="ClassName"><VALUE>TST_System</VALUE>'
                         "</IPARAMVALUE>"), "GetClass", pywbem.CIM_ERR_INVALID_PARAMETER),
    (imethod("GetClass", '<IPARAMVALUE NAME="ClassName"><CLASSNAME NAME="TST_System"/>'
                         '</IPARAMVALUE><IPARAMVALUE NAME="LocalOnly"><VALUE>perhaps</VALUE>'
                         "</IPARAMVALUE>"), "GetClass", pywbem.CIM_ERR_INVALID_PARAMETER),
    (imethod("GetClass", '<IPARAMVALUE NAME="Bogus"><VALUE>1</VALUE></IPARAMVALUE>'),
     "GetClass", pywbem.CIM_ERR_INVALID_PARAMETER),
    (method("NoSuchMethod"), "NoSuchMethod", pywbem.CIM_ERR_METHOD_NOT_FOUND),
    (method("DestroySystem"), "DestroySystem", pywbem.CIM_ERR_INVALID_PARAMETER),  # Required
    (method("Echo", '<PARAMVALUE NAME="U8"><VALUE>many</VALUE></PARAMVALUE>'), "Echo",
     pywbem.CIM_ERR_INVALID_PARAMETER),
])
def test_cim_errors(raw: Raw, body: bytes, op: str, code: int) -> None:
    obj = SVC_OBJECT if b"<METHODCALL" in body else NS
    status, hdrs, text = raw.post(body, op, obj)
    assert status == 200 and hdrs["cimoperation"] == "MethodResponse"
    assert cim_error(text) == code, text
    assert f'NAME="{op}"' in text  # the response names the operation as the request did
    still_serving(raw)


def test_wrong_namespace(raw: Raw) -> None:
    nspath = '<LOCALNAMESPACEPATH><NAMESPACE NAME="root"/><NAMESPACE NAME="nope"/>' \
             "</LOCALNAMESPACEPATH>"
    status, _, text = raw.post(imethod("EnumerateClassNames", nspath=nspath),
                               "EnumerateClassNames", "root/nope")
    assert status == 200 and cim_error(text) == pywbem.CIM_ERR_INVALID_NAMESPACE


def test_sblim_style_headers_and_mpost(raw: Raw) -> None:
    status, _, text = raw.post(method("Version"), "Version",
                               SVC_OBJECT.replace("/", "%2F").replace(":", "%3A", 1),
                               {"CIMProtocolVersion": "1.0"})
    assert status == 200 and 'PARAMVALUE NAME="Text" PARAMTYPE="string"><VALUE>1.2.3' in text
    assert "/>" not in text.split("?>", 1)[1]
    man = {"Man": "http://www.dmtf.org/cim/mapping/http/v1.0 ; ns=73", "CIMOperation": None,
           "73-CIMOperation": "MethodCall", "73-CIMMethod": "EnumerateClassNames",
           "73-CIMObject": NS}
    status, hdrs, text = raw.post(imethod("EnumerateClassNames"), None, None, man, verb="M-POST")
    assert status == 200 and hdrs["73-cimoperation"] == "MethodResponse" and "ext" in hdrs
    status, _, _ = raw.post(imethod("EnumerateClassNames"), "EnumerateClassNames", NS,
                            verb="M-POST")
    assert status == 510


def test_oversized_body(model: tuple[Registry, object]) -> None:
    srv = WbemServer(model[0], http_port=0, max_body=4096)
    srv.start()
    try:
        raw = Raw(srv.ports["http"])
        status, _, text = raw.post(b"<CIM>" + b" " * 10000 + b"</CIM>", "GetClass", NS)
        assert status == 413 and "limit of 4096" in text
        still_serving(raw)
    finally:
        srv.stop()


def test_slow_headers_and_body_time_out(model: tuple[Registry, object]) -> None:
    srv = WbemServer(model[0], http_port=0, header_timeout=0.5, body_timeout=0.5)
    srv.start()
    try:
        port = srv.ports["http"]
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"POST /cimom HTTP/1.1\r\nHost: x\r\n")
            t = time.monotonic()
            assert s.recv(4096).startswith(b"HTTP/1.1 408 ")
            assert time.monotonic() - t < 5
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"POST /cimom HTTP/1.1\r\nContent-Length: 100\r\n\r\n<CIM>")
            assert s.recv(4096).startswith(b"HTTP/1.1 408 ")
        still_serving(Raw(port))
    finally:
        srv.stop()
