"""Unmodified WS-Man clients (Debian's wsl scripts, python-wsmanclient) against the real
``vsms serve`` of tests/wsman/conftest.py (qemu:///system, loopback, Basic over plain HTTP)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.wsman.conftest import WsServer, ws  # noqa: F401  (the module-scoped server fixture)

WMI = "http://schemas.microsoft.com/wbem/wsman/1/wmi/"


def wsl(server: WsServer, home: Path, tool: str, *args: str,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run one of the wsl scripts (``wslid``, ``wslenum``...) against the server: endpoint,
    user and password from the environment (WSENDPOINT, WSUSER, WSPASS), plain HTTP (WSNOSSL),
    no prompts (WSAUTOMATED), the response in ``home``/response.xml."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WS")}
    env.update(HOME=str(home), WSENDPOINT=f"127.0.0.1:{server.port}", WSUSER=server.served.user,
               WSPASS=server.served.password, WSNOSSL="1", WSAUTOMATED="1", KEEPHISTORY="0",
               OUTPREFIX=str(home), OUTLEVEL="1", IPINTERACTIVE="0")
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=home, env=env, check=False)
