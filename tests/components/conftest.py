"""One real ``vsms serve`` per test module (qemu:///system, loopback, authentication on) with
WS-Man, a reader user and a short InitiateShutdown timeout; ``restart()`` stops it and starts
it again on the same state directory and storage root."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pywbem

from tests.cli import served as srv
from tests.conftest import QEMU_URI
from tests.wsman.conftest import free_port
from vsms.cim import names

SHUTDOWN_TIMEOUT = 3


@dataclass
class Server:
    root: Path
    reader_password: str
    served: srv.Served

    @property
    def state(self) -> Path:
        return self.root / "state"

    def conn(self, user: str = srv.USER, password: str | None = None
             ) -> pywbem.WBEMConnection:
        return pywbem.WBEMConnection(
            self.served.url, (user, password or self.served.password),
            default_namespace=names.NAMESPACE, timeout=60)

    def reader(self) -> pywbem.WBEMConnection:
        return self.conn("ic-reader", self.reader_password)

    def restart(self) -> None:
        assert srv.stop(self.served.proc) == 0, self.served.stderr()
        self.served = _start(self.root)


def _start(root: Path) -> srv.Served:
    env = {**os.environ, "VSMS_SHUTDOWN_TIMEOUT_SECONDS": str(SHUTDOWN_TIMEOUT)}
    last: AssertionError | None = None
    for _ in range(3):
        try:
            return srv.start(root / "state", [root], QEMU_URI, "--wsman-http-port",
                             str(free_port()), env=env)
        except AssertionError as exc:  # a WS-Man port taken meanwhile: choose again
            last = exc
    assert last is not None
    raise last


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    root = srv.make_root()
    running: Server | None = None
    try:
        (root / "state").mkdir()
        reader = srv.add_user(root / "state", "ic-reader", "reader")
        running = Server(root, reader, _start(root))
        yield running
    finally:
        if running is not None:
            srv.stop(running.served.proc)
        srv.remove_vms(QEMU_URI, root)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def conn(server: Server) -> Iterator[pywbem.WBEMConnection]:
    c = server.conn()
    yield c
    c.close()
