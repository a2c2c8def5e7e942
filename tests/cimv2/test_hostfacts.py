"""The host facts root/cimv2 serves: read from this machine, and the fallbacks when a file is
missing (a directory laid out like / without it)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from vsms.providers.hostfacts import HostFacts


def _meminfo(key: str) -> int:
    m = re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
    assert m
    return int(m.group(1))


def test_this_host() -> None:
    facts = HostFacts()
    procs = facts.processors()
    assert sum(p.threads for p in procs) == os.cpu_count()
    assert all(1 <= p.cores <= p.threads for p in procs)
    assert all(p.max_mhz is None or p.max_mhz > 0 for p in procs)
    assert facts.memory().total_kib == _meminfo("MemTotal")
    boot = facts.boot_time()
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    assert boot is not None
    import time
    assert abs(boot.timestamp() - (time.time() - uptime)) < 5
    product = facts.product()
    assert product.uuid is not None and re.fullmatch(r"[0-9A-F-]{36}", product.uuid)
    if Path("/sys/class/dmi/id/product_uuid").exists() and os.access(
            "/sys/class/dmi/id/product_uuid", os.R_OK):
        assert product.uuid == Path("/sys/class/dmi/id/product_uuid").read_text().strip().upper()
    else:
        mid = Path("/etc/machine-id").read_text().strip().upper()
        assert product.uuid.replace("-", "") == mid and product.uuid_source == "machine-id"
    release = Path("/etc/os-release").read_text()
    assert f'PRETTY_NAME="{facts.os_caption()}"' in release


def _root(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


CPUINFO = "".join(
    f"processor\t: {i}\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\n"
    f"model name\t: AMD EPYC 7313\nstepping\t: 1\ncpu MHz\t\t: 1500.123\n"
    f"physical id\t: {i // 4}\ncore id\t\t: {(i % 4) // 2}\ncpu cores\t: 2\n\n"
    for i in range(8))


def test_sockets_cores_threads_and_smbios(tmp_path: Path) -> None:
    root = _root(tmp_path, {
        "proc/cpuinfo": CPUINFO,
        "sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq": "3700000\n",
        "sys/class/dmi/id/product_uuid": "4c4c4544-0042-3510-8052-b4c04f4e3732\n",
        "sys/class/dmi/id/sys_vendor": "Dell Inc.\n",
        "sys/class/dmi/id/product_name": "PowerEdge R640\n",
        "sys/class/dmi/id/product_serial": "To Be Filled By O.E.M.\n",
        "etc/machine-id": "0123456789abcdef0123456789abcdef\n",
    })
    facts = HostFacts(root)
    procs = facts.processors()
    assert [(p.socket, p.cores, p.threads, p.max_mhz, p.current_mhz) for p in procs] == [
        (0, 2, 4, 3700, 1500), (1, 2, 4, 3700, 1500)]
    assert procs[0].cpuid == "Family 25 Model 1 Stepping 1"
    product = facts.product()
    assert product.uuid == "4C4C4544-0042-3510-8052-B4C04F4E3732"
    assert product.uuid_source == "smbios"
    assert (product.vendor, product.name, product.serial) == ("Dell Inc.", "PowerEdge R640", None)


def test_missing_files_are_null_not_invented(tmp_path: Path) -> None:
    facts = HostFacts(_root(tmp_path, {"etc/machine-id": "0123456789ABCDEF0123456789abcdef\n"}))
    product = facts.product()
    assert product.uuid == "01234567-89AB-CDEF-0123-456789ABCDEF"
    assert product.uuid_source == "machine-id"
    assert (product.vendor, product.name, product.version, product.serial) == (None,) * 4
    mem = facts.memory()
    assert mem.total_kib is None and mem.available_kib is None
    assert facts.boot_time() is None
    (proc,) = facts.processors()  # no cpuinfo: one socket with the CPUs Python counts
    assert proc.threads == os.cpu_count() and proc.max_mhz is None
    assert HostFacts(tmp_path / "nothing").product().uuid is None
