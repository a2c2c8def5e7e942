"""The settings of the virtual system management service (ModifyServiceSettings), persisted as
``state_dir/service-settings.json``.

The file is replaced atomically (temporary file, fsync, rename, fsync of the directory), so a
crash leaves the old settings or the new ones. A value never set is absent from the file and
reads as its default: the first storage root for DefaultExternalDataRoot, ``<first
root>/Virtual Machines`` for DefaultVirtualHardDiskPath, Hyper-V's 00155D000000-00155DFFFFFF
for the MAC address range.

A file that cannot be read (damaged by hand) is reported, not ignored: every reader raises
SystemNotAvailable naming the file and the fix (delete it to return to the defaults).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from vsms.errors import OperationFailed, SystemNotAvailable

FILE_NAME = "service-settings.json"
MIN_MAC = "00155D000000"
MAX_MAC = "00155DFFFFFF"


@dataclass(frozen=True)
class ServiceSettings:
    primary_owner_name: str = "Administrators"
    primary_owner_contact: str = ""
    scope_of_residence: str = ""
    default_external_data_root: str = ""  # "" = the first storage root
    default_virtual_hard_disk_path: str = ""  # "" = <first storage root>/Virtual Machines
    minimum_mac_address: str = MIN_MAC
    maximum_mac_address: str = MAX_MAC
    numa_spanning_enabled: bool = True
    bios_lock_string: str = ""


_LOCK = threading.Lock()


def _path(state_dir: Path) -> Path:
    return state_dir / FILE_NAME


def load(state_dir: Path) -> ServiceSettings:
    """The stored settings (defaults for whatever was never set)."""
    path = _path(state_dir)
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ServiceSettings()
    except OSError as exc:
        raise SystemNotAvailable(f"cannot read the service settings {path}: "
                                 f"{exc.strerror or exc}") from exc
    known = {f.name: f.type for f in fields(ServiceSettings)}
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        values: dict[str, Any] = {}
        for k, v in data.items():
            if k not in known:
                continue  # written by a newer vsms: ignored
            want = bool if known[k] in (bool, "bool") else str
            if not isinstance(v, want):
                raise ValueError(f"{k} is not a {want.__name__}")
            values[k] = v
        return replace(ServiceSettings(), **values)
    except ValueError as exc:
        raise SystemNotAvailable(f"the service settings file {path} is damaged ({exc}): fix "
                                 "it or delete it to return to the default settings") from exc


def save(state_dir: Path, settings: ServiceSettings) -> None:
    """Replace the stored settings atomically."""
    path = _path(state_dir)
    data = json.dumps(asdict(settings), indent=2, sort_keys=True).encode("utf-8")
    with _LOCK:
        tmp = ""
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{FILE_NAME}.", suffix=".tmp", dir=state_dir)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            tmp = ""
            dfd = os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as exc:
            raise OperationFailed(f"cannot write the service settings {path}: "
                                  f"{exc.strerror or exc}: check that the state directory is "
                                  "writable and has free space") from exc
        finally:
            if tmp:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
