"""The WS-Man listeners' settings (defaults < TOML < VSMS_* < flags; 0 turns one off), the ready
line of ``vsms serve`` naming them, and a WS-Man listener refused off loopback on plain HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.cli import served as srv
from tests.conftest import QEMU_URI
from tests.wsman.conftest import free_port
from vsms.cli.main import build_parser
from vsms.cli.serve import settings_from
from vsms.settings import Settings


def test_wsman_ports_come_from_config_env_and_flags(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    assert (Settings().wsman_http_port, Settings().wsman_https_port) == (5985, 5986)
    config = tmp_path / "vsms.toml"
    config.write_text("wsman_http_port = 6985\nwsman_https_port = 6986\n")
    monkeypatch.setenv("VSMS_WSMAN_HTTPS_PORT", "0")
    s = settings_from(build_parser().parse_args(["serve", "--config", str(config)]))
    assert (s.wsman_http_port, s.wsman_https_port) == (6985, 0)
    s = settings_from(build_parser().parse_args(["serve", "--config", str(config),
                                                 "--wsman-http-port", "7985"]))
    assert s.wsman_http_port == 7985
    monkeypatch.setenv("VSMS_WSMAN_HTTP_PORT", "many")
    with pytest.raises(Exception, match="wsman_http_port must be an integer"):
        settings_from(build_parser().parse_args(["serve"]))


@pytest.mark.qemu
def test_ready_line_names_the_wsman_ports_and_0_turns_them_off() -> None:
    root = srv.make_root()
    port = free_port()
    with srv.serving(root, root / "state", [root], QEMU_URI) as off:
        assert off.wsman_http_port is None and off.wsman_https_port is None
        assert "(wsman http port off, wsman https port off)" in off.stderr()
    root = srv.make_root()
    server = srv.start(root / "state", [root], QEMU_URI, "--wsman-http-port", str(port),
                       "--wsman-https-port", "0")
    try:
        assert (server.wsman_http_port, server.wsman_https_port) == (port, None)
        assert f"(wsman http port {port}, wsman https port off)" in server.stderr()
        # the CIM-XML listener is still CIM-XML: /wsman there is not WS-Man
        r = requests.post(f"{server.url}/wsman", data=b"<x/>", timeout=30,
                          auth=(server.user, server.password),
                          headers={"Content-Type": "application/soap+xml;charset=UTF-8"})
        assert r.status_code == 400
    finally:
        srv.stop(server.proc)
        srv.remove_vms(QEMU_URI, root)
        import shutil
        shutil.rmtree(root, ignore_errors=True)


def test_plain_wsman_off_loopback_is_refused(tmp_path: Path) -> None:
    """CIM-XML only on HTTPS (allowed anywhere with authentication), WS-Man on plain HTTP on
    0.0.0.0: refused, naming the rule."""
    from vsms import certs
    from vsms.auth.setup import authenticator_from_settings, check_listeners
    from vsms.errors import InvalidParameter
    from vsms.providers.registry import Registry
    from vsms.wbem.server import WbemServer

    cert, key = certs.ensure_certificate(tmp_path, "localhost")

    def server(wsman: int | None) -> WbemServer:
        return WbemServer(Registry("h"), listen="0.0.0.0", http_port=None, https_port=0,
                          ssl_context=certs.server_context(cert, key),
                          auth=authenticator_from_settings(Settings(state_dir=tmp_path)),
                          wsman_http_port=wsman)
    # the same without the WS-Man listener passes the check (nothing is bound off loopback:
    # the check comes before any socket)
    check_listeners(https_listen="0.0.0.0", http_listen=None, authenticated=True,
                    allow_remote_http=False)
    assert server(None).ports == {}
    with pytest.raises(InvalidParameter, match="loopback"):
        server(free_port()).start()
