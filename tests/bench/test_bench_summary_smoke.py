"""bench/bench_summary.py runs end to end with tiny sizes and leaves no VM behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vsms.virt.host import VirtHost

pytestmark = pytest.mark.qemu

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_summary.py"


def test_bench_summary_smoke(tmp_path: Path, qemu_uri: str) -> None:
    out = tmp_path / "results.json"
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "--sizes", "2,4", "--running", "1", "--repeat", "2",
         "--json", str(out)],
        capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    results = json.loads(out.read_text())
    assert [row["vms"] for row in results["sizes"]] == [2, 4]
    for row in results["sizes"]:
        assert row["running"] == 1
        assert row["summary"]["objects"] == row["vms"]
        assert row["enumerate"]["objects"] == row["vms"] + 1  # the VMs and the host
        assert row["summary"]["libvirt_calls"] <= 5 and row["ratio"] > 0
    for heading in ("GetSummaryInformation", "EnumerateInstances", "ratio (server time)",
                    "libvirt calls per GetSummaryInformation"):
        assert heading in res.stdout
    token = results["token"]
    with VirtHost(qemu_uri) as host:
        assert not [vs for vs in host.list_systems() if token in vs.name]
