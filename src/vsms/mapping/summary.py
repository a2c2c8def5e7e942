"""Msvm_SummaryInformation: one VM's summary as GetSummaryInformation returns it, and the
processor-load meter behind ProcessorLoad / ProcessorLoadHistory.

``summary_instance`` writes every property of the class; those the caller did not ask for
(RequestedInformation) are NULL, as the reference page says. What vsms gives when a value is
"not available" (see docs/methods.md): a VM that does not run has ProcessorLoad, MemoryUsage
and UpTime 0, an empty ProcessorLoadHistory and NULL Heartbeat, GuestOperatingSystem and
ThumbnailImage; AllocatedGPU, MemoryAvailable and AvailableMemoryBuffer are always NULL
(no RemoteFX, no dynamic memory).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pywbem

from vsms.cim import names
from vsms.mapping.memo import InstanceMemo

#: every property of Msvm_SummaryInformation: (name, CIM type, array, embedded instance)
PROPERTIES: tuple[tuple[str, str, bool, bool], ...] = (
    ("Name", "string", False, False),
    ("ElementName", "string", False, False),
    ("EnabledState", "uint16", False, False),
    ("HealthState", "uint16", False, False),
    ("Notes", "string", False, False),
    ("NumberOfProcessors", "uint16", False, False),
    ("ThumbnailImage", "uint8", True, False),
    ("CreationTime", "datetime", False, False),
    ("ProcessorLoad", "uint16", False, False),
    ("ProcessorLoadHistory", "uint16", True, False),
    ("MemoryUsage", "uint64", False, False),
    ("MemoryAvailable", "sint32", False, False),
    ("AvailableMemoryBuffer", "sint32", False, False),
    ("Heartbeat", "uint16", False, False),
    ("UpTime", "uint64", False, False),
    ("GuestOperatingSystem", "string", False, False),
    ("OperationalStatus", "uint16", True, False),
    ("StatusDescriptions", "string", True, False),
    ("Snapshots", "string", True, True),
    ("AsynchronousTasks", "string", True, True),
    ("AllocatedGPU", "string", False, False),
)


def summary_instance(values: Mapping[str, Any]) -> pywbem.CIMInstance:
    """An Msvm_SummaryInformation (no path: it travels embedded) with ``values`` (property
    name -> plain value: int, str, CIMDateTime, bytes for ThumbnailImage, list of CIMInstance
    for the embedded arrays); every other property NULL."""
    props = []
    for name, cim_type, array, embedded in PROPERTIES:
        value = values.get(name)
        if isinstance(value, (bytes, bytearray)):
            value = list(value)
        props.append(pywbem.CIMProperty(name, value, type=cim_type, is_array=array,
                                        embedded_object="instance" if embedded else None))
    return pywbem.CIMInstance(names.SUMMARY_INFORMATION, properties=props)


def _frozen(value: Any) -> Any:
    return tuple(value) if isinstance(value, (list, bytearray)) else value


class SummaryMemo:
    """The last Msvm_SummaryInformation built for each VM and the values it was built from
    (thread-safe): a VM that does not run gives the same values request after request. The
    instances returned are shared between calls: treat them as read-only."""

    def __init__(self) -> None:
        self._memo = InstanceMemo()

    def instance(self, guid: str, values: Mapping[str, Any]) -> pywbem.CIMInstance:
        key = tuple((name, _frozen(value)) for name, value in values.items())
        return self._memo.get(guid, key, lambda *_: summary_instance(values))

    def keep_only(self, guids: Iterable[str]) -> None:
        self._memo.keep_only(guids)


@dataclass
class _Track:
    started: float | None  # process start (epoch s) the samples belong to
    mono: float  # time.monotonic() of the last sample
    cpu_ns: int
    load: int
    history: deque[int] = field(default_factory=lambda: deque(maxlen=LoadMeter.HISTORY))


class LoadMeter:
    """ProcessorLoad of each running VM from CPU-time deltas between requests (thread-safe).

    The first request for a VM gives its average load since its process started; later ones
    the load since the previous sample (a request within ``min_interval`` seconds of it
    repeats that value). Each new sample goes into the VM's history of the last
    :attr:`HISTORY` samples (ProcessorLoadHistory, oldest first); a VM that stops loses its
    history.
    """

    HISTORY = 100

    def __init__(self, min_interval: float = 0.5) -> None:
        self.min_interval = min_interval
        self._lock = threading.Lock()
        self._tracks: dict[str, _Track] = {}

    def sample(self, guid: str, *, cpu_ns: int | None, vcpus: int, mono: float,
               started: float | None, now: float) -> tuple[int, list[int]]:
        """(ProcessorLoad, ProcessorLoadHistory) of a running VM; ``mono`` is when ``cpu_ns``
        was read (time.monotonic), ``now`` the wall clock, ``started`` its process start."""
        if cpu_ns is None:
            return 0, []
        vcpus = max(1, vcpus)
        with self._lock:
            track = self._tracks.get(guid)
            if track is not None and (track.started != started or cpu_ns < track.cpu_ns):
                track = None  # restarted since: a new run, a new history
            if track is None:
                run_s = now - started if started is not None else 0.0
                load = _percent(cpu_ns, run_s, vcpus) if run_s > 0 else 0
                track = _Track(started, mono, cpu_ns, load)
                track.history.append(load)
                self._tracks[guid] = track
            elif mono - track.mono >= self.min_interval:
                track.load = _percent(cpu_ns - track.cpu_ns, mono - track.mono, vcpus)
                track.mono, track.cpu_ns = mono, cpu_ns
                track.history.append(track.load)
            return track.load, list(track.history)

    def forget(self, guids: Iterable[str]) -> None:
        """Drop the samples of VMs that stopped or vanished."""
        with self._lock:
            for guid in guids:
                self._tracks.pop(guid, None)

    def tracked(self) -> set[str]:
        with self._lock:
            return set(self._tracks)


def _percent(cpu_ns: int, seconds: float, vcpus: int) -> int:
    if seconds <= 0:
        return 0
    return max(0, min(100, round(cpu_ns / (seconds * 1e9 * vcpus) * 100)))
