"""A real Service behind a WbemServer with authentication and a users file (roles, per-VM
scopes): the set-up the scoped-user tests of several areas share (tenancy, WS-Man, snapshots,
switches). Each module names its users; the VMs a test defines carry ``root.name`` in their
names, and ``remove_vms`` removes exactly those."""

from __future__ import annotations

import contextlib
import shutil
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pywbem

from tests.conftest import QEMU_URI, fresh_dir
from tests.e2e import wbemflow
from vsms.app import Service
from vsms.auth.policy import Role
from vsms.auth.setup import audit_from_settings, authenticator_from_settings
from vsms.auth.users import UsersFile
from vsms.cim import names
from vsms.settings import Settings
from vsms.wbem.server import WbemServer

User = tuple[str, Role, str | None]  # name, role, scope (None: the role everywhere)


@dataclass
class AuthServed:
    service: Service
    server: WbemServer
    root: Path
    password: str  # every user's

    def connect(self, user: str, timeout: float | None = None) -> pywbem.WBEMConnection:
        """A pywbem connection (CIM-XML over HTTP on loopback) as ``user``."""
        return pywbem.WBEMConnection(f"http://127.0.0.1:{self.server.ports['http']}",
                                     (user, self.password), default_namespace=names.NAMESPACE,
                                     timeout=timeout)

    def remove_vms(self) -> None:
        """Undefine the VMs whose names carry this set-up's token (``root.name``)."""
        for vs in self.service.host.list_systems():
            if self.root.name in vs.name:
                with contextlib.suppress(Exception):
                    self.service.host.undefine(vs.guid)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def auth_served(password: str, users: Sequence[User], *, workers: int = 4,
                wsman: bool = False) -> Iterator[AuthServed]:
    """Start it (WS-Man on HTTP too when ``wsman``); on exit stop it, close the service and
    remove its folder (the caller removes what it defined first, e.g. ``remove_vms``)."""
    root = fresh_dir()
    settings = Settings(state_dir=root / "state", storage_roots=(root,), libvirt_uri=QEMU_URI)
    users_file = UsersFile(settings.users_file)
    for name, role, scope in users:
        users_file.add(name, role, password, scope=scope)
    service = Service(settings)
    server = WbemServer(service.registry, http_port=0, workers=workers,
                        auth=authenticator_from_settings(settings),
                        audit=audit_from_settings(settings),
                        wsman_http_port=_free_port() if wsman else None)
    server.start()
    try:
        yield AuthServed(service, server, root, password)
    finally:
        server.stop()
        service.close()
        shutil.rmtree(root, ignore_errors=True)


def define_in_scope(conn: pywbem.WBEMConnection, name: str, scope: str
                    ) -> pywbem.CIMInstanceName:
    """DefineVirtualSystem of a VM named ``name`` residing in ``scope`` ("" for none)."""
    gsd = pywbem.CIMInstance(names.VSGSD, properties={"ElementName": name,
                                                       "ScopeOfResidence": scope})
    out = wbemflow.completed(conn, *wbemflow.invoke(conn, names.VSMS, "DefineVirtualSystem",
                                                    SystemSettingData=gsd))
    vm: pywbem.CIMInstanceName = out["DefinedSystem"]
    return vm
