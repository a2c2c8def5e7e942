"""The Linux bridge of an external switch: vsms's own bridge, the host interface enslaved to it.

Connecting a bound host interface to a switch's port (ConnectSwitchPort, SetupSwitch) makes the
switch's libvirt network ``<forward mode='bridge'/><bridge name='BR'/>`` on a bridge vsms
creates (BR = the switch's bridge name) with the interface as its port; guests get taps on it.
The host's addresses are not moved. Each bridge vsms makes carries an ``ifalias`` naming the
state directory of the service that made it (``vsms:<state dir>``): vsms only ever removes
bridges with its own mark and releases interfaces from them.

The journal is the ``bridges`` list of ``host-ports.json``: before each change the record says
what is about to happen (``step`` ``bind`` or ``unbind``) and holds the interface's prior state
(master, up, MTU); ``bound`` once the binding is complete. ``repair`` at start converges every
record: a half-done bind or unbind ends unbound (interface released and restored, bridge
removed, the network isolated again), a complete one gets its bridge back after a reboot, and
a bridge of ours without its record is removed (its ports released first).
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from vsms.errors import InvalidParameter, InvalidState, OperationFailed, VsmsError
from vsms.model.switch import Switch
from vsms.virt import hostnet
from vsms.virt.networks import Networks, new_bridge_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BridgeRecord:
    ifname: str
    bridge: str
    network: str  # the switch's libvirt network
    step: str  # "bind", "bound" or "unbind"
    master: str = ""  # the interface's master before binding
    up: bool = False
    mtu: int = 0


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        run = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10,
                             check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise OperationFailed(f"cannot run ip {' '.join(args)}: {exc}") from None
    if check and run.returncode != 0:
        raise OperationFailed(f"ip {' '.join(args)} failed: {run.stderr.strip()} (vsms must "
                              "run as root to bind a host interface)")
    return run


def link(name: str) -> dict[str, Any] | None:
    """``ip -j -d link show`` of ``name`` (None: no such interface)."""
    run = _ip("-j", "-d", "link", "show", "dev", name, check=False)
    if run.returncode != 0:
        return None
    try:
        found = json.loads(run.stdout or "[]")
    except ValueError:
        return None
    return dict(found[0]) if found else None


def _bridges() -> list[dict[str, Any]]:
    run = _ip("-j", "-d", "link", "show", "type", "bridge", check=False)
    try:
        return [dict(x) for x in json.loads(run.stdout or "[]")]
    except ValueError:
        return []


def _ports_of(bridge: str) -> list[str]:
    run = _ip("-j", "link", "show", "master", bridge, check=False)
    try:
        return [str(x.get("ifname", "")) for x in json.loads(run.stdout or "[]")]
    except ValueError:
        return []


# The host steps, one function each (kill points go around them in the crash-safety tests).

def create_bridge(name: str, mark: str) -> None:
    _ip("link", "add", "name", name, "type", "bridge", "stp_state", "0", "forward_delay", "0")
    _ip("link", "set", "dev", name, "alias", mark)
    with contextlib.suppress(OSError):  # no host address until an internal port asks for one
        Path(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6").write_text("1")
    _ip("link", "set", "dev", name, "up")


def enslave_interface(ifname: str, bridge: str) -> None:
    _ip("link", "set", "dev", ifname, "master", bridge)
    _ip("link", "set", "dev", ifname, "up")


def release_interface(rec: BridgeRecord) -> None:
    info = link(rec.ifname)
    if info is None:
        return
    if info.get("master") == rec.bridge:
        _ip("link", "set", "dev", rec.ifname, "nomaster")
    if rec.mtu and int(info.get("mtu", 0)) != rec.mtu:
        _ip("link", "set", "dev", rec.ifname, "mtu", str(rec.mtu))
    _ip("link", "set", "dev", rec.ifname, "up" if rec.up else "down")


def remove_bridge(name: str, mark: str) -> None:
    info = link(name)
    if info is None or info.get("ifalias") != mark:
        return  # gone, or not ours: never touched
    _ip("link", "del", "dev", name)


class Bridges:
    """External switches' bridges of one service (its ``mark``) and their journal."""

    def __init__(self, nets: Networks, ports_file: hostnet.HostPortFile, mark: str) -> None:
        self.nets = nets
        self.ports_file = ports_file
        self.mark = mark

    def _journal(self, rec: BridgeRecord | None, ifname: str) -> None:
        with self.ports_file.lock:
            held = self.ports_file.load()
            held.bridges = [b for b in held.bridges if b.get("ifname") != ifname]
            if rec is not None:
                held.bridges.append(asdict(rec))
            self.ports_file.save(held)

    def records(self) -> list[BridgeRecord]:
        return [BridgeRecord(**b) for b in self.ports_file.load().bridges]

    def prior(self, ifname: str) -> dict[str, Any]:
        info = link(ifname)
        if info is None:
            raise InvalidParameter(f"host interface {ifname!r} does not exist")
        master = str(info.get("master", ""))
        if master:
            raise InvalidState(f"host interface {ifname} is a port of {master} already: "
                               f"release it first (ip link set {ifname} nomaster)")
        return {"master": master, "up": "UP" in info.get("flags", []),
                "mtu": int(info.get("mtu", 0))}

    def bind(self, sw: Switch, ifname: str, port: str) -> Switch:
        """Make ``sw`` an external switch on ``ifname`` (no VM of it runs)."""
        bridge = sw.bridge or new_bridge_name()
        rec = BridgeRecord(ifname, bridge, sw.network, "bind", **self.prior(ifname))
        self._journal(rec, ifname)

        def plug() -> None:
            create_bridge(bridge, self.mark)
            enslave_interface(ifname, bridge)
        try:
            saved = self.nets.save(replace(sw, external=ifname, external_port=port,
                                           bridge=bridge), rebuild=True, before_start=plug)
        except VsmsError:
            self.unbind(replace(sw, external=ifname, bridge=bridge), rec, start=sw.active)
            raise
        self._journal(replace(rec, step="bound"), ifname)
        return saved

    def _record(self, sw: Switch) -> BridgeRecord:
        """The journal's record of ``sw``'s binding; without one (a switch bound by an older
        vsms, with macvtap) the interface's current state is kept as it is."""
        found = next((r for r in self.records() if r.ifname == sw.external), None)
        if found is not None:
            return found
        info = link(sw.external) or {}
        return BridgeRecord(sw.external, sw.bridge, sw.network, "unbind",
                            up="UP" in info.get("flags", []), mtu=int(info.get("mtu", 0)))

    def unbind(self, sw: Switch, rec: BridgeRecord | None = None, *,
               start: bool = True) -> None:
        """Put ``sw`` back to an isolated switch: interface released and restored, bridge
        removed, the network restarted on libvirt's own bridge (started if inactive only
        with ``start``: a half-done bind or unbind stopped it; a switch an administrator
        stopped stays stopped)."""
        rec = replace(rec or self._record(sw), step="unbind")
        self._journal(rec, rec.ifname)
        current = self.nets.by_network(sw.network)
        if current is not None and current.made_here and current.external:
            self.nets.save(replace(current, external="", external_port=""), rebuild=True,
                           before_start=lambda: self._unplug(rec), start=start)
        else:
            self._unplug(rec)
            if current is not None and current.made_here and not current.active and start:
                self.nets.save(current, start=True)
        self._journal(None, rec.ifname)

    def delete(self, sw: Switch, remove: Callable[[], None]) -> None:
        """DeleteSwitch of an external switch: journal, ``remove`` the network, release."""
        rec = replace(self._record(sw), step="unbind")
        self._journal(rec, rec.ifname)
        try:
            remove()
        except VsmsError:  # the switch stays, bound as it was
            self._journal(replace(rec, step="bound"), rec.ifname)
            raise
        self._unplug(rec)
        self._journal(None, rec.ifname)

    def _unplug(self, rec: BridgeRecord) -> None:
        release_interface(rec)
        remove_bridge(rec.bridge, self.mark)

    def repair(self) -> bool:
        """At start: converge every journal record, then remove bridges of ours without one.
        True when a switch's network may have changed. A complete binding whose interface was
        taken off its bridge by hand is left so (``Switch`` status shows it: see
        ``operations.switches.SwitchOps.status``): vsms repairs what a crash or a reboot
        broke, not what an administrator changed."""
        changed = False
        for rec in self.records():
            try:
                sw = self.nets.by_network(rec.network)
                if rec.step != "bound" or sw is None or sw.external != rec.ifname:
                    changed = True
                    log.info("releasing host interface %s from bridge %s (%s)", rec.ifname,
                             rec.bridge, rec.step)
                    if sw is None:
                        self._unplug(rec)
                        self._journal(None, rec.ifname)
                    else:
                        self.unbind(sw, rec)
                elif link(rec.bridge) is None:  # a reboot: the bridge is gone, make it again
                    changed = True
                    create_bridge(rec.bridge, self.mark)
                    enslave_interface(rec.ifname, rec.bridge)
                    if not sw.active:  # libvirt's autostart failed without the bridge
                        self.nets.save(sw, start=True)
            except VsmsError:
                log.exception("could not repair the binding of %s", rec.ifname)
        known = {r.bridge for r in self.records()}
        for br in _bridges():
            name = str(br.get("ifname", ""))
            if br.get("ifalias") == self.mark and name not in known:
                log.info("removing bridge %s left without its record", name)
                try:
                    for port in _ports_of(name):
                        _ip("link", "set", "dev", port, "nomaster")
                    remove_bridge(name, self.mark)
                except VsmsError:
                    log.exception("could not remove bridge %s", name)
        return changed
