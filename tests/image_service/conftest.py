"""One real Service on qemu:///system for the whole module (its storage root under /var/tmp),
a folder of its own per test, and helpers that write and read disk contents with qemu-io."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pywbem

from tests.conftest import QEMU_URI, fresh_dir
from vsms.app import Service
from vsms.cim import names
from vsms.cim.enums import ReturnCode
from vsms.client import LocalClient
from vsms.settings import Settings

DEADLINE = 60.0
MIB = 1024 * 1024
FMT = {".vhd": "vpc", ".vhdx": "vhdx", ".qcow2": "qcow2", ".raw": "raw"}


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    path = fresh_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def service(root: Path) -> Iterator[Service]:
    state = fresh_dir()
    svc = Service(Settings(state_dir=state / "state", storage_roots=(root,),
                           libvirt_uri=QEMU_URI, job_workers=2))
    try:
        yield svc
    finally:
        svc.close(timeout=DEADLINE)
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
def client(service: Service) -> LocalClient:
    return LocalClient(service.registry)


@pytest.fixture
def work(root: Path, request: pytest.FixtureRequest) -> Path:
    """A folder of this test's own inside the storage root."""
    path: Path = root / str(request.node.name)[:40]
    path.mkdir(mode=0o755)
    return path


def fmt(path: str | Path) -> str:
    return FMT[Path(path).suffix]


def make(path: Path, size: int, *, fixed: bool = False, backing: Path | None = None) -> Path:
    args = ["qemu-img", "create", "-q", "-f", fmt(path)]
    if backing is not None:
        args += ["-b", str(backing), "-F", fmt(backing)]
    elif fmt(path) in ("vpc", "vhdx"):
        sub = "fixed" if fixed else "dynamic"
        args += ["-o", f"subformat={sub}" + (",force_size=on" if fmt(path) == "vpc" else "")]
    args.append(str(path))
    if backing is None:
        args.append(str(size))
    subprocess.run(args, check=True, timeout=60)
    return path


def qemu_io(path: Path, *commands: str) -> str:
    args = ["qemu-io", "-f", fmt(path)]
    for c in commands:
        args += ["-c", c]
    out = subprocess.run([*args, str(path)], check=True, capture_output=True, text=True,
                         timeout=60).stdout
    return out


def holds(path: Path, pattern: int, offset: int, length: int) -> bool:
    """qemu-io read -P: the guest sees ``pattern`` bytes there."""
    out = qemu_io(path, f"read -P {pattern:#x} {offset} {length}")
    return "Pattern verification failed" not in out and "read " in out


def info(path: Path) -> dict[str, Any]:
    out = subprocess.run(["qemu-img", "info", "-U", "-f", fmt(path), "--output=json",
                          str(path)], check=True, capture_output=True, text=True,
                         timeout=60).stdout
    data: dict[str, Any] = json.loads(out)
    return data


def same(a: Path, b: Path) -> bool:
    """Same virtual size and qemu-img compare: identical guest contents."""
    if info(a)["virtual-size"] != info(b)["virtual-size"]:
        return False
    r = subprocess.run(["qemu-img", "compare", "-q", "-U", "-f", fmt(a), "-F", fmt(b), str(a),
                        str(b)], capture_output=True, text=True, timeout=120)
    assert r.returncode in (0, 1), r.stderr
    return r.returncode == 0


def run(client: LocalClient, method: str, **params: Any) -> pywbem.CIMInstance:
    """Invoke; the method must start a job; the finished Msvm_StorageJob."""
    rv, out, job = client.run(names.IMAGE_SERVICE, method, timeout=DEADLINE, **params)
    assert rv == ReturnCode.JOB_STARTED, (rv, out.get("ErrorDescription"))
    assert job is not None and out["Job"].classname == names.STORAGE_JOB
    return job


def refused(client: LocalClient, method: str, **params: Any) -> tuple[int, str]:
    """Invoke; the method must answer at once without a job: (ReturnValue, ErrorDescription)."""
    rv, out = client.invoke(names.IMAGE_SERVICE, method, **params)
    assert rv not in (ReturnCode.JOB_STARTED, ReturnCode.COMPLETED), (method, params)
    assert not out.get("Job")
    return rv, str(out.get("ErrorDescription", ""))


def files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def disk_type(client: LocalClient, path: Path) -> int:
    """GetVirtualHardDiskInfo's Type: 2 fixed, 3 dynamic, 4 differencing."""
    from vsms.cim.embedded import parse_instance
    rv, out = client.invoke(names.IMAGE_SERVICE, "GetVirtualHardDiskInfo", Path=str(path))
    assert rv == ReturnCode.COMPLETED, out
    return int(parse_instance(out["Info"])["Type"])
