"""bench/bench_wbem.py runs end to end with tiny sizes and leaves no VM behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vsms.virt.host import VirtHost

pytestmark = pytest.mark.qemu

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_wbem.py"


def test_bench_wbem_smoke(tmp_path: Path, qemu_uri: str) -> None:
    out = tmp_path / "results.json"
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "--sizes", "2,5", "--clients", "1,3", "--repeat", "2",
         "--duration", "1", "--max-requests", "40", "--json", str(out)],
        capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    results = json.loads(out.read_text())
    assert [row["vms"] for row in results["sizes"]] == [2, 5]
    for row in results["sizes"]:
        assert row["ExecQuery"]["objects"] == 1
        assert row["EnumerateInstances"]["objects"] >= row["vms"] + 1  # the VMs and the host
        # the VM list does not call libvirt once per VM
        assert row["EnumerateInstances"]["libvirt_calls"] <= 4
        ratios = row["ratios"]
        assert ratios["server"] > 0 and ratios["tocimxmlstr"] > 0 and ratios["parse"] > 0
    assert results["method"]["return_value"] == 32775  # the VM is already off
    assert [r["clients"] for r in results["load"]] == [1, 3]
    assert all(r["requests"] > 0 and r["errors"] == 0 for r in results["load"])
    for heading in ("end to end", "clients", "server time / tocimxmlstr()",
                    "end to end / parse alone", "libvirt calls per VM list"):
        assert heading in res.stdout
    # every VM it defined is gone
    with VirtHost(qemu_uri) as host:
        assert [vs.name for vs in host.list_systems() if results["token"] in vs.name] == []
