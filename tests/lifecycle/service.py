"""A real service on qemu:///system for the life-cycle tests, driven like a WBEM client.

The parts are wired by ``vsms.app.Service``, the one composition root. Every VM a test defines
is recorded and removed at teardown.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pywbem

from vsms.app import Service
from vsms.cim import names
from vsms.cim.embedded import serialize_instance
from vsms.cim.enums import JobState
from vsms.operations.transitions import Transitions
from vsms.providers.registry import Registry
from vsms.settings import Settings
from vsms.virt.host import VirtHost

DEADLINE = 60.0


class Harness:
    """The registry a WBEM front end would call, plus the VMs defined through it."""

    def __init__(self, registry: Registry, host: VirtHost, transitions: Transitions) -> None:
        self.registry = registry
        self.host = host
        self.transitions = transitions
        self.ns = names.NAMESPACE
        self.defined: list[str] = []

    def vsms_path(self) -> pywbem.CIMInstanceName:
        found = self.registry.enumerate_instances(self.ns, names.VSMS)
        assert len(found) == 1 and found[0].path is not None
        path: pywbem.CIMInstanceName = found[0].path
        return path

    def vsms(self, method: str, **params: Any) -> tuple[int, dict[str, Any]]:
        rv, out = self.registry.invoke_method(self.ns, self.vsms_path(), method, params)
        if method == "DefineVirtualSystem" and out.get("DefinedSystem") is not None:
            self.defined.append(str(out["DefinedSystem"]["Name"]))
        return rv, out

    def invoke(self, path: pywbem.CIMInstanceName, method: str,
               **params: Any) -> tuple[int, dict[str, Any]]:
        return self.registry.invoke_method(self.ns, path, method, params)

    def get(self, path: pywbem.CIMInstanceName) -> pywbem.CIMInstance:
        return self.registry.get_instance(self.ns, path)

    def wait(self, job: pywbem.CIMInstanceName, timeout: float = DEADLINE) -> pywbem.CIMInstance:
        deadline = time.monotonic() + timeout
        while True:
            inst = self.get(job)
            if JobState(int(inst["JobState"])).finished:
                return inst
            assert time.monotonic() < deadline, f"job {job} did not finish in {timeout} s"
            time.sleep(0.05)

    def associators(self, path: pywbem.CIMInstanceName, **kw: Any) -> list[pywbem.CIMInstance]:
        return self.registry.associators(self.ns, path, **kw)

    def cleanup(self) -> None:
        for guid in self.defined:
            with contextlib.suppress(Exception):
                self.host.turn_off(guid)
            with contextlib.suppress(Exception):
                self.host.undefine(guid)


def text(inst: pywbem.CIMInstance) -> str:
    return serialize_instance(inst)


@contextlib.contextmanager
def running_service(storage_root: Path, state_dir: Path, uri: str) -> Iterator[Harness]:
    """The service's own composition root (``vsms.app.Service``) on these roots."""
    settings = Settings(state_dir=state_dir, storage_roots=(storage_root,), libvirt_uri=uri,
                        job_workers=2)
    svc = Service(settings)
    harness = Harness(svc.registry, svc.host, svc.context.transitions)
    try:
        yield harness
    finally:
        harness.cleanup()
        svc.close(timeout=DEADLINE)


def make_vhd(path: Path, size: str = "64M") -> None:
    subprocess.run(["qemu-img", "create", "-q", "-f", "vpc", "-o",
                    "subformat=dynamic,force_size=on", str(path), size], check=True, timeout=60)


def make_iso(path: Path) -> None:
    """A small file with an ISO 9660 primary volume descriptor signature."""
    data = bytearray(64 * 1024)
    data[16 * 2048:16 * 2048 + 6] = b"\x01CD001"
    path.write_bytes(bytes(data))
    path.chmod(0o644)
