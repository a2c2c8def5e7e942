"""A real Service on qemu:///system with one storage root per test, and a source VM to move."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pywbem

from tests import hyperv
from vsms.app import Service
from vsms.client import LocalClient
from vsms.settings import Settings


def _ours(vs_name: str, paths: list[str], imported_from: str, root: Path) -> bool:
    token = root.name
    return token in vs_name or any(str(root) in p for p in [*paths, imported_from])


def cleanup(service: Service, root: Path) -> None:
    for vs in service.host.list_systems():
        if not _ours(vs.name, [m.path for m in vs.media], vs.imported_from, root):
            continue
        with contextlib.suppress(Exception):
            service.host.turn_off(vs.guid)
        with contextlib.suppress(Exception):
            service.host.undefine(vs.guid)


@contextlib.contextmanager
def served(roots: tuple[Path, ...], uri: str) -> Iterator[Service]:
    """A Service on ``uri`` with these storage roots (state in the first); at the end every VM
    the test made under them is undefined and the service closed."""
    svc = Service(Settings(state_dir=roots[0] / "state", storage_roots=roots, libvirt_uri=uri))
    try:
        yield svc
    finally:
        for root in roots:
            cleanup(svc, root)
        svc.close()


@pytest.fixture
def service(storage_root: Path, qemu_uri: str) -> Iterator[Service]:
    with served((storage_root,), qemu_uri) as svc:
        yield svc


@pytest.fixture
def client(service: Service) -> LocalClient:
    return LocalClient(service.registry)


@dataclass
class SourceVM:
    path: pywbem.CIMInstanceName
    name: str
    guid: str
    disk: str


@pytest.fixture
def source_vm(client: LocalClient, storage_root: Path) -> SourceVM:
    """A VM with 256 MiB, 2 processors, a dynamic VHD holding 8 MiB of data, and a NIC."""
    vms = storage_root / "vms"
    vms.mkdir(mode=0o755)
    disk = str(vms / "src-disk.vhd")
    hyperv.make_vhd(disk, "256M", data_mb=8)
    name = f"src-{storage_root.name}"
    vm = hyperv.define_vm(client, name, memory_mb=256, processors=2)
    hyperv.add_vhd(client, vm, disk)
    hyperv.add_nic(client, vm)
    return SourceVM(vm, name, str(vm.keybindings["Name"]), disk)


def export_dir(root: Path, name: str) -> Path:
    d = root / name
    d.mkdir(mode=0o755)
    os.chmod(d, 0o755)
    return d
