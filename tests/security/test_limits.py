"""Every parsing limit and server timeout, one test each, through the real code paths.

The CIM-XML requests go to ``CimXmlHandler`` (or a live ``WbemServer`` on 127.0.0.1) over the
real root/virtualization schema; providers without side effects stand in for the live ones
(``fuzz.fuzz_cimxml``). Slow clients are bounded in count and time and stop by themselves.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import pywbem
from fuzz.fuzz_cimxml import handler

from vsms.cim import names
from vsms.cim.embedded import MAX_DEPTH, MAX_NESTING, MAX_TEXT, parse_instance
from vsms.errors import IncorrectDataType
from vsms.wbem import xmltree
from vsms.wbem.protocol import Reply
from vsms.wbem.server import WbemServer

HEAD = '<?xml version="1.0" encoding="utf-8" ?>'
NSPATH = ('<LOCALNAMESPACEPATH><NAMESPACE NAME="root"/><NAMESPACE NAME="virtualization"/>'
          "</LOCALNAMESPACEPATH>")


def request(inner: str = "", name: str = "EnumerateInstanceNames") -> bytes:
    params = inner or (f'<IPARAMVALUE NAME="ClassName"><CLASSNAME NAME="{names.VSMS}"/>'
                       "</IPARAMVALUE>")
    return (f'{HEAD}<CIM CIMVERSION="2.0" DTDVERSION="2.0"><MESSAGE ID="9" PROTOCOLVERSION="1.0">'
            f'<SIMPLEREQ><IMETHODCALL NAME="{name}">{NSPATH}{params}</IMETHODCALL></SIMPLEREQ>'
            "</MESSAGE></CIM>").encode()


def handle(body: bytes, method: str = "EnumerateInstanceNames") -> Reply:
    return handler().handle("POST", {
        "content-type": 'application/xml; charset="utf-8"', "cimoperation": "MethodCall",
        "cimmethod": method, "cimobject": names.NAMESPACE}, body)


def refused(body: bytes, why: str) -> None:
    reply = handle(body)
    assert reply.status == 400, (reply.status, reply.detail)
    assert ("CIMError", "request-not-well-formed") in reply.headers
    assert why in reply.detail, reply.detail
    assert handle(request()).status == 200  # and the next request is served


# --------------------------------------------------------------------------- request parser

def test_request_without_dtd_or_entities() -> None:
    refused(b'<?xml version="1.0"?><!DOCTYPE CIM [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]>'
            b"<CIM>&b;</CIM>", "DOCTYPE declarations are not allowed")
    refused(b'<!DOCTYPE CIM SYSTEM "http://127.0.0.1:9/cim.dtd"><CIM/>', "DOCTYPE")
    refused(b"<CIM>&ext;</CIM>", "not well-formed")


def test_request_depth_limit() -> None:
    deep = xmltree.MAX_DEPTH + 1
    refused(b"<CIM>" + b"<a>" * deep + b"</a>" * deep + b"</CIM>", "nested deeper than 64")


def test_request_element_count_limit() -> None:
    many = b"<a/>" * (xmltree.MAX_ELEMENTS + 1)
    start = time.monotonic()
    refused(b"<CIM>" + many + b"</CIM>", f"too many XML elements (limit {xmltree.MAX_ELEMENTS})")
    assert time.monotonic() - start < 30


@pytest.mark.parametrize("where", ["text", "attribute"])
def test_request_string_length_limit(where: str) -> None:
    big = "x" * (xmltree.MAX_STRING + 1)
    body = (f"<CIM><VALUE>{big}</VALUE></CIM>" if where == "text"
            else f'<CIM><VALUE NAME="{big}"/></CIM>').encode()
    refused(body, f"longer than {xmltree.MAX_STRING} characters")
    ok = "x" * xmltree.MAX_STRING  # the limit itself is accepted by the parser
    assert xmltree.parse(f"<V>{ok}</V>".encode()).text == ok


@pytest.mark.parametrize("decl", ['encoding="UTF-16"', 'encoding="shift_jis"',
                                  'encoding="no-such-codec"', 'encoding="ISO-8859-1"'])
def test_request_declared_encoding_is_never_trusted(decl: str) -> None:
    """CIM-XML is UTF-8: a request declaring another encoding is read as UTF-8 (and refused when
    its bytes are not), never handed to a codec it names (which crashed the handler before)."""
    body = request().replace(b'encoding="utf-8"', decl.encode())
    assert handle(body).status == 200
    latin = body.replace(b"EnumerateInstanceNames\">", b"EnumerateInstanceNames\">\xe9", 1)
    assert handle(latin).status == 400


# --------------------------------------------------------------------------- embedded instances

def _inst(props: str = "", cls: str = names.VSGSD) -> str:
    return f'<INSTANCE CLASSNAME="{cls}">{props}</INSTANCE>'


@pytest.mark.parametrize("text, why", [
    ('<!DOCTYPE x [<!ENTITY e "e">]>' + _inst(), "DOCTYPE declarations are refused"),
    (_inst('<PROPERTY NAME="A" TYPE="string"><VALUE>&e;</VALUE></PROPERTY>'), "malformed XML"),
    (_inst("x" * MAX_TEXT), f"larger than {MAX_TEXT} bytes"),
    ("<VALUE.OBJECT>" * MAX_DEPTH + _inst() + "</VALUE.OBJECT>" * MAX_DEPTH, "nested deeper"),
    (_inst('<PROPERTY NAME="A" TYPE="uint5"/>'), "unknown TYPE 'uint5'"),
    ('<?xml version="1.0" encoding="utf-32"?>' + _inst(), None),
])
def test_embedded_instance_limits(text: str, why: str | None) -> None:
    if why is None:  # the declaration is dropped: the text is Unicode already
        assert parse_instance(text).classname == names.VSGSD
        return
    with pytest.raises(IncorrectDataType, match=why):
        parse_instance(text)


def test_embedded_instance_nesting_limit() -> None:
    inst = pywbem.CIMInstance(names.RASD, properties={"Address": "0"})
    for _ in range(MAX_NESTING + 1):
        inst = pywbem.CIMInstance("Msvm_Wrap", properties={"Inner": pywbem.CIMProperty(
            "Inner", inst, embedded_object="instance")})
    with pytest.raises(IncorrectDataType, match=f"embedded deeper than {MAX_NESTING}"):
        parse_instance(inst.tocimxmlstr(ignore_path=True))


def test_oversized_embedded_parameter_is_a_return_value() -> None:
    """Through the request path: the method answers 32776 (IncorrectDataType), no 500."""
    big = _inst(f'<PROPERTY NAME="ElementName" TYPE="string"><VALUE>{"x" * MAX_TEXT}</VALUE>'
                "</PROPERTY>")
    esc = big.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    body = (f'{HEAD}<CIM CIMVERSION="2.0" DTDVERSION="2.0"><MESSAGE ID="9" '
            f'PROTOCOLVERSION="1.0"><SIMPLEREQ><METHODCALL NAME="DefineVirtualSystem">'
            f"<LOCALCLASSPATH>{NSPATH}<CLASSNAME NAME=\"{names.VSMS}\"/></LOCALCLASSPATH>"
            f'<PARAMVALUE NAME="SystemSettingData" PARAMTYPE="string" EMBEDDEDOBJECT="instance">'
            f"<VALUE>{esc}</VALUE></PARAMVALUE></METHODCALL></SIMPLEREQ></MESSAGE></CIM>")
    reply = handler().handle("POST", {
        "cimoperation": "MethodCall", "cimmethod": "DefineVirtualSystem",
        "cimobject": f"{names.NAMESPACE}:{names.VSMS}"}, body.encode())
    assert reply.status == 200
    assert b"<RETURNVALUE" in reply.body and b"32776" in reply.body, reply.body[:500]


# --------------------------------------------------------------------------- the server

@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[WbemServer]:
    opts: dict[str, Any] = {"workers": 2, "header_timeout": 1.0, "body_timeout": 1.0,
                            "idle_timeout": 2.0, "max_connections": 64}
    opts.update(getattr(request, "param", {}))
    srv = WbemServer(handler().registry, http_port=0, **opts)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def post(port: int, body: bytes, extra: bytes = b"", timeout: float = 10.0,
         method: str = "EnumerateInstanceNames") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        head = (f"POST /cimom HTTP/1.1\r\nHost: x\r\nCIMOperation: MethodCall\r\n"
                f"CIMMethod: {method}\r\nCIMObject: root/virtualization\r\n").encode()
        tail = f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        s.sendall(head + extra + tail + body)
        return s.recv(65536)


def client_works(port: int) -> float:
    """Seconds a real pywbem client takes for one call (it must succeed)."""
    conn = pywbem.WBEMConnection(f"http://127.0.0.1:{port}", default_namespace=names.NAMESPACE,
                                 timeout=10)
    start = time.monotonic()
    try:
        assert len(conn.EnumerateInstanceNames(names.VSMS)) == 1
    finally:
        conn.close()
    return time.monotonic() - start


def test_header_size_limit(server: WbemServer) -> None:
    port = server.ports["http"]
    one_long = b"X-Long: " + b"a" * (64 * 1024) + b"\r\n"
    assert post(port, request(), one_long).startswith(b"HTTP/1.1 431 ")
    many = b"".join(f"X-H{i}: {'b' * 100}\r\n".encode() for i in range(700))
    assert post(port, request(), many).startswith(b"HTTP/1.1 431 ")
    assert client_works(port) < 5


def test_default_body_limit_is_checked_before_reading(server: WbemServer) -> None:
    port = server.ports["http"]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /cimom HTTP/1.1\r\nHost: x\r\nContent-Length: "
                  + str(16 * 1024 * 1024 + 1).encode() + b"\r\n\r\n<CIM>")
        assert s.recv(4096).startswith(b"HTTP/1.1 413 ")


def _drip(port: int, first: bytes, drip: bytes, every: float, until: float,
          result: dict[str, Any], key: str) -> None:
    """Send ``first``, then one byte of ``drip`` every ``every`` s until the server answers or
    closes, or ``until`` (monotonic) passes; record when and how the connection ended."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=until - start) as s:
        s.sendall(first)
        s.settimeout(every)
        i = 0
        while time.monotonic() < until:
            try:
                got = s.recv(4096)
                result[key] = (time.monotonic() - start, got[:12])
                return
            except TimeoutError:
                pass
            try:
                if drip:
                    s.sendall(drip[i % len(drip):i % len(drip) + 1])
            except OSError:
                result[key] = (time.monotonic() - start, b"reset")
                return
            i += 1
    result[key] = (time.monotonic() - start, b"still open")


def test_slow_loris_clients_do_not_hold_workers(server: WbemServer) -> None:
    """30 slow clients (dripping headers, dripping a body, or silent) against 2 workers: a real
    client is served quickly all along, and every slow one is cut off by its deadline."""
    port = server.ports["http"]
    until = time.monotonic() + 8.0
    head = (b"POST /cimom HTTP/1.1\r\nHost: x\r\nCIMOperation: MethodCall\r\n"
            b"CIMMethod: EnumerateInstanceNames\r\nCIMObject: root/virtualization\r\n")
    kinds = {
        "headers": (head, b"X-Slow: 1\r\n"),  # header_timeout (1 s) counts from the first line
        "body": (head + b"Content-Length: 1000\r\n\r\n<CIM>", b"x"),  # body_timeout (1 s)
        "silent": (b"", b""),  # idle_timeout (2 s)
    }
    result: dict[str, Any] = {}
    threads = []
    for i in range(30):
        kind = list(kinds)[i % 3]
        first, drip = kinds[kind]
        t = threading.Thread(target=_drip, args=(port, first, drip or b"", 0.25, until, result,
                                                 f"{kind}-{i}"), daemon=True)
        t.start()
        threads.append(t)
    time.sleep(0.3)
    took = [client_works(port) for _ in range(10)]
    assert max(took) < 1.0, took
    for t in threads:
        t.join(timeout=max(0.0, until - time.monotonic()) + 2)
    assert len(result) == 30
    for key, (seconds, how) in result.items():
        kind = key.split("-")[0]
        if kind == "silent":
            assert how == b"" and 1.5 < seconds < 4, (key, seconds, how)
        else:
            assert how.startswith(b"HTTP/1.1 408") and 0.8 < seconds < 3, (key, seconds, how)
    assert client_works(port) < 1.0


def test_worker_pool_is_bounded(server: WbemServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """With 2 workers, 6 concurrent calls of 0.5 s each run two at a time, on 2 threads."""
    registry = handler().registry
    real = registry.enumerate_instances
    seen: set[str] = set()
    busy = [0, 0]  # now, most at once
    lock = threading.Lock()

    def slow(namespace: str, classname: str) -> Sequence[pywbem.CIMInstance]:
        with lock:
            busy[0] += 1
            busy[1] = max(busy)
            seen.add(threading.current_thread().name)
        time.sleep(0.5)
        with lock:
            busy[0] -= 1
        return real(namespace, classname)

    monkeypatch.setattr(registry, "enumerate_instances", slow)
    port = server.ports["http"]
    start = time.monotonic()
    body = request(f'<IPARAMVALUE NAME="ClassName"><CLASSNAME NAME="{names.VSMS}"/>'
                   "</IPARAMVALUE>", "EnumerateInstances")
    replies: list[bytes] = []
    threads = [threading.Thread(target=lambda: replies.append(post(
        port, body, timeout=20, method="EnumerateInstances"))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert len(replies) == 6 and all(r.startswith(b"HTTP/1.1 200 ") for r in replies), replies
    assert busy[1] == 2, busy
    assert len(seen) == 2, seen
    assert time.monotonic() - start >= 1.4


def test_dripping_request_line_is_cut_at_header_timeout(server: WbemServer) -> None:
    result: dict[str, Any] = {}
    _drip(server.ports["http"], b"P", b"OST /cimom HTTP/1.1", 0.25, time.monotonic() + 1.8,
          result, "line")
    seconds, how = result["line"]
    assert how.startswith(b"HTTP/1.1 408"), (seconds, how)
