"""The test guest's serial console, read from the COM port's Unix socket, and the address the
guest's NIC takes. Product code never imports this module.

``Console(path)`` connects as soon as QEMU has made the socket (it retries until then, so start
it before the VM) and keeps every ``vsms-guest:`` line the guest prints, with the time it
arrived; ``wait(pattern)`` returns the first line matching (``since=n``: among the lines after
the first ``n``), ``send(line)`` types on the console, and ``ask(command, pattern)`` types a
command and returns the first line matching that the guest printed after it (the commands the
guest's init reads once ready, see ``vsms.testing.guestinit``).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
import time
from pathlib import Path

from vsms.testing.guestinit import LINE_PREFIX

BOOT_TIMEOUT = 420.0  # s: several TCG guests on two shared cores


def link_local(mac: str) -> str:
    """The EUI-64 IPv6 link-local address the guest kernel derives from ``mac``."""
    b = [int(x, 16) for x in mac.split(":")]
    eui = [b[0] ^ 0x02, b[1], b[2], 0xFF, 0xFE, b[3], b[4], b[5]]
    return str(ipaddress.IPv6Address(bytes([0xFE, 0x80] + [0] * 6 + eui)))


class Console:
    """Reads a COM port's Unix socket from the moment QEMU creates it; keeps the guest's
    ``vsms-guest:`` lines with the time each arrived."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[tuple[float, str]] = []
        self.closed = False
        self._sock: socket.socket | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        sock = None
        while not self._stop.is_set() and sock is None:
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(str(self.path))
                sock = s
            except OSError:
                s.close()
                time.sleep(0.01)
        if sock is None:
            return
        self._sock = sock
        buf = b""
        sock.settimeout(0.5)
        with sock:
            while not self._stop.is_set():
                try:
                    chunk = sock.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if not chunk:
                    break
                buf += chunk
                *done, buf = buf.split(b"\n")
                now = time.monotonic()
                with self._cond:
                    for raw in done:
                        text = raw.decode(errors="replace")
                        at = text.find(LINE_PREFIX)
                        if at >= 0:
                            self.lines.append((now, text[at + len(LINE_PREFIX):].strip()))
                    self._cond.notify_all()
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def wait(self, pattern: str, timeout: float = BOOT_TIMEOUT, since: int = 0
             ) -> tuple[float, re.Match[str]]:
        """The first line matching ``pattern`` (time, match) among the lines after the first
        ``since``; fails after ``timeout``."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for at, line in self.lines[since:]:
                    found = rx.fullmatch(line)
                    if found:
                        return at, found
                left = deadline - time.monotonic()
                assert left > 0 and not self.closed, (
                    f"{self.path.name}: no line {pattern!r} (closed={self.closed}); got "
                    f"{[line for _, line in self.lines]}")
                self._cond.wait(min(left, 1.0))

    def send(self, line: str) -> None:
        """Type ``line`` on the guest's console."""
        assert self._sock is not None, f"{self.path.name}: not connected"
        self._sock.sendall(line.encode() + b"\n")

    def ask(self, command: str, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        """Type ``command`` and return the first line matching ``pattern`` printed after it."""
        with self._cond:
            since = len(self.lines)
        self.send(command)
        return self.wait(pattern, timeout, since)[1]

    def text(self) -> list[str]:
        with self._cond:
            return [line for _, line in self.lines]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
