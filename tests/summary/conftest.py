"""One real Service on qemu:///system for the whole package (tests/summary), served over CIM-XML
and WS-Man on loopback, with two VMs of its own (no disks): "run" (running, 2 processors, in
scope "red") and "off" (turned off, in scope "blue"). Everything is removed at the end."""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import pywbem

from tests.conftest import QEMU_URI, fresh_dir
from vsms.app import Service
from vsms.cim import names
from vsms.model.vm import VirtualSystem, default_controllers, new_guid
from vsms.settings import Settings
from vsms.wbem.server import WbemServer


@dataclass
class Rig:
    service: Service
    server: WbemServer
    conn: pywbem.WBEMConnection
    run: VirtualSystem
    off: VirtualSystem
    starting: float  # time.monotonic() before "run" was started
    started: float  # time.monotonic() once it was started

    @property
    def vsms(self) -> pywbem.CIMInstanceName:
        return self.conn.EnumerateInstanceNames(names.VSMS)[0]

    def invoke(self, method: str, **params: object) -> tuple[int, dict[str, object]]:
        rv, out = self.conn.InvokeMethod(method, self.vsms, **params)
        return int(rv), dict(out)


def vssd(guid: str) -> pywbem.CIMInstanceName:
    return pywbem.CIMInstanceName(names.VSSD, keybindings={"InstanceID": f"Microsoft:{guid}"},
                                  namespace=names.NAMESPACE)


def u32(*values: int) -> list[pywbem.Uint32]:
    return [pywbem.Uint32(v) for v in values]


@pytest.fixture(scope="package")
def rig() -> Iterator[Rig]:
    root = fresh_dir()
    service = Service(Settings(state_dir=root / "state", storage_roots=(root,),
                               libvirt_uri=QEMU_URI))
    server = WbemServer(service.registry, listen="127.0.0.1", http_port=0, workers=4,
                        wsman_http_port=0)
    made: list[str] = []
    try:
        server.start()
        run = VirtualSystem(guid=new_guid(), name=f"summary-run-{root.name}", memory_mb=64,
                            processors=2, notes="the running one",
                            controllers=default_controllers(), scope_of_residence="red")
        off = VirtualSystem(guid=new_guid(), name=f"summary-off-{root.name}", memory_mb=96,
                            controllers=default_controllers(), scope_of_residence="blue")
        for vs in (run, off):
            made.append(vs.guid)
            service.host.define(vs)
        starting = time.monotonic()
        service.host.start(run.guid)
        started = time.monotonic()
        conn = pywbem.WBEMConnection(f"http://127.0.0.1:{server.ports['http']}",
                                     default_namespace=names.NAMESPACE, timeout=60)
        yield Rig(service, server, conn, run, off, starting, started)
        conn.close()
    finally:
        server.stop()
        for guid in made:
            with contextlib.suppress(Exception):
                service.host.turn_off(guid)
            with contextlib.suppress(Exception):
                service.host.undefine(guid)
        service.close()
        shutil.rmtree(root, ignore_errors=True)
