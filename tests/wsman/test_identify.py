"""WS-Man Identify without credentials (``Test-WSMan HOST``, ``winrm id -a:None``, ``wslid``
without a user), against a real Service on qemu:///system behind a WbemServer with users, an
audit log and its WS-Man listener: the Identify is answered, everything else without
credentials is refused as before, and a large body without credentials is refused unread.

Requests are sent over raw sockets from chosen loopback addresses (127.0.0.N), so that each
check has its own source for the back-off and the audit log."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.authserved import AuthServed, auth_served
from tests.wsman.conftest import WMI
from vsms.auth.anonymous import IDENTIFY_MAX_BODY, IdentifyAudit
from vsms.auth.audit import AuditLog
from vsms.auth.policy import Role

pytestmark = pytest.mark.qemu
PASSWORD = "identify-pass-123"
S = "http://www.w3.org/2003/05/soap-envelope"
WSMID = "http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd"
WSMID_ALT = "http://schemas.dmtf.org/wbem/wsman/identify/1/wsmanidentity.xsd"
IDENTIFY = (f'<s:Envelope xmlns:s="{S}" xmlns:wsmid="{{ns}}"><s:Header/><s:Body>'
            f"<wsmid:Identify/></s:Body></s:Envelope>")
ENUMERATE = (
    f'<s:Envelope xmlns:s="{S}" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
    f'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" '
    f'xmlns:n="http://schemas.xmlsoap.org/ws/2004/09/enumeration"><s:Header>'
    f"<a:Action>http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate</a:Action>"
    f"<a:MessageID>uuid:0b7a3c2e-1111-2222-3333-444455556666</a:MessageID>"
    f"<w:ResourceURI>{WMI}Msvm_ComputerSystem</w:ResourceURI>"
    f"<a:To>http://127.0.0.1/wsman</a:To></s:Header><s:Body><n:Enumerate/></s:Body>"
    f"</s:Envelope>")
CT = "application/soap+xml;charset=UTF-8"


@pytest.fixture(scope="module")
def served() -> Iterator[AuthServed]:
    with auth_served(PASSWORD, [("admin", Role.ADMINISTRATOR, None)], wsman=True) as s:
        yield s


class Answer:
    def __init__(self, raw: bytes) -> None:
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.strip().lower(): v.strip()
                        for k, _, v in (x.partition(":") for x in lines[1:])}

    def identity(self) -> dict[str, str]:
        """The children of the IdentifyResponse, by local name."""
        assert self.status == 200, (self.status, self.body[:500])
        env = ET.fromstring(self.body)
        resp = env.find(f"./{{{S}}}Body/{{{WSMID}}}IdentifyResponse")
        assert resp is not None, self.body
        return {c.tag.split("}")[1]: c.text or "" for c in resp}


def request(body: bytes, *, ctype: str = CT, auth: str | None = None, path: str = "/wsman",
            length: int | None = None) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Type: {ctype}",
            f"Content-Length: {len(body) if length is None else length}"]
    if auth is not None:
        head.append(f"Authorization: {auth}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def read_answer(sock: socket.socket) -> Answer:
    """One HTTP response (Content-Length framed) from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before an answer: {data!r}"
        data += chunk
    answer = Answer(data)
    need = int(answer.headers.get("content-length", "0"))
    while len(answer.body) < need:
        chunk = sock.recv(65536)
        assert chunk, "connection closed in the middle of an answer"
        answer.body += chunk
    return answer


def connect(served: AuthServed, source: str, port: str = "wsman-http") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", served.server.ports[port]), timeout=10,
                                    source_address=(source, 0))
    return sock


def post(served: AuthServed, source: str, body: bytes, **kw: Any) -> Answer:
    with connect(served, source, kw.pop("port", "wsman-http")) as sock:
        sock.sendall(request(body, **kw))
        return read_answer(sock)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def identify_lines(served: AuthServed, source: str) -> list[dict[str, Any]]:
    audit = served.server.handler.dispatcher.audit
    assert audit is not None
    return [r for r in audit.read() if r["event"] == "identify" and r["source"] == source]


def test_identify_is_answered_without_credentials_and_nothing_else(served: AuthServed) -> None:
    utf8 = IDENTIFY.format(ns=WSMID).encode()
    got = post(served, "127.0.0.11", utf8).identity()
    assert list(got) == ["ProtocolVersion", "ProductVendor", "ProductVersion"]
    assert got["ProtocolVersion"] == "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
    assert got["ProductVendor"] == "vsms"
    assert got["ProductVersion"].startswith("OS: 0.0.0 SP: 0.0 Stack: ")  # the OS unnamed
    # the other namespace spelling (pypsrp's), and a UTF-16 body with its BOM
    alt = IDENTIFY.format(ns=WSMID_ALT).encode()
    assert post(served, "127.0.0.11", alt).identity() == got
    utf16 = ('<?xml version="1.0" encoding="UTF-16"?>' + IDENTIFY.format(ns=WSMID)
             ).encode("utf-16")
    assert post(served, "127.0.0.11", utf16,
                ctype="application/soap+xml;charset=UTF-16").identity() == got
    # curl -u : (what the wsl scripts send without a user) is no credentials either
    assert post(served, "127.0.0.11", utf8, auth="Basic Og==").identity() == got
    # audited once for the source (a line a minute), the next ones counted in the next line
    (line,) = identify_lines(served, "127.0.0.11")
    assert line["user"] == "-" and line["auth"] == "anonymous"
    assert line["operation"] == "Identify" and line["repeated"] == 0
    # with the right credentials: checked, and answered with the OS named
    mine = post(served, "127.0.0.11", utf8, auth=basic("admin", PASSWORD)).identity()
    assert mine["ProductVersion"].startswith("OS: Linux SP: 0.0 Stack: ")

    # everything else without credentials: 401 with the challenge, as before
    refused = {
        "Enumerate": (ENUMERATE.encode(), {}),
        "Enumerate with curl -u :": (ENUMERATE.encode(), {"auth": "Basic Og=="}),
        "Get": (ENUMERATE.replace("enumeration/Enumerate", "transfer/Get").replace(
            "<n:Enumerate/>", "").encode(), {}),
        "Identify with an Action": (IDENTIFY.format(ns=WSMID).replace(
            "<s:Header/>", "<s:Header><a:Action xmlns:a=\"http://schemas.xmlsoap.org/ws/"
            "2004/08/addressing\">http://schemas.xmlsoap.org/ws/2004/09/transfer/Get"
            "</a:Action></s:Header>").encode(), {}),
        "not XML": (b"<s:Envelope", {}),
        "a DTD": (b'<!DOCTYPE s [<!ENTITY e "x">]>' + utf8, {}),
        "another path": (utf8, {"path": "/wsman/other"}),
        "a text/plain body": (utf8, {"ctype": "text/plain"}),
        "Identify on the CIM-XML listener": (utf8, {"port": "http", "path": "/cimom"}),
    }
    for what, (body, kw) in refused.items():
        answer = post(served, "127.0.0.12", body, **kw)
        assert answer.status == 401, (what, answer.status, answer.body[:300])
        assert answer.headers["www-authenticate"] == 'Basic realm="vsms"', what
        assert b"IdentifyResponse" not in answer.body, what
    assert identify_lines(served, "127.0.0.12") == []

    # wrong credentials on an Identify: 401, counted: the sixth failure starts the back-off,
    # and then even an Identify without credentials is refused (429) until it ends
    for _ in range(6):
        answer = post(served, "127.0.0.13", utf8, auth=basic("admin", "wrong-password"))
        assert answer.status == 401 and b"IdentifyResponse" not in answer.body
    assert "retry-after" in answer.headers
    auth = served.server.auth
    assert auth is not None
    for _ in range(5):  # a longer block (32 s), so that the check below cannot miss it
        auth.limiter.failure("127.0.0.13")
    blocked = post(served, "127.0.0.13", utf8)
    assert blocked.status == 429 and "retry-after" in blocked.headers
    assert identify_lines(served, "127.0.0.13") == []


def test_large_bodies_without_credentials_are_refused_unread(served: AuthServed) -> None:
    identify = IDENTIFY.format(ns=WSMID)
    source = "127.0.0.14"
    # a well-formed Identify just over the bound, and one of 1 MiB: parsed, they would be
    # answered; they are refused like any request without credentials
    for size in (IDENTIFY_MAX_BODY + 1, 1024 * 1024):
        padded = identify.replace("<s:Body>", "<s:Body>" + " " * (size - len(identify)))
        assert len(padded) == size
        answer = post(served, source, padded.encode())
        assert answer.status == 401 and b"IdentifyResponse" not in answer.body, size
    # unread: the 401 comes as soon as the headers are in, with no body sent at all
    with connect(served, source) as sock:
        sock.sendall(request(b"", length=1024 * 1024))
        assert read_answer(sock).status == 401
    assert identify_lines(served, source) == []
    # the source was not held against: a small Identify is answered, its line the first
    post(served, source, identify.encode()).identity()
    (line,) = identify_lines(served, source)
    assert line["repeated"] == 0


def test_a_slow_body_without_credentials_is_cut_at_the_login_timeout(
        served: AuthServed) -> None:
    """Not body_timeout (60 s): a client without credentials holds a connection no longer
    than before this change (the login deadline)."""
    server = served.server
    saved, server.login_timeout = server.login_timeout, 1.0
    try:
        with connect(served, "127.0.0.16") as sock:
            started = time.monotonic()
            sock.sendall(request(b"", length=300))  # announces a small body, never sends it
            answer = read_answer(sock)
            assert answer.status == 408 and b"within 1 s" in answer.body, answer.body
            assert time.monotonic() - started < 10
    finally:
        server.login_timeout = saved


def test_a_connection_that_identified_is_not_logged_in(served: AuthServed) -> None:
    with connect(served, "127.0.0.15") as sock:
        sock.sendall(request(IDENTIFY.format(ns=WSMID).encode()))
        read_answer(sock).identity()
        sock.sendall(request(ENUMERATE.encode()))  # same connection, still no credentials
        assert read_answer(sock).status == 401
    with connect(served, "127.0.0.15") as sock:  # a client that logs in after identifying
        sock.sendall(request(IDENTIFY.format(ns=WSMID).encode()))
        read_answer(sock).identity()
        sock.sendall(request(ENUMERATE.encode(), auth=basic("admin", PASSWORD)))
        answer = read_answer(sock)
        assert answer.status == 200 and b"EnumerateResponse" in answer.body


def test_wslid_without_a_user(served: AuthServed, tmp_path: Path) -> None:
    """Debian's wslid, unmodified, with no user or password. The scripts ask until they get a
    non-empty answer; ``""`` is their way to say "empty", and curl then sends ``-u :``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WS")}
    env.update(HOME=str(tmp_path), WSENDPOINT=f"127.0.0.1:{served.server.ports['wsman-http']}",
               WSUSER='""', WSPASS='""', WSNOSSL="1", WSAUTOMATED="1", KEEPHISTORY="0",
               OUTPREFIX=str(tmp_path), OUTLEVEL="1", IPINTERACTIVE="0")
    res = subprocess.run(["wslid", "check"], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path, env=env, check=False)
    assert res.returncode == 0, (res.stdout[-2000:], res.stderr[-2000:])
    got = Answer(b"HTTP/1.1 200 OK\r\n\r\n" + (tmp_path / "response-1.xml").read_bytes())
    assert got.identity()["ProductVendor"] == "vsms"
    assert '--user "":""' in (tmp_path / "log.txt").read_text()  # no credentials sent


def test_identify_audit_writes_a_line_per_source_a_minute(tmp_path: Path) -> None:
    now = [1000.0]
    log = AuditLog(tmp_path / "audit.log")
    audit = IdentifyAudit(log, every=60.0, max_sources=2, clock=lambda: now[0])
    for _ in range(3):
        audit.record("10.0.0.1")
    audit.record("10.0.0.2")
    now[0] += 61.0
    audit.record("10.0.0.1")  # the two unwritten ones are counted here
    audit.record("10.0.0.3")  # a third source: the stale ones are forgotten
    lines = [(r["source"], r["repeated"]) for r in log.read()]
    assert lines == [("10.0.0.1", 0), ("10.0.0.2", 0), ("10.0.0.1", 2), ("10.0.0.3", 0)]
    assert all(r["user"] == "-" and r["auth"] == "anonymous" for r in log.read())
