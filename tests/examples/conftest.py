"""A ``vsms serve`` per module, a source VM, and a runner for the Python ports of the samples."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.conftest import Vsms
from tests.cli.served import Served, served_root
from tests.conftest import QEMU_URI

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with served_root(QEMU_URI) as server:
        yield server


@dataclass
class Run:
    rc: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


class Samples:
    """Runs ``examples/<name>.py`` against one server, in a working directory of its own."""

    def __init__(self, server: Served) -> None:
        self.server = server

    def __call__(self, name: str, *args: str, cwd: Path, timeout: float = 300) -> Run:
        env = {**os.environ, "VSMS_URL": self.server.url, "VSMS_USER": self.server.user,
               "VSMS_PASSWORD": self.server.password, "VSMS_SAMPLE_TIMEOUT": "240"}
        done = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), *args], cwd=cwd,
                              env=env, capture_output=True, text=True, timeout=timeout,
                              check=False)
        return Run(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def samples(served: Served) -> Samples:
    return Samples(served)


@pytest.fixture(scope="module")
def vsms(served: Served) -> Vsms:
    return Vsms.of(served)


@pytest.fixture(scope="module")
def source_vm(served: Served, vsms: Vsms) -> str:
    """The name of a VM with a 16 MiB dynamic VHD and a network adapter."""
    disk = served.root / "sample-source.vhd"
    vsms.ok("disk", "create", str(disk), "--size", "16M")
    name = f"sample-{served.root.name}"
    vsms.ok("vm", "create", name, "--memory", "64", "--disk", str(disk), "--nic")
    return name
