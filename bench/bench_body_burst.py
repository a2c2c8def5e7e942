"""Memory of a running ``vsms serve`` under a burst of large request bodies (issue 9, finding 3).

N clients (default 60) each send a request announcing a body of SIZE bytes (default 16 MiB) and
then send the body as fast as the server takes it: once without credentials, once with an
administrator's. The server's resident memory (VmRSS) is printed before, at its highest during,
and 2.5 s after each burst, with the answers the clients got.

    .venv/bin/python bench/bench_body_burst.py                # starts its own vsms serve
    .venv/bin/python bench/bench_body_burst.py --rounds 3     # the pair of bursts 3 times
    .venv/bin/python bench/bench_body_burst.py --json out.json
    .venv/bin/python bench/bench_body_burst.py --pid PID --port PORT --user U --password-file F

The first form starts ``vsms serve`` on a fresh state directory and storage root under
/var/tmp (libvirt URI ``--libvirt-uri``, default qemu:///system) with a throw-away
administrator, and stops it at the end. The last form measures a server that is already
running (tests/security/test_outside_attack.py uses it so that the figure in docs/security.md
and the test's bound come from the same code).
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import secrets
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
_READY = re.compile(r"vsms serving .* \(http port (\w+), https port (\w+)\)")


def rss(pid: int) -> int:
    """Resident set size of ``pid`` in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def _client(port: int, size: int, auth: str | None, start: threading.Event,
            answers: list[str]) -> None:
    head = ("POST /cimom HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/xml; charset=\"utf-8\"\r\nCIMOperation: MethodCall\r\n"
            "CIMMethod: EnumerateInstanceNames\r\nCIMObject: root/virtualization\r\n"
            f"Content-Length: {size}\r\n")
    if auth is not None:
        head += f"Authorization: Basic {auth}\r\n"
    chunk = b"x" * (256 * 1024)
    start.wait()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
            s.sendall((head + "\r\n").encode())
            sent = 0
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                readable, writable, _ = select.select([s], [s] if sent < size else [], [], 5)
                if readable:
                    got = s.recv(64)
                    answers.append(got.split(b"\r\n")[0].decode("latin-1") or "closed")
                    return
                if writable:
                    sent += s.send(chunk[:size - sent])
            answers.append("no answer")
    except OSError as exc:
        answers.append(type(exc).__name__)


def burst(pid: int, port: int, *, clients: int = 60, size: int = 16 * MIB,
          auth: str | None = None) -> dict[str, Any]:
    """Run one burst against the server process ``pid`` listening for HTTP on ``port``."""
    before = rss(pid)
    start = threading.Event()
    answers: list[str] = []
    threads = [threading.Thread(target=_client, args=(port, size, auth, start, answers),
                                daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    peak = before
    start.set()
    began = time.monotonic()
    while any(t.is_alive() for t in threads):
        peak = max(peak, rss(pid))
        time.sleep(0.02)
    seconds = time.monotonic() - began
    time.sleep(2.5)  # the server closes the connections, frees and trims (once a second)
    after = rss(pid)
    return {"clients": clients, "body_bytes": size, "credentials": auth is not None,
            "seconds": round(seconds, 2), "rss_before": before, "rss_peak": peak,
            "rss_after": after, "answers": dict(Counter(answers))}


def _start(uri: str, work: Path) -> tuple[subprocess.Popen[bytes], int, str]:
    state = work / "state"
    password = secrets.token_urlsafe(16)
    subprocess.run([sys.executable, "-m", "vsms.cli.main", "user", "add", "bench", "--role",
                    "administrator", "--password-stdin", "--state-dir", str(state)],
                   input=(password + "\n").encode(), capture_output=True, timeout=60,
                   check=True)
    err = work / "serve.err"
    with open(err, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vsms.cli.main", "serve", "--state-dir", str(state),
             "--storage-root", str(work / "storage"), "--libvirt-uri", uri, "--http-port", "0",
             "--https-port", "0"], stdout=subprocess.DEVNULL, stderr=fh)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        m = _READY.search(err.read_text(errors="replace"))
        if m:
            return proc, int(m.group(1)), password
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"vsms serve did not start: {err.read_text(errors='replace')}")


def mib(n: int) -> str:
    return f"{n / MIB:7.1f} MiB"


def report(rows: list[dict[str, Any]]) -> None:
    print(f"{'credentials':<12} {'before':>11} {'peak':>11} {'after':>11}  answers")
    for r in rows:
        print(f"{'yes' if r['credentials'] else 'no':<12} {mib(r['rss_before'])} "
              f"{mib(r['rss_peak'])} {mib(r['rss_after'])}  {r['answers']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=60)
    ap.add_argument("--size-mib", type=int, default=16)
    ap.add_argument("--libvirt-uri", default="qemu:///system")
    ap.add_argument("--pid", type=int, help="measure this running server (with --port …)")
    ap.add_argument("--port", type=int, help="its HTTP port")
    ap.add_argument("--user", default="bench")
    ap.add_argument("--password-file", type=Path)
    ap.add_argument("--rounds", type=int, default=1,
                    help="repeat the pair of bursts (memory must not grow from round to round)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    work = None
    proc = None
    try:
        if args.pid is not None:
            if args.port is None or args.password_file is None:
                ap.error("--pid needs --port and --password-file")
            pid, port = args.pid, args.port
            password = args.password_file.read_text().strip()
        else:
            Path("/var/tmp").mkdir(exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix="vsms-bench-burst-", dir="/var/tmp"))
            work.chmod(0o755)
            proc, port, password = _start(args.libvirt_uri, work)
            pid = proc.pid
        token = base64.b64encode(f"{args.user}:{password}".encode()).decode()
        rows = []
        for _ in range(args.rounds):
            rows.append(burst(pid, port, clients=args.clients, size=args.size_mib * MIB))
            rows.append(burst(pid, port, clients=args.clients, size=args.size_mib * MIB,
                              auth=token))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(60)
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    report(rows)
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
