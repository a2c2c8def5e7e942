"""A real Service on qemu:///system served by a real WbemServer on 127.0.0.1 (a free port).

Everything a test defines is removed afterwards: VMs whose name carries the storage root's
token, whose disks or import directory lie under the root, or whose GUID the test recorded in
``Served.guids``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pywbem

from vsms.app import Service
from vsms.cim import names
from vsms.settings import Settings
from vsms.wbem.server import WbemServer


@dataclass
class Served:
    service: Service
    server: WbemServer
    root: Path
    guids: set[str] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.ports['http']}"

    @property
    def token(self) -> str:
        """A word unique to this test, to put in VM names."""
        return self.root.name

    def connect(self) -> pywbem.WBEMConnection:
        return pywbem.WBEMConnection(self.url, default_namespace=names.NAMESPACE, timeout=60)


def _ours(served: Served, name: str, paths: list[str], guid: str) -> bool:
    root = str(served.root)
    return (guid.upper() in served.guids or served.token in name
            or any(p.startswith(root) for p in paths))


def remove_vms(served: Served) -> None:
    host = served.service.host
    for vs in host.list_systems():
        if not _ours(served, vs.name, [m.path for m in vs.media] + [vs.imported_from], vs.guid):
            continue
        with contextlib.suppress(Exception):
            host.turn_off(vs.guid)
        with contextlib.suppress(Exception):
            host.undefine(vs.guid)


def start_served(root: Path, uri: str, domain_type: str = "auto") -> Served:
    """A Service on ``uri`` (storage root ``root``, state in ``root/state``; VMs of
    ``domain_type``) served by a WbemServer on 127.0.0.1 (no authentication)."""
    settings = Settings(state_dir=root / "state", storage_roots=(root,), libvirt_uri=uri,
                        domain_type=domain_type)
    service = Service(settings)
    try:
        server = WbemServer(service.registry, listen="127.0.0.1", http_port=0, workers=4)
        server.start()
    except BaseException:
        service.close()
        raise
    return Served(service, server, root)


@pytest.fixture
def served(storage_root: Path, qemu_uri: str) -> Iterator[Served]:
    s = start_served(storage_root, qemu_uri)
    try:
        yield s
    finally:
        s.server.stop()
        s.service.jobs.shutdown(60)  # a job a failed test left running ends (rolled back) first
        remove_vms(s)
        s.service.close()


@pytest.fixture
def conn(served: Served) -> Iterator[pywbem.WBEMConnection]:
    c = served.connect()
    try:
        yield c
    finally:
        c.close()
