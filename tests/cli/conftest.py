"""One ``vsms serve`` per test module on its own storage root, and a runner for ``vsms``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.cli.served import Served, served_root
from tests.conftest import QEMU_URI


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with served_root(QEMU_URI) as server:
        yield server


@dataclass
class Result:
    rc: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class Vsms:
    """Runs the ``vsms`` command against one server, as a subprocess (with the server's test
    user's credentials, unless ``creds`` is None)."""

    def __init__(self, url: str, creds: tuple[str, str] | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.url = url
        self.creds = creds
        self.env = env  # the whole environment of the command (None: this process's)

    @classmethod
    def of(cls, server: Served, *, https: bool = False) -> Vsms:
        return cls(server.https_url if https else server.url, (server.user, server.password))

    def __call__(self, *args: str, timeout: float = 180) -> Result:
        # "--password=…": a random password may begin with "-", which argparse would take for
        # an option when given as a separate argument
        login = ([f"--user={self.creds[0]}", f"--password={self.creds[1]}"] if self.creds
                 else [])
        done = subprocess.run([sys.executable, "-m", "vsms.cli.main", "--url", self.url, *login,
                               *args], capture_output=True, text=True, timeout=timeout,
                              check=False, env=self.env)
        return Result(done.returncode, done.stdout, done.stderr)

    def ok(self, *args: str) -> Result:
        res = self(*args)
        assert res.rc == 0, (args, res.rc, res.out, res.err)
        return res


@pytest.fixture(scope="module")
def vsms(served: Served) -> Vsms:
    return Vsms.of(served)
