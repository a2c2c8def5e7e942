"""The malformed-export corpus, end to end: every case is refused by ImportVirtualSystem (in
place), ImportVirtualSystemEx (CreateCopy TRUE) and GetVirtualSystemImportSettingData, with an
error that names the cause, and nothing is registered, copied, consumed or changed.

GetVirtualSystemImportSettingData reads an export quickly (no checksums, no image checks), so
the few cases that only those find (``quick=False``) are answered there with setting data; the
imports refuse them all.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import pywbem

from tests.security.conftest import Env, Snapshot, copy_export
from tests.security.corpus import CASES, Case, Ctx
from vsms.cim import names
from vsms.cim.embedded import serialize_instance
from vsms.cim.enums import JobState, ReturnCode

pytestmark = pytest.mark.qemu

COPY = serialize_instance(pywbem.CIMInstance(names.IMPORT_SD, properties={
    "CreateCopy": True, "GenerateNewId": True}))
METHODS: dict[str, dict[str, Any]] = {
    "ImportVirtualSystem": {"GenerateNewID": True},
    "ImportVirtualSystemEx": {"ImportSettingData": COPY},
    "GetVirtualSystemImportSettingData": {},
}


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 30
    assert len({c.name for c in CASES}) == len(CASES)


def test_the_pristine_copy_imports(env: Env) -> None:
    """The control: an undamaged copy passes all three methods, so each refusal below is due
    to its damage alone."""
    d = copy_export(env, "control")
    rv, out = env.client.vsms("GetVirtualSystemImportSettingData", ImportDirectory=str(d))
    assert rv == ReturnCode.COMPLETED and out["ImportSettingData"]
    for method in ("ImportVirtualSystemEx", "ImportVirtualSystem"):
        rv, out, job = env.client.run(names.VSMS, method, ImportDirectory=str(d),
                                      **METHODS[method])
        assert job is not None
        assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
        env.service.host.undefine(str(env.client.affected_vm(job)["Name"]))
    env.service.store.unmark_consumed(str(d))
    shutil.rmtree(env.root / "Virtual Machines", ignore_errors=True)
    shutil.rmtree(d)


def refusal(env: Env, method: str, d: Path) -> tuple[int, str]:
    rv, out = env.client.vsms(method, ImportDirectory=str(d), **METHODS[method])
    if rv != ReturnCode.JOB_STARTED:
        return rv, ""
    job = env.client.wait(out["Job"], timeout=120)
    assert job["JobState"] == JobState.EXCEPTION, (method, job["JobState"])
    return int(job["ErrorCode"]), str(job["ErrorDescription"])


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_malformed_export_is_refused(env: Env, case: Case) -> None:
    d = copy_export(env, case.name.replace(" ", "-").replace("/", "_"))
    ctx = Ctx(env.outside / "corpus" / d.name)
    ctx.outside.mkdir(parents=True, mode=0o755)
    try:
        try:
            case.damage(d, ctx)
        except PermissionError as exc:
            pytest.skip(str(exc))
        snap = Snapshot.take(env)
        for method in METHODS:
            code, text = refusal(env, method, d)
            print(f"{case.name} / {method}: {code}: {text}")  # shown when a case fails
            if method == "GetVirtualSystemImportSettingData" and not case.quick:
                assert code == ReturnCode.COMPLETED, (code, text)
                continue
            assert code == ReturnCode.INVALID_PARAMETER, (method, code, text)
            assert case.says in text, (method, text)
            assert "failed validation" in text, text
            assert len(text) < 32 * 1024, "the report must stay readable"
            snap.unchanged(env)
            assert env.service.store.consumed(str(d)) is None
    finally:
        for undo in ctx.cleanups:
            undo()
        shutil.rmtree(d, ignore_errors=True)
        shutil.rmtree(ctx.outside, ignore_errors=True)
