"""Crash safety of the switch service (issue 14): SIGKILL during CreateSwitch, DeleteSwitch and
ConnectSwitchPort at every kill point around the libvirt steps, then a restarted service must
show the old state or the new one, never a half: no libvirt network without its record (our
metadata) or the reverse, a switch it lists is started and recorded ``running``, a DeleteSwitch
killed after its ``deleting`` record is finished, and a VM adapter is connected in its domain
XML exactly when its record names the port. The children and the restarted service share one
instance ID (the same vsms restarting): a switch's ``creating``/``deleting`` record is finished
only by its own instance.

``VSMS_KILLPOINTS=all`` tries every kill point of each scenario (N = 1, 2, … as counted by a
run that is not killed); by default one point per scenario, the one between its libvirt steps
that matters (CreateSwitch: network defined ``creating``, not started; DeleteSwitch: recorded
``deleting`` and stopped, not undefined; ConnectSwitchPort: the VM redefined, the call not
answered)."""

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
from tests.switches.killswitch import PORT
from vsms.app import Service
from vsms.operations.switchports import full
from vsms.settings import Settings
from vsms.virt.adopt import INSTANCE_FILE

pytestmark = pytest.mark.qemu
REPO = Path(__file__).resolve().parents[2]


def start_child(scenario: str, work: Path, kill_at: int, switch: str) -> subprocess.Popen[str]:
    (work / "state").mkdir(parents=True, mode=0o700)
    (work / "state" / INSTANCE_FILE).write_text(INSTANCE + "\n")
    return subprocess.Popen(
        [sys.executable, "-m", "tests.switches.killswitch", scenario, str(work), str(kill_at),
         QEMU_URI, switch], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")})


INSTANCE = str(uuid.uuid4()).upper()


def check(service: Service, scenario: str, work: Path, switch: str, kill_at: int) -> list[str]:
    """The invariants, seen by a restarted ``service`` (on the state of the ``connect`` child
    when there is one: its VM belongs to that instance); problems as text."""
    problems = []
    names_now = virsh("net-list", "--all", "--name").split()
    sw = service.host.networks.get(switch)
    if switch in names_now:
        if sw is None or not sw.made_here:
            problems.append(f"network {switch} without its record")
        elif not sw.active or sw.state != "running":
            problems.append(f"switch {switch} not started after the restart: {sw}")
    elif sw is not None:
        problems.append(f"record of {switch} without its network")
    if scenario == "create" and sw is not None and sw.friendly != f"kill {switch}":
        problems.append(f"switch {switch} has a damaged record: {sw}")
    if scenario == "delete" and kill_at > 1 and sw is not None:  # recorded deleting
        problems.append(f"the interrupted DeleteSwitch of {switch} is not finished: {sw}")
    if scenario == "delete" and sw is not None and len(sw.ports) != 1:
        problems.append(f"switch {switch} kept without its port: {sw.ports}")
    if scenario == "connect" and (work / "vm").exists():
        guid = (work / "vm").read_text()
        vs = service.host.get_system(guid)
        if vs is None or sw is None:
            problems.append(f"VM {guid} or switch {switch} is gone")
        else:
            (iface,) = ET.fromstring(virsh("dumpxml", "--inactive", guid)).findall(
                "devices/interface")
            on = iface.get("type") == "network"
            nic = vs.nics[0]
            if on != bool(nic.port) or (on and (nic.switch != switch or nic.switch_id
                                                != switch)):
                problems.append(f"adapter half connected: {iface.get('type')} / {nic}")
            if full(sw, [vs]).port(f"{PORT}-{switch}") is None:
                problems.append(f"the port of {switch} is lost: {sw.ports} / {nic}")
    return problems


def cleanup(work: Path, switch: str) -> None:
    if (work / "vm").exists():
        guid = (work / "vm").read_text()
        virsh("undefine", guid, check=False)
    virsh("net-undefine", switch, check=False)  # first: see conftest.py
    virsh("net-destroy", switch, check=False)


DEFAULT_POINTS = {"create": 2, "delete": 4, "connect": 2}
SCENARIOS = ("create", "delete", "connect")


def points(scenario: str, base: Path) -> list[int]:
    if os.environ.get("VSMS_KILLPOINTS", "").strip().lower() != "all":
        return [DEFAULT_POINTS[scenario]]
    switch = str(uuid.uuid4()).upper()
    work = base / f"count-{scenario}"
    work.mkdir()
    try:
        child = start_child(scenario, work, 0, switch)
        out, err = child.communicate(timeout=180)
    finally:
        cleanup(work, switch)
    assert child.returncode == 0 and out.startswith("DONE"), err
    return list(range(1, int(out.split()[1]) + 1))


def test_kill_points_leave_old_or_new_state() -> None:
    """Each round kills one child per scenario (run side by side), then one restarted service
    checks them all."""
    base = fresh_dir()
    try:
        todo = {s: points(s, base) for s in SCENARIOS}
        for round_ in range(max(len(v) for v in todo.values())):
            runs = {s: (base / f"{s}-{todo[s][round_]}", str(uuid.uuid4()).upper(),
                        todo[s][round_]) for s in SCENARIOS if round_ < len(todo[s])}
            try:
                children = {}
                for s, (work, switch, kill_at) in runs.items():
                    work.mkdir()
                    children[s] = start_child(s, work, kill_at, switch)
                for s, child in children.items():
                    out, err = child.communicate(timeout=180)
                    assert child.returncode == -9, (s, runs[s][2], out, err)
                    assert "\t" in (runs[s][0] / "hits.log").read_text()
                state = runs.get("connect", next(iter(runs.values())))[0] / "state"
                service = Service(Settings(state_dir=state, storage_roots=(base,),
                                           libvirt_uri=QEMU_URI))
                try:
                    for s, (work, switch, kill_at) in runs.items():
                        problems = check(service, s, work, switch, kill_at)
                        assert not problems, (s, kill_at, (work / "hits.log").read_text(),
                                              problems)
                finally:
                    service.close()
            finally:
                for work, switch, _ in runs.values():
                    cleanup(work, switch)
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)
