"""Running pywbemcli and sblim wbemcli as subprocesses, and what both client tests share."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pywbem

from tests.e2e import wbemflow
from tests.e2e.conftest import Served
from vsms.cim.enums import JobState

PYWBEMCLI = str(Path(sys.executable).with_name("pywbemcli"))
CLIENT_TIMEOUT = 60.0
JOB_TIMEOUT = 120.0
_JOB_STATE = re.compile(r"JobState\s*=\s*(\d+)")


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a client with a clean HOME (no pywbemcli connection files, no CA overrides)."""
    drop = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYWBEMCLI") and k not in drop}
    env["HOME"] = str(cwd)
    return subprocess.run(args, capture_output=True, text=True, timeout=CLIENT_TIMEOUT, cwd=cwd,
                          env=env, check=False)


def exported_vm(served: Served, conn: pywbem.WBEMConnection, exports: int,
                ) -> tuple[pywbem.CIMInstanceName, list[Path]]:
    """A VM with a VHD and a NIC, exported ``exports`` times; its path and the directories to
    import (each can be imported in place once)."""
    name = f"src-{served.token}"
    vm = wbemflow.vm_with_disk(conn, served.root, name)
    dirs = []
    for n in range(exports):
        target = served.root / f"exp{n}"
        wbemflow.export(conn, vm, target)
        dirs.append(target / name)
    return vm, dirs


def follow(show_job: Callable[[], str], what: str) -> str:
    """Poll a job through a client (``show_job`` returns the client's rendering of the job)
    until its JobState says it has finished; return that last rendering."""
    deadline = time.monotonic() + JOB_TIMEOUT
    while True:
        text = show_job()
        state = job_state(text)
        if JobState(state).finished:
            return text
        assert time.monotonic() < deadline, f"{what} still in JobState {state}"
        time.sleep(0.1)


def job_state(text: str) -> int:
    """The JobState in a client's rendering of a job instance (MOF or wbemcli's key=value)."""
    m = _JOB_STATE.search(text)
    assert m is not None, text
    return int(m.group(1))
