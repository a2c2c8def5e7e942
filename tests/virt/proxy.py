"""A unix-socket relay in front of libvirtd, for observing and breaking one client's connection.

Clients connect with ``qemu+unix:///system?socket=<proxy.path>``. The relay counts the RPC calls
the client sends (messages of libvirt's REMOTE program of type CALL, keep-alives excluded), can
cut every relayed connection at once (what a client sees when libvirtd restarts) and can refuse
new connections for a while (libvirtd not yet back).
"""

from __future__ import annotations

import os
import select
import socket
import struct
import threading
from contextlib import suppress
from pathlib import Path

LIBVIRT_SOCKET = "/run/libvirt/libvirt-sock"
REMOTE_PROGRAM = 0x20008086
CALL = 0


class LibvirtProxy:
    def __init__(self, path: Path, target: str = LIBVIRT_SOCKET) -> None:
        self.path = path
        self.target = target
        self.calls = 0
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._stop = threading.Event()
        self._refusing = threading.Event()
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        self._listener.listen(8)
        self._thread = threading.Thread(target=self._accept, daemon=True, name="libvirt-proxy")
        self._thread.start()

    @property
    def uri(self) -> str:
        return f"qemu+unix:///system?socket={self.path}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._listener], [], [], 0.1)
            if not ready:
                continue
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._refusing.is_set():
                client.close()
                continue
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target)
            with self._lock:
                self._pairs.append((client, upstream))
            threading.Thread(target=self._relay, args=(client, upstream), daemon=True).start()

    def _count(self, buf: bytearray) -> None:
        while len(buf) >= 4:
            (length,) = struct.unpack(">I", buf[:4])
            if len(buf) < length:
                return
            program, _version, _proc, mtype = struct.unpack(">IIII", buf[4:20])
            if program == REMOTE_PROGRAM and mtype == CALL:
                with self._lock:
                    self.calls += 1
            del buf[:length]

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        pending = bytearray()
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([client, upstream], [], [], 0.1)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is client:
                        pending += data
                        self._count(pending)
                        upstream.sendall(data)
                    else:
                        client.sendall(data)
        except OSError:
            return
        finally:
            for s in (client, upstream):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def cut(self) -> None:
        """Break every relayed connection, as a libvirtd restart does."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for s in pair:
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def refuse(self, on: bool) -> None:
        """While on, new connections are closed at once (libvirtd is down)."""
        if on:
            self._refusing.set()
        else:
            self._refusing.clear()

    def close(self) -> None:
        self._stop.set()
        self.cut()
        self._listener.close()
        self._thread.join(timeout=5)
        if self.path.exists():
            os.unlink(self.path)
