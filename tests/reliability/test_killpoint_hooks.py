"""The kill-point hook module itself: counting, labels, progress points, the kill, uninstall."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vsms.disks import copy as diskcopy
from vsms.testing.killpoints import DEFAULT_TARGETS, KillPoints, Target

ROOT = Path(__file__).resolve().parents[2]


def test_counts_before_after_and_progress(tmp_path: Path) -> None:
    log = tmp_path / "hits.log"
    points = KillPoints(0, log)
    original_copy, original_mkdir = diskcopy.copy_file, os.mkdir
    points.install([Target("vsms.disks.copy", "copy_file", progress=True),
                    Target("os", "mkdir", detail_arg=0)])
    try:
        src = tmp_path / "src"
        src.write_bytes(b"x" * 100_000)
        seen: list[int] = []
        (tmp_path / "sub-0123456789abcdef").mkdir()
        diskcopy.copy_file(str(src), str(tmp_path / "dst"), progress=seen.append)
    finally:
        points.disarm()
        points.uninstall()
    assert diskcopy.copy_file is original_copy and os.mkdir is original_mkdir
    assert seen and seen[-1] == 100_000  # the caller's progress still gets every report
    lines = log.read_text().splitlines()
    assert [line.split("\t")[1] for line in lines] == [
        "before os.mkdir(sub-…)", "after os.mkdir(sub-…)",
        "before copy_file", "during copy_file", "after copy_file"]
    assert [int(line.split("\t")[0]) for line in lines] == [1, 2, 3, 4, 5]
    assert points.count == 5


def test_a_failing_call_has_no_after_point(tmp_path: Path) -> None:
    points = KillPoints(0, tmp_path / "hits.log")
    points.install([Target("os", "rmdir", detail_arg=0)])
    try:
        with pytest.raises(FileNotFoundError):
            os.rmdir(tmp_path / "missing")
    finally:
        points.disarm()
        points.uninstall()
    assert points.count == 1


def test_default_targets_resolve() -> None:
    points = KillPoints(0)
    points.install(DEFAULT_TARGETS)
    try:
        from vsms.store.db import Store
        assert Store.add_undo.__wrapped__ is not None  # type: ignore[attr-defined]
    finally:
        points.uninstall()
    from vsms.store.db import Store
    assert not hasattr(Store.add_undo, "__wrapped__")


def test_negative_kill_at_is_refused() -> None:
    with pytest.raises(ValueError, match="kill_at"):
        KillPoints(-1)


def test_the_nth_point_kills_the_process(tmp_path: Path) -> None:
    log = tmp_path / "hits.log"
    script = textwrap.dedent(f"""
        import os
        from vsms.testing.killpoints import KillPoints, Target
        points = KillPoints(3, {str(log)!r})
        points.install([Target("os", "mkdir", detail_arg=0)])
        for i in range(5):
            os.mkdir({str(tmp_path)!r} + f"/d{{i}}")
        print("survived")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr)
    assert "survived" not in proc.stdout
    assert log.read_text().splitlines()[-1] == "3\tbefore os.mkdir(d1)"
    assert (tmp_path / "d0").is_dir() and not (tmp_path / "d1").exists()
