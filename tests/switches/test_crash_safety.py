"""Crash safety of the switch service (issue 14): SIGKILL during CreateSwitch, DeleteSwitch and
ConnectSwitchPort at every kill point around the libvirt steps, then a restarted service must
show the old state or the new one, never a half: no libvirt network without its record (our
metadata) or the reverse, a switch it lists is started, and a VM adapter is connected in its
domain XML exactly when its record names the port.

``VSMS_KILLPOINTS=all`` tries every kill point of each scenario (N = 1, 2, … as counted by a
run that is not killed); by default one point per scenario, the one between its two libvirt
steps (CreateSwitch: network defined, not started; DeleteSwitch: stopped, not undefined;
ConnectSwitchPort: the VM redefined, the call not answered)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import QEMU_URI, fresh_dir
from tests.switches.conftest import virsh
from vsms.app import Service
from vsms.settings import Settings

pytestmark = pytest.mark.qemu
REPO = Path(__file__).resolve().parents[2]


def run_child(scenario: str, work: Path, kill_at: int, switch: str
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.switches.killswitch", scenario, str(work), str(kill_at),
         QEMU_URI, switch], cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")})


def check(scenario: str, work: Path, switch: str) -> list[str]:
    """The invariants, seen by a restarted service; problems as text."""
    problems = []
    service = Service(Settings(state_dir=work / "state", storage_roots=(work,),
                               libvirt_uri=QEMU_URI))
    try:
        names_now = virsh("net-list", "--all", "--name").split()
        sw = service.host.networks.get(switch)
        if switch in names_now:
            if sw is None or not sw.made_here:
                problems.append(f"network {switch} without its record")
            elif not sw.active:
                problems.append(f"switch {switch} not started after the restart")
        elif sw is not None:
            problems.append(f"record of {switch} without its network")
        if scenario == "create" and sw is not None and sw.friendly != f"kill {switch}":
            problems.append(f"switch {switch} has a damaged record: {sw}")
        if scenario == "delete" and sw is not None and len(sw.ports) != 1:
            problems.append(f"switch {switch} kept without its port: {sw.ports}")
        if scenario == "connect" and (work / "vm").exists():
            guid = (work / "vm").read_text()
            vs = service.host.get_system(guid)
            if vs is None:
                problems.append(f"VM {guid} is gone")
            else:
                (iface,) = ET.fromstring(virsh("dumpxml", "--inactive", guid)).findall(
                    "devices/interface")
                on = iface.get("type") == "network"
                nic = vs.nics[0]
                if on != bool(nic.port) or (on and (nic.switch != switch or nic.switch_id
                                                    != switch)):
                    problems.append(f"adapter half connected: {iface.get('type')} / {nic}")
    finally:
        service.close()
    return problems


def cleanup(work: Path, switch: str) -> None:
    if (work / "vm").exists():
        guid = (work / "vm").read_text()
        virsh("undefine", guid, check=False)
    virsh("net-destroy", switch, check=False)
    virsh("net-undefine", switch, check=False)


DEFAULT_POINTS = {"create": 2, "delete": 2, "connect": 2}


def points(scenario: str, base: Path) -> list[int]:
    if os.environ.get("VSMS_KILLPOINTS", "").strip().lower() != "all":
        return [DEFAULT_POINTS[scenario]]
    switch = str(uuid.uuid4()).upper()
    work = base / "count"
    work.mkdir()
    try:
        done = run_child(scenario, work, 0, switch)
    finally:
        cleanup(work, switch)
    assert done.returncode == 0 and done.stdout.startswith("DONE"), done.stderr
    return list(range(1, int(done.stdout.split()[1]) + 1))


@pytest.mark.parametrize("scenario", ["create", "delete", "connect"])
def test_kill_points_leave_old_or_new_state(scenario: str) -> None:
    base = fresh_dir()
    try:
        for kill_at in points(scenario, base):
            switch = str(uuid.uuid4()).upper()
            work = base / f"k{kill_at}"
            work.mkdir()
            try:
                child = run_child(scenario, work, kill_at, switch)
                assert child.returncode == -9, (kill_at, child.stdout, child.stderr)
                problems = check(scenario, work, switch)
                hits = (work / "hits.log").read_text()
                assert not problems, (kill_at, hits, problems)
                assert "\t" in hits  # the child died at a kill point of the operation
            finally:
                cleanup(work, switch)
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)
