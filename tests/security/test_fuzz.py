"""The fuzz harnesses in CI: every kept input replays cleanly, and each harness runs under
atheris for a bounded time (FUZZ_SECONDS each, new inputs and crashes go to a temporary
folder, never into the repository). The longer documented run is in docs/fuzzing.md.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from fuzz import fuzz_cimxml, fuzz_embedded, fuzz_export

from vsms.wbem.protocol import Reply

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "fuzz" / "corpus"
FUZZ_SECONDS = int(os.environ.get("VSMS_FUZZ_SECONDS", "20"))
TARGETS: dict[str, Callable[[bytes], None]] = {
    "cimxml": fuzz_cimxml.test_one_input,
    "embedded": fuzz_embedded.test_one_input,
    "export": fuzz_export.test_one_input,
}


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_kept_inputs_replay(target: str) -> None:
    """Seeds and the inputs of every defect found so far: none may fail again."""
    inputs = sorted((CORPUS / target).iterdir())
    assert len(inputs) >= 4, inputs
    for path in inputs:
        TARGETS[target](path.read_bytes())


def test_harnesses_catch_what_they_should() -> None:
    """The checks of the harnesses are live: a handler that crashes, or a parser that raises
    something other than a vsms error, is reported."""
    reply = Reply(500, detail="boom")
    with pytest.raises(AssertionError, match="internal error"):
        fuzz_cimxml.check_reply(reply)
    with pytest.raises(AssertionError, match="not a CIM-XML MESSAGE"):
        fuzz_cimxml.check_reply(Reply(200, body=b"<CIM><X/></CIM>"))


@pytest.mark.timeout(FUZZ_SECONDS * 3 + 60)
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_bounded_fuzzing(target: str, tmp_path: Path) -> None:
    try:
        import atheris  # noqa: F401
    except ImportError:
        pytest.fail("atheris is not installed: run pip install -e '.[dev]' (scripts/setup.sh)")
    found = tmp_path / "new"
    found.mkdir()
    cmd = [sys.executable, "-m", f"fuzz.fuzz_{target}", f"-max_total_time={FUZZ_SECONDS}",
           "-timeout=10", "-rss_limit_mb=2048", f"-artifact_prefix={tmp_path}/",
           str(found), str(CORPUS / target)]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                       timeout=FUZZ_SECONDS * 3 + 30)
    stats = re.findall(r"^#(\d+)\s+DONE\s+cov: (\d+)", r.stderr, re.MULTILINE)
    crashes = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    assert r.returncode == 0 and not crashes, (
        f"fuzz_{target} found a defect ({crashes}); replay it with: python -m "
        f"fuzz.fuzz_{target} <file>\n" + r.stderr[-4000:])
    assert stats, r.stderr[-2000:]
    runs, cov = (int(x) for x in stats[-1])
    print(f"fuzz_{target}: {runs} runs, {cov} coverage edges in {FUZZ_SECONDS} s")
    assert runs > 100 and cov > 50
