"""One real Service on qemu:///system served by a real WbemServer for the switch tests (module
scope: one service per test module), plus what the tests make: switches (libvirt networks whose
ElementName carries the module's token) and VMs, removed at the end."""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pywbem

from tests.conftest import QEMU_URI, fresh_dir
from tests.e2e import wbemflow
from tests.e2e.conftest import Served, remove_vms
from tests.wsman.conftest import free_port
from vsms.app import Service
from vsms.cim import names
from vsms.mapping import switch_paths as sp
from vsms.operations.switches import SwitchOps
from vsms.settings import Settings
from vsms.wbem.server import WbemServer

VIRSH = ["virsh", "-c", QEMU_URI]


def virsh(*args: str, check: bool = True) -> str:
    run = subprocess.run([*VIRSH, *args], capture_output=True, text=True, timeout=60)
    if check:
        assert run.returncode == 0, (args, run.stderr)
    return run.stdout


@dataclass
class Net:
    """The served service and a pywbem connection, with helpers for the switch service."""

    served: Served
    conn: pywbem.WBEMConnection
    switches: list[str] = field(default_factory=list)  # libvirt network names to remove

    @property
    def token(self) -> str:
        return self.served.token

    def call(self, method: str, **params: Any) -> tuple[int, dict[str, Any]]:
        return wbemflow.invoke(self.conn, sp.SERVICE, method, **params)

    def ok(self, method: str, **params: Any) -> dict[str, Any]:
        rv, out = self.call(method, **params)
        assert rv == 0, (method, rv, out)
        return out

    def create_switch(self, label: str) -> tuple[pywbem.CIMInstanceName, str]:
        name = str(uuid.uuid4()).upper()
        self.switches.append(name)
        out = self.ok("CreateSwitch", Name=name, FriendlyName=f"{label}-{self.token}",
                      NumLearnableAddresses=pywbem.Uint32(64), ScopeOfResidence="")
        path: pywbem.CIMInstanceName = out["CreatedVirtualSwitch"]
        return path, name

    def create_port(self, switch: pywbem.CIMInstanceName, label: str) -> pywbem.CIMInstanceName:
        out = self.ok("CreateSwitchPort", VirtualSwitch=switch,
                      Name=f"{label}-{uuid.uuid4().hex[:8]}", FriendlyName=label,
                      ScopeOfResidence="")
        port: pywbem.CIMInstanceName = out["CreatedSwitchPort"]
        return port

    def vm(self, name: str) -> pywbem.CIMInstanceName:
        return wbemflow.define_vm(self.conn, f"{name}-{self.token}", memory_mb=64,
                                  track=self.served.guids)

    def add_nic(self, vm: pywbem.CIMInstanceName, port: pywbem.CIMInstanceName | None, *,
                synthetic: bool = True) -> pywbem.CIMInstanceName:
        cls = names.SYNTHETIC_NIC_SD if synthetic else names.EMULATED_NIC_SD
        sub = ("Microsoft Synthetic Ethernet Port" if synthetic
               else "Microsoft Emulated Ethernet Port")
        nic = pywbem.CIMInstance(cls, properties={
            "ResourceType": pywbem.Uint16(10), "ResourceSubType": sub,
            "ElementName": "Network Adapter",
            "Connection": pywbem.CIMProperty(
                "Connection", [str(port.to_wbem_uri())] if port is not None else None,
                type="string", is_array=True)})
        return wbemflow.add_resource(self.conn, vm, nic)


@pytest.fixture(scope="module")
def net() -> Iterator[Net]:
    root = fresh_dir()
    settings = Settings(state_dir=root / "state", storage_roots=(root,), libvirt_uri=QEMU_URI)
    service = Service(settings)
    server = WbemServer(service.registry, listen="127.0.0.1", http_port=0, workers=4,
                        wsman_http_port=free_port())
    server.start()
    served = Served(service, server, root)
    conn = served.connect()
    n = Net(served, conn)
    try:
        yield n
    finally:
        conn.close()
        server.stop()
        service.jobs.shutdown(60)
        remove_vms(served)
        for name in n.switches:
            with contextlib.suppress(Exception):
                # undefined first (an active network becomes transient, gone once destroyed),
                # so no stopped switch network is ever left defined; a service starting
                # meanwhile leaves a stopped one stopped anyway (docs/switches.md, Start-up)
                virsh("net-undefine", name, check=False)
                virsh("net-destroy", name, check=False)
        # external switches' bridges this service left (a failed test): released and removed
        # as at the service's next start
        SwitchOps(service.host, settings.state_dir, "localhost").bridges.repair()
        service.close()
        subprocess.run(["rm", "-rf", str(root)], check=False)


def domain_xml(guid: str, *, inactive: bool = True) -> str:
    return virsh("dumpxml", *(["--inactive"] if inactive else []), guid)


def net_xml(name: str) -> str:
    return virsh("net-dumpxml", "--inactive", name)


def guid_of(vm: pywbem.CIMInstanceName) -> str:
    return str(vm.keybindings["Name"])


def exists(path: Path) -> bool:
    return path.exists()
