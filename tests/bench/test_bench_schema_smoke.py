"""bench/bench_schema.py runs end to end and reports what it says it measures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_schema.py"


def test_bench_schema_smoke(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    res = subprocess.run([sys.executable, str(SCRIPT), "--repeat", "1", "--json", str(out)],
                         capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    results = json.loads(out.read_text())
    for key in ("compile", "copy", "service_kept", "service_empty_cache"):
        assert len(results["rounds"][key]) == 1 and results[key] > 0
    assert "empty cache / kept" in res.stdout
