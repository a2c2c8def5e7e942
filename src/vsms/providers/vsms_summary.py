"""GetSummaryInformation and GetVirtualSystemThumbnailImage of
Msvm_VirtualSystemManagementService (both answer at once, never with a job).

GetSummaryInformation reads every VM through one bulk libvirt call
(``VirtHost.statistics``: the statistics groups the requested values need), whatever the
number of VMs; values that cannot come in bulk cost one call per *running* VM and only when
asked for: thumbnails (5, 6, 7: a screenshot each), heartbeat and guest operating system
(104, 106: one guest-agent call each). Running jobs (108) come from the job manager,
transitional states (100, 110, 111) from ``ctx.transitions`` like Msvm_ComputerSystem.
NULL SettingData means every VM the caller may see: with a scoped user, only the VMs of her
scopes (``providers.context.visible_vm``).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pywbem

from vsms.auth.policy import Role
from vsms.cim import names
from vsms.cim.datetimes import to_cim
from vsms.cim.enums import (
    EnabledState,
    HealthState,
    HeartbeatStatus,
    OperationalStatus,
    ReturnCode,
    SummaryItem,
)
from vsms.errors import InvalidParameter, NotFound, VsmsError
from vsms.mapping import ids, thumbnail
from vsms.mapping.jobs import job_instance
from vsms.mapping.snapshots import snapshot_instances
from vsms.mapping.summary import LoadMeter, SummaryMemo
from vsms.mapping.system import status_descriptions
from vsms.model.vm import VirtualSystem
from vsms.providers.base import CIMTarget, ServiceProvider, method
from vsms.providers.common import Params, Result, param, parse_path
from vsms.providers.context import visible_vm
from vsms.virt import stats
from vsms.virt.stats import DomainStats

log = logging.getLogger(__name__)

S = SummaryItem
_O = Role.OPERATOR
_SETTING_CLASSES = {names.VSSD.lower(), names.VSGSD.lower(), "cim_virtualsystemsettingdata"}
_ACTIVE_JOB = frozenset((2, 3, 4, 5, 6))  # JobState New, Starting, Running, Suspended, Shutting
_RUNNING = (EnabledState.ENABLED, EnabledState.PAUSED)


class _RunClock:
    """When this service first saw each running VM whose process start the host does not tell
    (the fallback of UpTime)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, float] = {}

    def since(self, guid: str, now: float) -> float:
        with self._lock:
            return self._seen.setdefault(guid, now)

    def forget(self, guid: str) -> None:
        with self._lock:
            self._seen.pop(guid, None)


def _requested(raw: Any) -> list[SummaryItem]:
    """The known RequestedInformation values, in order; unknown ones are ignored (the page:
    200-299 are ignored; vsms ignores every value it does not know)."""
    if raw is None:
        return []
    values = raw if isinstance(raw, (list, tuple)) else [raw]
    out = []
    for v in values:
        try:
            item = SummaryItem(int(v))
        except (TypeError, ValueError):
            continue
        if item not in out:
            out.append(item)
    return out


def _targets(raw: Any, name: str = "SettingData") -> list[str] | None:
    """The VM GUIDs parameter ``name`` names, in order (None: NULL, every VM)."""
    if raw is None:
        return None
    array = isinstance(raw, (list, tuple))
    out = []
    for i, value in enumerate(raw if array else [raw]):
        where = f"{name}[{i}]" if array else name
        path = parse_path(value, where)
        if path.classname.lower() not in _SETTING_CLASSES:
            raise InvalidParameter(f"{where} must refer to an {names.VSSD}, not "
                                   f"{path.classname}; pass the settings of a virtual machine")
        iid = next((str(v) for k, v in path.keybindings.items() if k.lower() == "instanceid"),
                   None)
        if not iid:
            raise InvalidParameter(f"{where} ({path}) has no InstanceID key; pass the path of "
                                   f"an {names.VSSD}")
        try:
            guid, _ = ids.parse_system_id(iid)
        except InvalidParameter:
            raise InvalidParameter(f"{where}: {iid!r} is not the settings of a virtual "
                                   "machine (snapshots have no summary yet)") from None
        out.append(guid.upper())
    return out


class SummaryMethods(ServiceProvider):
    """GetSummaryInformation, GetVirtualSystemThumbnailImage."""

    @functools.cached_property
    def _load_meter(self) -> LoadMeter:
        return LoadMeter()

    @functools.cached_property
    def _run_clock(self) -> _RunClock:
        return _RunClock()

    @functools.cached_property
    def _summaries(self) -> SummaryMemo:
        return SummaryMemo()

    def summary_snapshots(self, vs: VirtualSystem) -> list[pywbem.CIMInstance]:
        """RequestedInformation 107: the Msvm_VirtualSystemSettingData of each snapshot of
        ``vs`` (SettingType 5), oldest first."""
        return [snapshot_instances(vs, snap)[0] for snap in vs.snapshots]

    @method("GetSummaryInformation", _O, params=("SettingData", "RequestedInformation"))
    def get_summary_information(self, target: CIMTarget, params: Params) -> Result:
        wanted = _requested(param(params, "RequestedInformation", required=False))
        targets = _targets(param(params, "SettingData", required=False))
        want = set(wanted)
        groups = (stats.CPU if want & {S.PROCESSOR_LOAD, S.PROCESSOR_LOAD_HISTORY} else 0) | \
            (stats.BALLOON if S.MEMORY_USAGE in want else 0)
        agent = bool(want & {S.HEARTBEAT, S.GUEST_OPERATING_SYSTEM})
        rows = {vs.guid.upper(): (vs, st) for vs, st in
                self.ctx.host.statistics(groups, agent=agent)}
        if targets is None:
            visible = visible_vm.get()
            targets = [g for g in rows if visible is None or visible(g)]
        missing = [g for g in targets if g not in rows]
        if missing:
            raise NotFound(f"SettingData names no virtual machine of this service: "
                           f"{', '.join(missing)}; pass the settings of existing virtual "
                           "machines, or NULL for all")
        self._forget_stopped(rows)
        jobs = self._running_jobs() if S.ASYNCHRONOUS_TASKS in want else {}
        moving = {g.upper(): t for g, t in self.ctx.transitions.snapshot().items()} \
            if want & {S.ENABLED_STATE, S.OPERATIONAL_STATUS, S.STATUS_DESCRIPTIONS} else {}
        size = next((thumbnail.SIZES[int(i)] for i in reversed(wanted)
                     if int(i) in thumbnail.SIZES), None)
        now = time.time()
        out = []
        for guid in targets:
            vs, st = rows[guid]
            values = self._values(want, vs, st, now)
            transition = moving.get(guid)
            if S.ENABLED_STATE in want:
                state = transition.enabled_state if transition is not None and \
                    transition.enabled_state is not None else st.state
                values["EnabledState"] = int(state)
            operational = [int(OperationalStatus.OK)]
            if transition is not None and transition.operational is not None:
                operational.append(int(transition.operational))
            if S.OPERATIONAL_STATUS in want:
                values["OperationalStatus"] = operational
            if S.STATUS_DESCRIPTIONS in want:
                values["StatusDescriptions"] = status_descriptions(operational)
            if S.ASYNCHRONOUS_TASKS in want:
                values["AsynchronousTasks"] = jobs.get(guid, [])
            if size is not None and st.state in _RUNNING:
                values["ThumbnailImage"] = self._thumbnail(guid, *size, quiet=True)
            out.append(self._summaries.instance(guid, values))
        self._summaries.keep_only(rows)
        return int(ReturnCode.COMPLETED), {"SummaryInformation": out}

    def _values(self, want: set[SummaryItem], vs: VirtualSystem, st: DomainStats,
                now: float) -> dict[str, Any]:
        runs = st.state in _RUNNING and st.active
        guid = vs.guid.upper()
        simple: dict[SummaryItem, Callable[[], Any]] = {
            S.NAME: lambda: guid,
            S.ELEMENT_NAME: lambda: vs.name,
            S.CREATION_TIME: lambda: to_cim(vs.created),
            S.NOTES: lambda: vs.notes,
            S.NUMBER_OF_PROCESSORS: lambda: vs.processors,
            S.HEALTH_STATE: lambda: int(HealthState.OK),
            S.MEMORY_USAGE: lambda: (st.memory_kib // 1024 if st.memory_kib is not None
                                     else vs.memory_mb) if runs else 0,
            S.UPTIME: lambda: self._uptime_ms(guid, st, now) if runs else 0,
            S.SNAPSHOTS: lambda: self.summary_snapshots(vs),
        }
        values = {_PROPERTY[item]: fn() for item, fn in simple.items() if item in want}
        if want & {S.PROCESSOR_LOAD, S.PROCESSOR_LOAD_HISTORY}:
            load, history = self._load_meter.sample(
                guid, cpu_ns=st.cpu_time_ns, vcpus=vs.processors, mono=st.sampled,
                started=st.started, now=now) if runs else (0, [])
            if S.PROCESSOR_LOAD in want:
                values["ProcessorLoad"] = load
            if S.PROCESSOR_LOAD_HISTORY in want:
                values["ProcessorLoadHistory"] = history
        if S.HEARTBEAT in want and runs:
            contact = st.agent is not None and st.agent.contact
            values["Heartbeat"] = int(HeartbeatStatus.OK if contact
                                      else HeartbeatStatus.NO_CONTACT)
        if S.GUEST_OPERATING_SYSTEM in want and runs and st.agent is not None:
            values["GuestOperatingSystem"] = st.agent.os_name
        return values

    def _uptime_ms(self, guid: str, st: DomainStats, now: float) -> int:
        started = st.started if st.started is not None else self._run_clock.since(guid, now)
        return max(0, int((now - started) * 1000))

    def _forget_stopped(self, rows: dict[str, tuple[VirtualSystem, DomainStats]]) -> None:
        stopped = [g for g in self._load_meter.tracked()
                   if g not in rows or not rows[g][1].active]
        self._load_meter.forget(stopped)
        for guid, (_, st) in rows.items():
            if not st.active:
                self._run_clock.forget(guid)

    def _running_jobs(self) -> dict[str, list[pywbem.CIMInstance]]:
        """VM GUID -> the jobs that affect it and have not finished (embedded instances)."""
        out: dict[str, list[pywbem.CIMInstance]] = {}
        for rec in self.ctx.jobs.records():
            if int(rec.state) not in _ACTIVE_JOB:
                continue
            for element in rec.affected:
                if element.classname.lower() != names.COMPUTER_SYSTEM.lower():
                    continue
                guid = next((v for k, v in element.keys.items() if k.lower() == "name"), "")
                inst = job_instance(rec)
                inst.path = None
                out.setdefault(guid.upper(), []).append(inst)
        return out

    def _thumbnail(self, guid: str, width: int, height: int, *, quiet: bool = False
                   ) -> bytes | None:
        try:
            mime, image = self.ctx.host.screenshot(guid)
            return thumbnail.thumbnail(mime, image, width, height)
        except VsmsError as err:
            if not quiet:
                raise
            log.info("no thumbnail of VM %s: %s", guid, err)
            return None

    @method("GetVirtualSystemThumbnailImage", _O,
            params=("TargetSystem", "WidthPixels", "HeightPixels"))
    def get_thumbnail_image(self, target: CIMTarget, params: Params) -> Result:
        guids = _targets(param(params, "TargetSystem"), "TargetSystem")
        assert guids is not None
        width = _dimension(params, "WidthPixels")
        height = _dimension(params, "HeightPixels")
        if width * height > thumbnail.MAX_PIXELS:
            raise InvalidParameter(f"a thumbnail of {width}x{height} pixels is too large: at "
                                   f"most {thumbnail.MAX_PIXELS} pixels (e.g. 1024x768)")
        data = self._thumbnail(guids[0], width, height)
        assert data is not None
        return int(ReturnCode.COMPLETED), {"ImageData": list(data)}


def _dimension(params: Params, name: str) -> int:
    value = param(params, name)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidParameter(f"{name} must be a positive number of pixels, got {value!r}")
    return int(value)


_PROPERTY: dict[SummaryItem, str] = {
    S.NAME: "Name", S.ELEMENT_NAME: "ElementName", S.CREATION_TIME: "CreationTime",
    S.NOTES: "Notes", S.NUMBER_OF_PROCESSORS: "NumberOfProcessors",
    S.HEALTH_STATE: "HealthState", S.MEMORY_USAGE: "MemoryUsage", S.UPTIME: "UpTime",
    S.SNAPSHOTS: "Snapshots",
}
