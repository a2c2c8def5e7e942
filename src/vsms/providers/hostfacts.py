"""What the host is, read from the running Linux system: the facts root/cimv2 serves.

Everything comes from the kernel's files and ``os.uname``, read on every call (memory and
process counts change): ``/proc/cpuinfo`` (sockets, cores, threads, model, speed),
``/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq`` (maximum speed when the kernel
knows it), ``/proc/meminfo``, ``/proc/stat`` (boot time), ``/etc/os-release`` (distribution
name), ``/sys/class/dmi/id`` (SMBIOS vendor, product, serial and UUID; product_serial and
product_uuid are readable by root only) and ``/etc/machine-id`` (the UUID when SMBIOS is not
readable). A value the host does not give is None (NULL on the wire), never made up.

``root`` prefixes every path (tests point it at a directory laid out like ``/``).
"""

from __future__ import annotations

import os
import platform
import re
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
#: SMBIOS placeholders that say "no value" (firmware leaves them in unset fields)
_PLACEHOLDERS = {"", "none", "not specified", "to be filled by o.e.m.", "default string",
                 "system serial number", "0", "00000000-0000-0000-0000-000000000000",
                 "ffffffff-ffff-ffff-ffff-ffffffffffff"}


@dataclass(frozen=True)
class Processor:
    """One socket."""

    socket: int  # physical id
    model: str | None
    vendor: str | None
    cores: int
    threads: int
    current_mhz: int | None
    max_mhz: int | None
    cpuid: str | None  # "Family 6 Model 85 Stepping 7" (from cpuinfo)


@dataclass(frozen=True)
class Memory:
    total_kib: int | None
    available_kib: int | None
    swap_total_kib: int | None
    swap_free_kib: int | None


@dataclass(frozen=True)
class Product:
    vendor: str | None
    name: str | None
    version: str | None
    serial: str | None
    uuid: str | None  # upper-case 8-4-4-4-12
    uuid_source: str  # "smbios", "machine-id" or "none"


class HostFacts:
    """Reads the facts of the host under ``root`` (``/`` by default)."""

    def __init__(self, root: Path | str = "/") -> None:
        self.root = Path(root)

    def _read(self, rel: str) -> str | None:
        try:
            return (self.root / rel.lstrip("/")).read_text(errors="replace")
        except OSError:  # absent, or root-only
            return None

    def _smbios(self, field: str) -> str | None:
        text = self._read(f"sys/class/dmi/id/{field}")
        value = text.strip() if text is not None else ""
        return None if value.lower() in _PLACEHOLDERS else value

    # ------------------------------------------------------------------ names
    @staticmethod
    def dns_host_name() -> str:
        return socket.gethostname().split(".")[0]

    @staticmethod
    def dns_domain() -> str | None:
        """The DNS domain of the host (from its fully qualified name), or None."""
        fqdn = socket.getfqdn()
        if "." not in fqdn or fqdn.startswith("localhost"):
            return None
        domain = fqdn.split(".", 1)[1]
        return domain if domain and not domain.startswith("localdomain") else None

    def os_caption(self) -> str:
        """The distribution's PRETTY_NAME, else the kernel's name."""
        for line in (self._read("etc/os-release") or self._read("usr/lib/os-release") or
                     "").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "PRETTY_NAME" and value.strip():
                return value.strip().strip("\"'")
        return os.uname().sysname

    # ------------------------------------------------------------------ processors
    def processors(self) -> list[Processor]:
        """One entry per socket, in socket order (one socket when cpuinfo names none)."""
        blocks = [b for b in (self._read("proc/cpuinfo") or "").split("\n\n") if b.strip()]
        sockets: dict[int, list[dict[str, str]]] = {}
        for block in blocks:
            fields = {}
            for line in block.splitlines():
                key, sep, value = line.partition(":")
                if sep:
                    fields[key.strip().lower()] = value.strip()
            if "processor" not in fields:
                continue
            sockets.setdefault(_int(fields.get("physical id")) or 0, []).append(fields)
        if not sockets:
            threads = os.cpu_count() or 1
            return [Processor(0, None, None, threads, threads, None, self._max_mhz(), None)]
        out = []
        for sid in sorted(sockets):
            cpus = sockets[sid]
            first = cpus[0]
            cores = len({c.get("core id") for c in cpus}) if "core id" in first else \
                _int(first.get("cpu cores")) or len(cpus)
            mhz = _float(first.get("cpu mhz"))
            cpuid = None
            if "cpu family" in first and "model" in first:
                cpuid = (f"Family {first['cpu family']} Model {first['model']} "
                         f"Stepping {first.get('stepping', '?')}")
            out.append(Processor(
                socket=sid, model=first.get("model name"), vendor=first.get("vendor_id"),
                cores=cores, threads=len(cpus),
                current_mhz=round(mhz) if mhz is not None else None,
                max_mhz=self._max_mhz() or (round(mhz) if mhz is not None else None),
                cpuid=cpuid))
        return out

    def _max_mhz(self) -> int | None:
        khz = _int(self._read("sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"))
        return khz // 1000 if khz else None

    @staticmethod
    def architecture() -> tuple[int | None, str, int]:
        """(Win32_Processor.Architecture, OSArchitecture, address width) of the machine."""
        machine = platform.machine().lower()
        table = {"x86_64": (9, "64-bit", 64), "amd64": (9, "64-bit", 64),
                 "aarch64": (12, "64-bit", 64), "arm64": (12, "64-bit", 64),
                 "i386": (0, "32-bit", 32), "i686": (0, "32-bit", 32),
                 "armv7l": (5, "32-bit", 32), "ppc64le": (3, "64-bit", 64)}
        return table.get(machine, (None, "64-bit" if platform.architecture()[0] == "64bit"
                                   else "32-bit", 64 if "64" in machine else 32))

    # ------------------------------------------------------------------ memory and time
    def memory(self) -> Memory:
        info: dict[str, int] = {}
        for line in (self._read("proc/meminfo") or "").splitlines():
            key, _, value = line.partition(":")
            number = _int(value.split()[0]) if value.split() else None
            if number is not None:
                info[key.strip()] = number
        available = info.get("MemAvailable", info.get("MemFree"))
        return Memory(info.get("MemTotal"), available, info.get("SwapTotal"),
                      info.get("SwapFree"))

    def boot_time(self) -> datetime | None:
        for line in (self._read("proc/stat") or "").splitlines():
            if line.startswith("btime "):
                seconds = _int(line.split()[1])
                if seconds is not None:
                    return datetime.fromtimestamp(seconds, UTC)
        return None

    def process_count(self) -> int | None:
        try:
            return sum(1 for e in os.scandir(self.root / "proc") if e.name.isdigit())
        except OSError:
            return None

    # ------------------------------------------------------------------ product
    def product(self) -> Product:
        uuid = self._smbios("product_uuid")
        source = "smbios"
        if uuid is None or not _GUID.match(uuid):
            uuid, source = None, "none"
            mid = (self._read("etc/machine-id") or "").strip().lower()
            if re.fullmatch(r"[0-9a-f]{32}", mid):
                uuid = f"{mid[:8]}-{mid[8:12]}-{mid[12:16]}-{mid[16:20]}-{mid[20:]}"
                source = "machine-id"
        return Product(vendor=self._smbios("sys_vendor"), name=self._smbios("product_name"),
                       version=self._smbios("product_version"),
                       serial=self._smbios("product_serial"),
                       uuid=uuid.upper() if uuid else None, uuid_source=source)


def _int(text: str | None) -> int | None:
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None
