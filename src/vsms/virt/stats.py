"""Run-time statistics of every VM from one bulk libvirt call, and console screenshots.

``read_all`` asks libvirt once for the state of every domain (``virConnectGetAllDomainStats``)
and once for the domains with a saved state, as the VM list does; ``read_running`` asks once
more, for the statistics groups the caller needs (CPU time, memory) of this service's running
VMs only (``virDomainListGetStats``: the host's other domains cost nothing); ``combine`` joins
them with the cached models (``VirtHost.statistics``).
What libvirt has no statistic for comes from elsewhere without another libvirt call: when a
running VM's QEMU process started (its pid file in libvirt's run directory, then
``/proc/<pid>/stat``), which is the VM's uptime. Asking a guest agent (heartbeat, guest
operating system) and taking a screenshot are one call per running VM by nature; they run only
when the caller asks for them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import libvirt

from vsms.cim.enums import EnabledState
from vsms.errors import InvalidState, NotSupported
from vsms.model.vm import VirtualSystem
from vsms.virt.states import describe, steady_state

log = logging.getLogger(__name__)

#: the libvirt statistics groups, by what they give
STATE = libvirt.VIR_DOMAIN_STATS_STATE
CPU = libvirt.VIR_DOMAIN_STATS_CPU_TOTAL
BALLOON = libvirt.VIR_DOMAIN_STATS_BALLOON
SCREENSHOT_MAX = 64 * 1024 * 1024  # bytes: far above any real console (4K x 3 bytes = 25 MiB)
_RUNNING = (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_BLOCKED)
_ACTIVE = (*_RUNNING, libvirt.VIR_DOMAIN_PMSUSPENDED)  # a QEMU process exists
_NO_AGENT = (libvirt.VIR_ERR_AGENT_UNRESPONSIVE, libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED,
             libvirt.VIR_ERR_OPERATION_UNSUPPORTED, libvirt.VIR_ERR_NO_SUPPORT,
             libvirt.VIR_ERR_OPERATION_INVALID, libvirt.VIR_ERR_AGENT_UNSYNCED,
             libvirt.VIR_ERR_OPERATION_TIMEOUT)


@dataclass(frozen=True)
class DomainStats:
    """What libvirt (and the host) says about one VM now; None: not known (e.g. VM off)."""

    state: EnabledState
    active: bool  # a QEMU process exists (running, paused, ...)
    cpu_time_ns: int | None = None  # CPU time the VM used since its process started
    memory_kib: int | None = None  # memory the guest has now (balloon.current)
    started: float | None = None  # when its QEMU process started (epoch seconds)
    sampled: float = 0.0  # time.monotonic() when these were read
    agent: GuestFacts | None = None  # None: not asked


@dataclass(frozen=True)
class GuestFacts:
    """What the QEMU guest agent told (contact False: no agent answered)."""

    contact: bool
    os_name: str | None = None


def read_all(conn: Any) -> tuple[list[tuple[Any, dict[str, Any]]], set[str]]:
    """(domain, state statistics) of every domain, and the GUIDs of those with a saved state:
    two libvirt calls whatever the number of domains."""
    stats = conn.getAllDomainStats(STATE, 0)
    saved = {d.UUIDString().upper() for d in
             conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_MANAGEDSAVE)}
    return stats, saved


def read_running(conn: Any, raw: list[tuple[Any, dict[str, Any]]], ours: set[str],
                 groups: int) -> dict[str, dict[str, Any]]:
    """GUID -> statistics ``groups`` of each of ``ours`` that runs: one libvirt call for all of
    them (none when none runs or no group is asked), so the host's other domains cost
    nothing."""
    doms = [dom for dom, values in raw if values.get("state.state", 0) in _ACTIVE
            and dom.UUIDString().upper() in ours]
    if not groups or not doms:
        return {}
    # NOWAIT: what libvirt knows without asking QEMU (CPU time from cgroups, the current
    # memory it tracks); a busy QEMU monitor would otherwise hold the call up
    found = conn.domainListGetStats(doms, groups, libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT)
    return {dom.UUIDString().upper(): values for dom, values in found}


def combine(systems: Iterable[tuple[str, VirtualSystem]], raw: list[tuple[Any, dict[str, Any]]],
            running: dict[str, dict[str, Any]], saved: set[str], run_dir: Path | None, *,
            agent: bool = False) -> list[tuple[VirtualSystem, DomainStats]]:
    """Each cached model (GUID, model) that libvirt listed, with its statistics (``running``:
    those ``read_running`` gave). ``agent``: also ask the guest agent of every running VM (one
    call each)."""
    now = time.monotonic()
    by_guid = {dom.UUIDString().upper(): (dom, values) for dom, values in raw}
    out = []
    for guid, vs in systems:
        found = by_guid.get(guid)
        if found is None:
            continue
        dom, values = found
        code = values.get("state.state", 0)
        active = code in _ACTIVE
        more = running.get(guid, {})
        cpu = more.get("cpu.time")
        mem = more.get("balloon.current")
        out.append((vs, DomainStats(
            state=steady_state(code, guid in saved), active=active,
            cpu_time_ns=int(cpu) if active and cpu is not None else None,
            memory_kib=int(mem) if active and mem is not None else None,
            started=process_start(run_dir, dom.name()) if active else None,
            sampled=now, agent=guest_facts(dom) if agent and code in _RUNNING else None)))
    return out


def run_dir(uri: str) -> Path | None:
    """Where libvirt's QEMU driver keeps the pid files of running domains for ``uri``
    (None: not a local QEMU driver)."""
    parts = urlsplit(uri)
    if not parts.scheme.startswith("qemu") or parts.netloc not in ("", "localhost"):
        return None
    if parts.path.rstrip("/") == "/system":
        return Path("/run/libvirt/qemu")
    if parts.path.rstrip("/") == "/session":
        runtime = os.environ.get("XDG_RUNTIME_DIR")
        return Path(runtime) / "libvirt" / "qemu" / "run" if runtime else None
    return None


def _boot_time() -> float:
    with open("/proc/stat", encoding="ascii") as f:
        for line in f:
            if line.startswith("btime "):
                return float(line.split()[1])
    raise OSError("/proc/stat has no btime line")


def process_start(directory: Path | None, name: str) -> float | None:
    """When the QEMU process of the running domain ``name`` started (epoch seconds), from
    its pid file and ``/proc/<pid>/stat``; None when the host does not tell (another user's
    run directory, not Linux, the domain just stopped)."""
    if directory is None:
        return None
    try:
        pid = int((directory / f"{name}.pid").read_text(encoding="ascii").strip())
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22: starttime
        return _boot_time() + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def guest_facts(dom: Any) -> GuestFacts:
    """Ask the domain's QEMU guest agent for the guest's operating system: contact when it
    answers. A domain without an agent channel, or whose agent is not connected, fails at once
    in libvirt (no wait)."""
    try:
        info = dom.guestInfo(libvirt.VIR_DOMAIN_GUEST_INFO_OS, 0)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() not in _NO_AGENT:
            log.info("guest agent of %s: %s", dom.name(), exc)
        return GuestFacts(contact=False)
    name = info.get("os.pretty-name") or info.get("os.name")
    return GuestFacts(contact=True, os_name=str(name) if name else None)


def screenshot(dom: Any, state: EnabledState, label: str) -> tuple[str, bytes]:
    """(MIME type, image) of the first screen of a running domain (libvirt's
    virDomainScreenshot through a stream); InvalidState when it does not run."""
    if state not in (EnabledState.ENABLED, EnabledState.PAUSED):
        raise InvalidState(f"cannot take a picture of the screen of {label}: {describe(state)}; "
                           "start the virtual machine first")
    stream = dom.connect().newStream(0)
    chunks: list[bytes] = []
    size = 0

    def sink(_st: Any, data: bytes, _opaque: Any) -> int:
        nonlocal size
        size += len(data)
        if size > SCREENSHOT_MAX:
            raise NotSupported(f"the screen of {label} is larger than {SCREENSHOT_MAX} bytes")
        chunks.append(data)
        return len(data)
    try:
        mime = dom.screenshot(stream, 0, 0)
        stream.recvAll(sink, None)
        stream.finish()
    except BaseException:
        with contextlib.suppress(libvirt.libvirtError):
            stream.abort()  # recvAll aborts itself when the sink fails; other failures here
        raise
    return str(mime or ""), b"".join(chunks)
