"""One ``vsms serve`` with WS-Management on per test module (qemu:///system, loopback), and
pypsrp clients for it.

The WS-Man ports are chosen free by the test (0 disables a WS-Man listener, so the kernel cannot
choose them); a start that lost its port to another process is retried.
"""

from __future__ import annotations

import shutil
import socket
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pywbem
from pypsrp.wsman import WSMan

from tests.cli import served as srv
from tests.conftest import QEMU_URI

WMI = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/"
NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "n": "http://schemas.xmlsoap.org/ws/2004/09/enumeration",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
    "f": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
}


def epr_into(parent: ET.Element, path: pywbem.CIMInstanceName) -> ET.Element:
    """``parent`` filled with a WS-Addressing reference to ``path`` (address, resource URI,
    selectors), as WMI clients send a reference argument; returns ``parent``."""
    ET.SubElement(parent, f"{{{NS['a']}}}Address").text = \
        "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
    params = ET.SubElement(parent, f"{{{NS['a']}}}ReferenceParameters")
    ET.SubElement(params, f"{{{NS['w']}}}ResourceURI").text = WMI + path.classname
    selectors = ET.SubElement(params, f"{{{NS['w']}}}SelectorSet")
    for key, value in path.keybindings.items():
        ET.SubElement(selectors, f"{{{NS['w']}}}Selector", Name=key).text = str(value)
    return parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class WsServer:
    served: srv.Served
    reader_password: str

    @property
    def port(self) -> int:
        assert self.served.wsman_http_port is not None
        return self.served.wsman_http_port

    def client(self, user: str | None = None, password: str | None = None) -> WSMan:
        return WSMan("127.0.0.1", port=self.port, ssl=False, auth="basic",
                     encryption="never", username=user or self.served.user,
                     password=password or self.served.password, operation_timeout=20,
                     read_timeout=60)

    def reader(self) -> WSMan:
        return self.client("wsman-reader", self.reader_password)


def start_with_wsman(root_state: Path, root: Path) -> srv.Served:
    last: AssertionError | None = None
    for _ in range(3):
        try:
            return srv.start(root_state, [root], QEMU_URI, "--wsman-http-port",
                             str(free_port()), "--wsman-https-port", str(free_port()))
        except AssertionError as exc:  # the port was taken meanwhile: choose again
            last = exc
    assert last is not None
    raise last


@pytest.fixture(scope="module")
def ws() -> Iterator[WsServer]:
    root = srv.make_root()
    state = root / "state"
    server = None
    try:
        state.mkdir(parents=True, exist_ok=True)
        reader = srv.add_user(state, "wsman-reader", "reader")
        server = start_with_wsman(state, root)
        yield WsServer(server, reader)
    finally:
        if server is not None:
            srv.stop(server.proc)
        srv.remove_vms(QEMU_URI, root)
        shutil.rmtree(root, ignore_errors=True)


def text(el: ET.Element | None) -> str:
    assert el is not None
    return el.text or ""
