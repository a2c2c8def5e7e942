"""A real ``vsms serve`` subprocess for the CLI and example tests, and the cleanup after it.

The server listens on 127.0.0.1 with ports chosen by the kernel (``--http-port 0``); the ports
are read from its start-up log line. Authentication is on: an administrator ``vsms-test`` with
a random password is added to the users file first (``vsms user add``). Everything a test
defines is found again afterwards by its storage root (disk paths, import directory) or by the
root's token in the VM name, and removed through libvirt.
"""

from __future__ import annotations

import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import fresh_dir

_READY = re.compile(r"vsms serving .* \(http port (\w+), https port (\w+)\)")
_WSMAN = re.compile(r"\(wsman http port (\w+), wsman https port (\w+)\)")
START_TIMEOUT = 60.0
USER = "vsms-test"


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    http_port: int
    https_port: int
    state_dir: Path
    root: Path
    stderr_path: Path
    password: str
    wsman_http_port: int | None = None  # None: WS-Man off (the default here, see start())
    wsman_https_port: int | None = None

    user = USER

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def serve_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "vsms.cli.main", "serve", *args]


def add_user(state_dir: Path, name: str = USER, role: str = "administrator") -> str:
    """Add a user to the users file in ``state_dir`` (``vsms user add``); its password."""
    password = secrets.token_urlsafe(16)
    subprocess.run([sys.executable, "-m", "vsms.cli.main", "user", "add", name, "--role", role,
                    "--password-stdin", "--state-dir", str(state_dir)], input=password + "\n",
                   text=True, capture_output=True, timeout=60, check=True)
    return password


def start(state_dir: Path, roots: Sequence[Path], uri: str, *extra: str,
          env: dict[str, str] | None = None, test_user: bool = True) -> Served:
    """Start ``vsms serve`` (the test user added on first start, unless ``test_user`` is
    false: then the state directory stays as the service makes it) and wait (at most
    START_TIMEOUT) until it listens."""
    state_dir.mkdir(parents=True, exist_ok=True)
    secret = state_dir / "test-password"
    if test_user and not secret.exists():
        secret.write_text(add_user(state_dir))
    stderr_path = state_dir.parent / f"serve-{uuid.uuid4().hex[:6]}.err"
    # WS-Man off unless a test turns it on (``extra`` comes later and wins): its default ports
    # are fixed (5985/5986), which concurrent test servers would fight over
    args = ["--state-dir", str(state_dir), "--libvirt-uri", uri, "--http-port", "0",
            "--https-port", "0", "--wsman-http-port", "0", "--wsman-https-port", "0"]
    for root in roots:
        args += ["--storage-root", str(root)]
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(serve_command(*args, *extra), stdout=subprocess.DEVNULL,
                                stderr=err, env=env)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        text = stderr_path.read_text(errors="replace")
        m = _READY.search(text)
        if m:
            w = _WSMAN.search(text)
            wsman = [int(p) if p.isdigit() else None for p in (w.groups() if w else ("", ""))]
            return Served(proc, int(m.group(1)), int(m.group(2)), state_dir,
                          Path(roots[0]), stderr_path,
                          secret.read_text() if test_user else "", wsman[0], wsman[1])
        if proc.poll() is not None:
            raise AssertionError(f"vsms serve exited with {proc.returncode}: "
                                 f"{stderr_path.read_text(errors='replace')}")
        time.sleep(0.05)
    stop(proc)
    raise AssertionError(f"vsms serve did not listen within {START_TIMEOUT} s")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 60) -> int:
    """Signal the server and wait for it to exit; returns its exit status."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


def remove_vms(uri: str, root: Path) -> None:
    """Turn off and undefine every VM that belongs to ``root`` (never deletes anything else)."""
    from vsms.virt.host import VirtHost

    with VirtHost(uri) as host:
        for vs in host.list_systems():
            mine = root.name in vs.name or str(root) in vs.imported_from or any(
                str(root) in m.path for m in vs.media)
            if not mine:
                continue
            for step in (host.turn_off, host.undefine):
                with suppress(Exception):
                    step(vs.guid)


def make_root() -> Path:
    """A fresh world-traversable storage root under the tests' root (as ``storage_root``)."""
    return fresh_dir()


@contextmanager
def serving(base: Path, state_dir: Path, roots: Sequence[Path], uri: str, *,
            test_user: bool = True) -> Iterator[Served]:
    """``vsms serve`` (see ``start``); afterwards it is stopped, the VMs found by ``base``
    removed and ``base`` deleted."""
    server = None
    try:
        server = start(state_dir, roots, uri, test_user=test_user)
        yield server
    finally:
        if server is not None:
            stop(server.proc)
        remove_vms(uri, base)
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def served_root(uri: str) -> Iterator[Served]:
    """A storage root of its own with a ``vsms serve`` on it; all removed afterwards."""
    root = make_root()
    with serving(root, root / "state", [root], uri) as server:
        yield server
