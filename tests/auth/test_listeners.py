"""Where the listeners may bind: plain HTTP and unauthenticated service only on loopback."""

from __future__ import annotations

import ssl
import threading
from pathlib import Path

import pytest
import pywbem

from tests.wbem.model import ServiceProvider
from vsms.auth.basic import Authenticator
from vsms.auth.setup import authenticator_from_settings, check_listeners, is_loopback
from vsms.auth.users import UsersFile
from vsms.errors import InvalidParameter
from vsms.providers.registry import Registry
from vsms.settings import load_settings
from vsms.wbem.server import WbemServer


def wbem_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("vsms-wbem")]


def test_loopback_addresses() -> None:
    for address in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        assert is_loopback(address), address
    for address in ("", "0.0.0.0", "::", "192.0.2.1", "no-such-host.invalid"):
        assert not is_loopback(address), address


def test_plain_http_off_loopback_is_refused(model: tuple[Registry, ServiceProvider],
                                            users: UsersFile) -> None:
    auth = Authenticator(users)
    srv = WbemServer(model[0], listen="0.0.0.0", http_port=0, auth=auth)
    with pytest.raises(InvalidParameter) as info:
        srv.start()
    text = str(info.value)
    assert "refusing plain HTTP on 0.0.0.0" in text and "clear text" in text
    assert "http_listen" in text and "allow_remote_http = true" in text
    assert srv.ports == {} and wbem_threads() == []


def test_https_may_listen_widely_with_http_on_loopback(
        model: tuple[Registry, ServiceProvider], users: UsersFile,
        tls: tuple[Path, Path]) -> None:
    cert, key = tls
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert), str(key))
    srv = WbemServer(model[0], listen="0.0.0.0", http_listen="127.0.0.1", http_port=0,
                     https_port=0, ssl_context=ctx, auth=Authenticator(users))
    srv.start()
    try:
        conn = pywbem.WBEMConnection(f"http://127.0.0.1:{srv.ports['http']}",
                                     ("admin", "admin-pass-123"), default_namespace="root/test")
        assert conn.EnumerateClassNames()
    finally:
        srv.stop()


def test_allow_remote_http_lets_it_start(model: tuple[Registry, ServiceProvider],
                                         users: UsersFile) -> None:
    srv = WbemServer(model[0], listen="0.0.0.0", http_port=0, auth=Authenticator(users),
                     allow_remote_http=True)
    srv.start()
    try:
        assert srv.ports["http"] > 0
    finally:
        srv.stop()


def test_no_authentication_only_on_loopback(model: tuple[Registry, ServiceProvider]) -> None:
    with pytest.raises(InvalidParameter, match=r"authentication is off.*local development"):
        WbemServer(model[0], listen="0.0.0.0", http_port=0, allow_remote_http=True).start()
    with pytest.raises(InvalidParameter, match="authentication is off"):
        check_listeners(https_listen="::", http_listen=None, authenticated=False,
                        allow_remote_http=False)
    check_listeners(https_listen="::1", http_listen="127.0.0.1", authenticated=False,
                    allow_remote_http=False)


def test_settings_for_security(tmp_path: Path) -> None:
    config = tmp_path / "vsms.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\nauth_pam = true\n'
                      'auth_backoff_seconds = 0.25\nhttp_listen = "127.0.0.1"\n')
    s = load_settings(config, {"VSMS_AUTH": "false", "VSMS_ALLOW_REMOTE_HTTP": "yes",
                               "VSMS_AUTH_MAX_FAILURES": "3"})
    assert (s.auth, s.auth_pam, s.allow_remote_http) == (False, True, True)
    assert (s.auth_max_failures, s.auth_backoff_seconds, s.http_listen) == (3, 0.25, "127.0.0.1")
    assert s.users_file == tmp_path / "state" / "users.json"
    assert s.audit_file == tmp_path / "state" / "audit.log"
    defaults = load_settings(None, {})
    assert defaults.auth is True and defaults.auth_pam is False
    assert defaults.allow_remote_http is False and defaults.http_listen == ""
    with pytest.raises(InvalidParameter, match="auth must be true or false"):
        load_settings(None, {"VSMS_AUTH": "maybe"})
    assert authenticator_from_settings(s) is None  # auth = false
    with pytest.raises(InvalidParameter, match="pam_default_role"):
        authenticator_from_settings(load_settings(
            None, {}, state_dir=tmp_path / "state", auth_pam=True, pam_default_role="boss"))
