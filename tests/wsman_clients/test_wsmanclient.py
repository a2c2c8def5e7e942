"""python-wsmanclient, unmodified: enumerate with a WQL filter and its automatic Pull loop, and
optimized enumeration, against a real ``vsms serve`` on qemu:///system."""

from __future__ import annotations

from typing import Any

import pytest
import pywbem
from wsmanclient.client import Client  # type: ignore[import-untyped]

from tests.wsman.conftest import WsServer
from tests.wsman_clients.conftest import WMI

pytestmark = pytest.mark.qemu
WSEN = "http://schemas.xmlsoap.org/ws/2004/09/enumeration"
WSMAN = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"


def client(ws: WsServer) -> Client:
    return Client("127.0.0.1", ws.served.user, ws.served.password, port=ws.port,
                  protocol="http")


def names_in(resp: Any, tag: str) -> list[str]:
    return sorted(e.text for e in resp.iter(f"{{{WMI}root/virtualization/{tag}}}Name"))


def test_wql_enumerate_with_auto_pull(ws: WsServer) -> None:
    conn = pywbem.WBEMConnection(ws.served.url, (ws.served.user, ws.served.password),
                                 default_namespace="root/virtualization")
    want = sorted(i["Name"] for i in conn.EnumerateInstances("Msvm_ComputerSystem"))
    assert want
    # not optimized, one item per Pull: the client pulls until the context is gone
    resp = client(ws).enumerate(WMI + "root/virtualization/*", optimization=False,
                                max_elems=1, filter_query="SELECT * FROM Msvm_ComputerSystem",
                                filter_dialect="wql")
    assert names_in(resp, "Msvm_ComputerSystem") == want
    assert resp.find(f".//{{{WSEN}}}EndOfSequence") is not None
    # root/cimv2 through the same client
    resp = client(ws).enumerate(WMI + "root/cimv2/*", optimization=False, max_elems=1,
                                filter_query="SELECT NumberOfProcessors FROM "
                                             "Win32_ComputerSystem", filter_dialect="wql")
    found = list(resp.iter(f"{{{WMI}root/cimv2/Win32_ComputerSystem}}NumberOfProcessors"))
    assert len(found) == 1 and int(found[0].text or "0") >= 1


def test_optimized_enumerate(ws: WsServer) -> None:
    resp = client(ws).enumerate(WMI + "root/virtualization/Msvm_ComputerSystem",
                                optimization=True, max_elems=100, auto_pull=False)
    body = resp.find(f".//{{{WSEN}}}EnumerateResponse")
    assert body is not None
    assert body.find(f"{{{WSMAN}}}EndOfSequence") is not None
    items = body.find(f"{{{WSMAN}}}Items")
    assert items is not None and len(items) >= 1
