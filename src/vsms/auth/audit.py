"""The audit log: one JSON line per extrinsic method call and per job outcome.

``state_dir/audit.log``, mode 0600, opened for appending for every line (so an outside
rotation or removal is picked up at once) and rotated by size: when a line would take the file
past ``max_bytes`` it becomes ``audit.log.1`` (``.1`` -> ``.2`` ..., ``backups`` kept). A method
line holds time, user, role, source address, namespace, class, method, target, the arguments
(embedded instances summarised to their class and identifying properties, long strings cut,
anything whose name suggests a secret replaced by ``"[redacted]"``), the ReturnValue or the CIM
error, and for 4096 the job's InstanceID; a job line holds the job's final JobState, ErrorCode
and ErrorDescription. A write that fails is logged and never fails the call it records.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pywbem

from vsms.cim.embedded import parse_instance
from vsms.errors import VsmsError

log = logging.getLogger("vsms.audit")

MAX_STRING = 256
MAX_ITEMS = 32
SECRET = re.compile(r"pass(word|wd|phrase)?|secret|credential|token|private.?key", re.I)
#: properties that identify an embedded instance in the log (the rest is left out)
IDENTIFYING = ("InstanceID", "ElementName", "Name", "ResourceType", "ResourceSubType",
               "Connection", "HostResource", "VirtualQuantity", "ScopeOfResidence")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AuditLog:
    def __init__(self, path: Path, *, max_bytes: int = 10 * 1024 * 1024, backups: int = 5,
                 clock: Callable[[], datetime] = _utc_now) -> None:
        self.path = path
        self.max_bytes = max(4096, max_bytes)
        self.backups = max(0, backups)
        self._clock = clock
        self._lock = threading.Lock()

    def write(self, event: str, **fields: Any) -> None:
        """Append one line ``{"time", "event", **fields}``; never raises."""
        record = {"time": self._clock().strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "event": event,
                  **fields}
        line = (json.dumps(record, default=str, ensure_ascii=False) + "\n").encode("utf-8")
        try:
            with self._lock:
                self._append(line)
        except OSError as exc:
            log.error("cannot write the audit log %s: %s; lost record: %s", self.path,
                      exc.strerror or exc, line.decode("utf-8", "replace").strip())

    def _append(self, line: bytes) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size and size + len(line) > self.max_bytes:
            self._rotate()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, line)
        finally:
            os.close(fd)

    def _rotate(self) -> None:
        if self.backups == 0:
            os.unlink(self.path)
            return
        for i in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{i + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))

    def read(self) -> list[dict[str, Any]]:
        """The records of the current file (tests and tools)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [json.loads(x) for x in text.splitlines() if x.strip()]


# ---------------------------------------------------------------------- argument summaries
def summarise_arguments(params: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """The arguments of a call as they go into the log (see the module docstring)."""
    return {name: ("[redacted]" if SECRET.search(name) else summarise(value))
            for name, value in params}


def summarise(value: Any, depth: int = 0) -> Any:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, pywbem.CIMInstanceName):
        return _path(value)
    if isinstance(value, pywbem.CIMClassName):
        return value.classname
    if isinstance(value, pywbem.CIMInstance):
        return _instance(value, depth)
    if isinstance(value, (list, tuple)):
        items = [summarise(v, depth) for v in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            items.append(f"... {len(value) - MAX_ITEMS} more")
        return items
    text = str(value)
    if depth < 2 and text.lstrip().startswith("<") and "INSTANCE" in text[:2000].upper():
        try:
            return _instance(parse_instance(text, what="The argument"), depth)
        except VsmsError:
            return f"<unreadable embedded instance, {len(text)} characters>"
    return text if len(text) <= MAX_STRING else f"{text[:MAX_STRING]}... ({len(text)} chars)"


def _path(path: pywbem.CIMInstanceName) -> str:
    keys = ",".join(f"{k}={v}" for k, v in sorted(path.keybindings.items()))
    return f"{path.classname}.{keys}" if keys else path.classname


def _instance(inst: pywbem.CIMInstance, depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {"class": inst.classname}
    for name in IDENTIFYING:
        prop = inst.properties.get(name)
        if prop is not None and prop.value is not None:
            out[name] = summarise(prop.value, depth + 1)
    out["properties"] = len(inst.properties)
    return out
