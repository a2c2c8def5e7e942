"""Fixtures: a users file with one user per role, the test model of tests/wbem behind a real
WbemServer with authentication and an audit log, raw HTTP requests from a chosen source."""

from __future__ import annotations

import base64
import http.client
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pywbem

from tests.wbem.model import NS, ServiceProvider, build_registry
from vsms.auth.audit import AuditLog
from vsms.auth.basic import Authenticator
from vsms.auth.limiter import FailureLimiter
from vsms.auth.policy import Role
from vsms.auth.users import UsersFile
from vsms.providers.interop import install_interop
from vsms.providers.registry import Registry
from vsms.wbem.server import WbemServer

PASSWORDS = {"admin": "admin-pass-123", "oper": "oper-pass-123", "reader": "reader-pass-123"}
ROLES = {"admin": Role.ADMINISTRATOR, "oper": Role.OPERATOR, "reader": Role.READER}

ECN_BODY = (b'<?xml version="1.0" encoding="utf-8" ?><CIM CIMVERSION="2.0" DTDVERSION="2.0">'
            b'<MESSAGE ID="1001" PROTOCOLVERSION="1.0"><SIMPLEREQ>'
            b'<IMETHODCALL NAME="EnumerateClassNames"><LOCALNAMESPACEPATH>'
            b'<NAMESPACE NAME="root"/><NAMESPACE NAME="test"/></LOCALNAMESPACEPATH>'
            b"</IMETHODCALL></SIMPLEREQ></MESSAGE></CIM>")


def fill_users(users: UsersFile) -> UsersFile:
    for name, password in PASSWORDS.items():
        users.add(name, ROLES[name], password)
    return users


@pytest.fixture(autouse=True)
def own_verification(monkeypatch: pytest.MonkeyPatch) -> None:
    """requests lets these variables override the client's own ca_certs choice."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


@pytest.fixture
def users(tmp_path: Path) -> UsersFile:
    return fill_users(UsersFile(tmp_path / "state" / "users.json"))


@pytest.fixture
def model() -> tuple[Registry, ServiceProvider]:
    reg, svc = build_registry("testhost")
    install_interop(reg)
    return reg, svc


@dataclass
class Secured:
    server: WbemServer
    auth: Authenticator
    audit: AuditLog
    tls_cert: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.ports['http']}"

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.server.ports['https']}"

    def connect(self, user: str | None, password: str | None = None, *,
                https: bool = False) -> pywbem.WBEMConnection:
        creds = None if user is None else (user, password or PASSWORDS[user])
        return pywbem.WBEMConnection(self.https_url if https else self.url, creds,
                                     default_namespace=NS, timeout=30,
                                     ca_certs=str(self.tls_cert) if https else None)


def make_tls(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=120)
    return cert, key


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (made once)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl CLI for the HTTPS certificate")
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def secured(model: tuple[Registry, ServiceProvider], users: UsersFile, tls: tuple[Path, Path],
            tmp_path: Path) -> Iterator[Secured]:
    """HTTP and HTTPS with authentication; back-off after 2 failures, 0.5 s doubling to 2 s."""
    cert, key = tls
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert), str(key))
    auth = Authenticator(users, limiter=FailureLimiter(free=2, base=0.5, ceiling=2.0))
    audit = AuditLog(tmp_path / "state" / "audit.log")
    srv = WbemServer(model[0], http_port=0, https_port=0, ssl_context=ctx, workers=4,
                     auth=auth, audit=audit)
    srv.start()
    try:
        yield Secured(srv, auth, audit, cert)
    finally:
        srv.stop()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def raw_request(port: int, authorization: str | None = None, *, source: str = "127.0.0.1",
                body: bytes = ECN_BODY) -> tuple[int, dict[str, str], bytes]:
    """POST an EnumerateClassNames of root/test from ``source`` (any 127.x address)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
    headers = {"Content-Type": 'application/xml; charset="utf-8"',
               "CIMOperation": "MethodCall", "CIMMethod": "EnumerateClassNames",
               "CIMObject": "root/test"}
    if authorization is not None:
        headers["Authorization"] = authorization
    try:
        conn.request("POST", "/cimom", body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()
