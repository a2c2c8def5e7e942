"""The server's life cycle, limits, logging, concurrency and its own time per request."""

from __future__ import annotations

import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import pywbem

from tests.wbem.model import NS, ServiceProvider
from vsms.errors import InvalidParameter, SystemNotAvailable
from vsms.providers.registry import Registry
from vsms.wbem.server import WbemServer


def wbem_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("vsms-wbem")]


def test_port_taken_is_a_clear_error(model: tuple[Registry, ServiceProvider]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        srv = WbemServer(model[0], http_port=port)
        with pytest.raises(SystemNotAvailable) as info:
            srv.start()
        assert str(port) in str(info.value) and "--http-port" in str(info.value)
    assert wbem_threads() == []
    with pytest.raises(InvalidParameter, match="ssl_context"):
        WbemServer(model[0], https_port=0)


def test_start_stop_is_clean(model: tuple[Registry, ServiceProvider]) -> None:
    srv = WbemServer(model[0], http_port=0)
    srv.start()
    port = srv.ports["http"]
    conn = pywbem.WBEMConnection(f"http://127.0.0.1:{port}", default_namespace=NS)
    assert conn.EnumerateClassNames()
    idle = socket.create_connection(("127.0.0.1", port))  # an idle client must not block stop
    srv.stop()
    idle.close()
    conn.close()
    assert wbem_threads() == [] and srv.ports == {}
    with socket.socket() as s:  # the port is free again (closed connections may be in TIME_WAIT)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()
    srv.stop()  # twice is harmless


def test_one_log_line_per_request(server: WbemServer, conn: pywbem.WBEMConnection,
                                  caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="vsms.wbem"):
        conn.EnumerateInstances("TST_VirtualSystem")
        with pytest.raises(pywbem.CIMError):
            conn.GetClass("TST_Nope")
        deadline = time.monotonic() + 5  # the line is written once the response is sent
        while time.monotonic() < deadline and len(
                [r for r in caplog.records if r.name == "vsms.wbem"]) < 2:
            time.sleep(0.02)
    lines = [r.getMessage() for r in caplog.records if r.name == "vsms.wbem"]
    assert len(lines) == 2
    assert "127.0.0.1:" in lines[0] and "EnumerateInstances TST_VirtualSystem" in lines[0]
    assert "HTTP 200, CIM status 0: 3 objects" in lines[0] and " ms)" in lines[0]
    assert "GetClass" in lines[1] and "CIM status 6" in lines[1]


def test_32_concurrent_clients(model: tuple[Registry, ServiceProvider]) -> None:
    srv = WbemServer(model[0], http_port=0, workers=4)
    srv.start()
    url = f"http://127.0.0.1:{srv.ports['http']}"

    def client(n: int) -> int:
        conn = pywbem.WBEMConnection(url, default_namespace=NS, timeout=60)
        try:
            total = 0
            for _ in range(5):
                total += len(conn.EnumerateInstances("TST_System"))
                total += len(conn.ExecQuery("WQL", f"SELECT * FROM TST_System WHERE "
                                                   f"Name = 'vm{n % 3}'"))
            return total
        finally:
            conn.close()

    try:
        with ThreadPoolExecutor(32) as pool:
            results = list(pool.map(client, range(32)))
        assert results == [25] * 32
    finally:
        srv.stop()


class StaticProvider:
    """Pre-built instances (what a provider with a warm cache returns)."""

    classnames = ("TST_VirtualSystem",)

    def __init__(self, insts: list[pywbem.CIMInstance]) -> None:
        self.insts = insts

    def enumerate(self, classname: str) -> list[pywbem.CIMInstance]:
        return self.insts

    def get(self, path: pywbem.CIMInstanceName) -> None:
        return None


def _logged_in(port: int) -> socket.socket:
    """A keep-alive connection that has sent one request (authentication is off, so it passed
    it); its answer is read."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    body = (b'<?xml version="1.0" encoding="utf-8" ?><CIM CIMVERSION="2.0" DTDVERSION="2.0">'
            b'<MESSAGE ID="1" PROTOCOLVERSION="1.0"><SIMPLEREQ><IMETHODCALL '
            b'NAME="EnumerateClassNames"><LOCALNAMESPACEPATH><NAMESPACE NAME="root"/>'
            b'<NAMESPACE NAME="test"/></LOCALNAMESPACEPATH></IMETHODCALL></SIMPLEREQ>'
            b"</MESSAGE></CIM>")
    s.sendall(b"POST /cimom HTTP/1.1\r\nHost: x\r\nCIMOperation: MethodCall\r\n"
              b"CIMMethod: EnumerateClassNames\r\nCIMObject: root/test\r\n"
              b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    assert s.recv(65536).startswith(b"HTTP/1.1 200 ")
    return s


def test_connection_limit(model: tuple[Registry, ServiceProvider]) -> None:
    """Connections that logged in hold their place; when they fill the capacity a newcomer gets
    503, and once one closes a real client is served again."""
    srv = WbemServer(model[0], http_port=0, max_connections=3, max_unauthenticated=2)
    srv.start()
    port = srv.ports["http"]
    try:
        held = [_logged_in(port) for _ in range(3)]
        with socket.create_connection(("127.0.0.1", port), timeout=10) as fourth:
            assert fourth.recv(4096).startswith(b"HTTP/1.1 503 ")
        held.pop().close()
        time.sleep(0.2)
        conn = pywbem.WBEMConnection(f"http://127.0.0.1:{port}", default_namespace=NS)
        assert conn.EnumerateClassNames()
        conn.close()
        for s in held:
            s.close()
    finally:
        srv.stop()


def test_idle_connections_that_never_logged_in_make_room(
        model: tuple[Registry, ServiceProvider]) -> None:
    """The share of connections that have not logged in is full of idle ones: a newcomer is
    admitted and served, and the oldest idle one is closed for it."""
    srv = WbemServer(model[0], http_port=0, max_connections=4, max_unauthenticated=2)
    srv.start()
    port = srv.ports["http"]
    try:
        held = _logged_in(port)
        idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(2)]
        time.sleep(0.2)
        conn = pywbem.WBEMConnection(f"http://127.0.0.1:{port}", default_namespace=NS)
        assert conn.EnumerateClassNames()
        conn.close()
        assert idle[0].recv(4096) == b""  # the oldest idle one was closed
        assert srv.admission.evictions >= 1
        for s in (held, *idle):
            s.close()
    finally:
        srv.stop()


def test_internal_errors_are_answered(server: WbemServer, conn: pywbem.WBEMConnection,
                                      model: tuple[Registry, ServiceProvider]) -> None:
    def broken(*_args: object) -> tuple[int, dict[str, object]]:
        raise RuntimeError("provider bug")

    model[1].invoke = broken  # type: ignore[method-assign,assignment]
    with pytest.raises(pywbem.CIMError) as info:
        conn.InvokeMethod("Version", pywbem.CIMClassName("TST_Service", namespace=NS))
    assert info.value.status_code == pywbem.CIM_ERR_FAILED
    assert "RuntimeError: provider bug" in info.value.status_description
    assert conn.EnumerateClassNames()


def test_login_deadline_cuts_a_dripping_client_that_never_logged_in(
        model: tuple[Registry, ServiceProvider]) -> None:
    """Headers dripped one line at a time would get header_timeout (30 s); a connection that
    has not logged in gets login_timeout from connecting."""
    srv = WbemServer(model[0], http_port=0, login_timeout=1.0, header_timeout=30.0)
    srv.start()
    try:
        with socket.create_connection(("127.0.0.1", srv.ports["http"]), timeout=10) as s:
            start = time.monotonic()
            s.sendall(b"POST /cimom HTTP/1.1\r\n")
            s.settimeout(0.2)
            got = b""
            while not got and time.monotonic() - start < 5:
                try:
                    got = s.recv(4096)
                except TimeoutError:
                    s.sendall(b"X-Drip: 1\r\n")
            took = time.monotonic() - start
        assert got.startswith(b"HTTP/1.1 408 "), got
        assert b"1 s of connecting" in got and 0.8 < took < 2.5, (took, got)
    finally:
        srv.stop()
