"""bench/bench_wsman.py runs end to end with tiny sizes and leaves no VM behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vsms.virt.host import VirtHost

pytestmark = pytest.mark.qemu

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_wsman.py"


def test_bench_wsman_smoke(tmp_path: Path, qemu_uri: str) -> None:
    out = tmp_path / "results.json"
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "--sizes", "2,5", "--clients", "3", "--repeat", "2",
         "--duration", "1", "--max-requests", "40", "--contexts", "300", "--json", str(out)],
        capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    results = json.loads(out.read_text())
    assert [row["vms"] for row in results["sizes"]] == [2, 5]
    for row in results["sizes"]:
        assert row["objects"] >= row["vms"] + 1  # the VMs and the host, in one response
        assert row["wsman_server"] > 0 and row["cimxml_server"] > 0 and row["parse_et"] > 0
        assert row["listing"] > 0 and row["full_listing"] > 0 and row["floor_vs_parse"] > 1
    (load,) = results["load"]
    assert load["clients"] == 3 and load["requests"] > 0 and load["errors"] == 0
    ctx = results["contexts"]
    assert ctx["opened"] == ctx["held"] == 300
    # the default store is bounded: what is over its limit is refused, not kept
    assert ctx["held_with_defaults"] == ctx["default_limit"] == 256
    assert ctx["refused_with_defaults"] == 300 - 256
    for heading in ("WS-Man server / CIM-XML server", "pypsrp end to end / ElementTree parse",
                    "errors under 3 WS-Man clients", "enumeration contexts opened"):
        assert heading in res.stdout
    with VirtHost(qemu_uri) as host:
        assert [vs.name for vs in host.list_systems() if results["token"] in vs.name] == []
