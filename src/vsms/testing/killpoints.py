"""Kill points: SIGKILL the current process at the N-th side effect (crash-safety tests only).

Product code never imports this module. A test's child process, which runs a real vsms
``Service``, builds ``points = KillPoints(n, log)`` and calls ``points.install()`` (the
``DEFAULT_TARGETS``) from its own entry script: every listed function is replaced, in that
process only, by a wrapper that counts a kill point just before and just after the call (and,
for copies, once at the first progress report, when the target holds part of the data). The
``n``-th kill point sends SIGKILL to the process itself, so the crash happens exactly there, with
no fake in the product path.

``n == 0`` never kills: such a run counts every kill point of a scenario. Every kill point
reached is appended to ``log`` as ``<number>\\t<label>`` (flushed before a kill), so the parent
knows where the child died and how many kill points a complete run has.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import signal
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

_HEX_RUN = re.compile(r"[0-9A-Fa-f]{8,}(?:-[0-9A-Fa-f]{4,})*")


@dataclass(frozen=True)
class Target:
    """A function to wrap: ``attr`` is ``name`` or ``Class.method`` inside ``module``.

    ``detail_arg`` names a positional argument (index, counting ``self``) shown in the label;
    ``progress`` adds a kill point at the first report of the ``progress`` keyword callback.
    """

    module: str
    attr: str
    detail_arg: int | None = None
    progress: bool = False

    @property
    def label(self) -> str:
        return f"{self.module}.{self.attr}" if self.module in ("os", "shutil") else self.attr


DEFAULT_TARGETS: tuple[Target, ...] = (
    # the SQLite store: job records, undo journal, consumed-directory marks
    Target("vsms.store.db", "Store.save_job"),
    Target("vsms.store.db", "Store.add_undo", detail_arg=2),
    Target("vsms.store.db", "Store.update_undo"),
    Target("vsms.store.db", "Store.clear_undo"),
    Target("vsms.store.db", "Store.mark_consumed"),
    Target("vsms.store.db", "Store.unmark_consumed"),
    # libvirt definitions
    Target("vsms.virt.host", "VirtHost.define"),
    Target("vsms.virt.host", "VirtHost.undefine"),
    Target("vsms.virt.host", "VirtHost.turn_off"),
    # disk copies (called through the module attribute) and conversions (imported by name)
    Target("vsms.disks.copy", "copy_file", progress=True),
    Target("vsms.disks.copy", "copy_and_hash", progress=True),
    Target("vsms.operations.import_", "convert_file", progress=True),
    # the export directory writer (called through the module attribute)
    Target("vsms.exportdir.writer", "write_exp"),
    Target("vsms.exportdir.writer", "write_config"),
    Target("vsms.exportdir.writer", "write_manifest"),
    # file-system changes, wherever they come from (rollbacks included)
    Target("os", "mkdir", detail_arg=0),
    Target("os", "rename", detail_arg=0),
    Target("os", "replace", detail_arg=1),
    Target("os", "link", detail_arg=1),
    Target("os", "unlink", detail_arg=0),
    Target("os", "rmdir", detail_arg=0),
    Target("shutil", "rmtree", detail_arg=0),
    Target("vsms.disks.anchor", "rename_noreplace", detail_arg=3),
    # snapshot merges (called through the module attribute)
    Target("vsms.disks.qemuimg", "overlay_commit", detail_arg=0),
    Target("vsms.disks.qemuimg", "overlay_rebacked", detail_arg=0),
    # export and import of a snapshot tree: chains rebased inside the export or onto the
    # copies, disks flattened (imported by name)
    Target("vsms.operations.export_snapshots", "rebase_relative", detail_arg=0),
    Target("vsms.operations.export_snapshots", "convert_file", progress=True),
    Target("vsms.operations.import_snapshots", "rebase_relative", detail_arg=0),
)


def _detail(value: Any) -> str:
    """A short, run-independent text for an argument: a path's last part, GUIDs masked."""
    text = os.path.basename(str(value).rstrip("/")) or str(value)
    return _HEX_RUN.sub("…", text)[:60]


class KillPoints:
    """Counts kill points across threads; the ``kill_at``-th one kills the process."""

    def __init__(self, kill_at: int, log: Path | None = None) -> None:
        if kill_at < 0:
            raise ValueError(f"kill_at must be 0 (never) or a positive number, got {kill_at}")
        self.kill_at = kill_at
        self._count = 0
        self._armed = True
        self._lock = threading.Lock()
        self._log: IO[str] | None = open(log, "a", encoding="utf-8") if log else None  # noqa: SIM115
        self._undo: list[Callable[[], None]] = []

    @property
    def count(self) -> int:
        """Kill points reached so far."""
        with self._lock:
            return self._count

    def hit(self, label: str) -> None:
        """One kill point: count it, log it, and SIGKILL the process if it is the chosen one."""
        with self._lock:
            if not self._armed:
                return
            self._count += 1
            if self._log is not None:
                self._log.write(f"{self._count}\t{label}\n")
                self._log.flush()
            if self._count == self.kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    def disarm(self) -> None:
        """Stop counting (e.g. before the child shuts its service down)."""
        with self._lock:
            self._armed = False
            if self._log is not None:
                self._log.close()
                self._log = None

    def wrap(self, fn: Callable[..., Any], label: str, *, detail_arg: int | None = None,
             progress: bool = False) -> Callable[..., Any]:
        """``fn`` with a kill point before and after each call (see ``Target``)."""

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            name = label
            if detail_arg is not None and detail_arg < len(args):
                name = f"{label}({_detail(args[detail_arg])})"
            if progress:
                kwargs["progress"] = self._progress_hook(name, kwargs.get("progress"))
            self.hit(f"before {name}")
            result = fn(*args, **kwargs)
            self.hit(f"after {name}")
            return result

        return wrapper

    def _progress_hook(self, name: str, inner: Callable[[int], None] | None
                       ) -> Callable[[int], None]:
        reported = threading.Event()

        def progress(done: int) -> None:
            if done > 0 and not reported.is_set():
                reported.set()
                self.hit(f"during {name}")
            if inner is not None:
                inner(done)

        return progress

    def install(self, targets: Iterable[Target] = DEFAULT_TARGETS) -> None:
        """Replace every target by its wrapper (in this process); ``uninstall`` restores."""
        for target in targets:
            owner: Any = importlib.import_module(target.module)
            *path, name = target.attr.split(".")
            for part in path:
                owner = getattr(owner, part)
            original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
            setattr(owner, name, self.wrap(original, target.label,
                                           detail_arg=target.detail_arg,
                                           progress=target.progress))
            self._undo.append(functools.partial(setattr, owner, name, original))

    def uninstall(self) -> None:
        """Put every wrapped function back, newest first."""
        while self._undo:
            self._undo.pop()()
