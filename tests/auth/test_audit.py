"""The audit log: a line per extrinsic call (allowed, denied, failed) and per job outcome."""

from __future__ import annotations

import json
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pywbem

from tests.auth.conftest import Secured
from tests.wbem.model import NS, SERVICE_PATH, setting
from vsms.auth.audit import AuditLog, summarise_arguments

VM1 = pywbem.CIMInstanceName("TST_VirtualSystem", {"CreationClassName": "TST_VirtualSystem",
                                                   "Name": "vm1"}, namespace=NS)


def wait_for(audit: AuditLog, pred: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        records = audit.read()
        if pred(records):
            return records
        assert time.monotonic() < deadline, records
        time.sleep(0.05)


def test_method_call_and_its_job_outcome(secured: Secured) -> None:
    conn = secured.connect("admin")
    settings = setting("new-vm", 5)
    settings["ElementName"] = "new vm"
    settings.path = None
    rv, out = conn.InvokeMethod("DefineSystem", SERVICE_PATH, SystemSettings=settings,
                                ResourceSettings=[settings.tocimxmlstr()])
    assert rv == 4096
    job_id = out["Job"].keybindings["InstanceID"]
    records = wait_for(secured.audit, lambda rs: any(r["event"] == "job" for r in rs))
    call, outcome = records
    assert call["event"] == "method" and call["user"] == "admin"
    assert call["role"] == "administrator" and call["auth"] == "users-file"
    assert call["source"] == "127.0.0.1" and call["namespace"] == NS
    assert (call["class"], call["method"]) == ("TST_Service", "DefineSystem")
    assert call["target"].startswith("TST_Service.CreationClassName=TST_Service")
    assert call["allowed"] is True and call["return_value"] == 4096 and call["job"] == job_id
    summary = {"class": "TST_SettingData", "InstanceID": "new-vm", "ElementName": "new vm",
               "properties": 4}
    assert call["arguments"]["SystemSettings"] == summary
    assert call["arguments"]["ResourceSettings"] == [summary]
    assert datetime.strptime(call["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert outcome["event"] == "job" and outcome["job"] == job_id
    assert outcome["job_state"] == 7 and outcome["job_state_name"] == "Completed"
    assert (outcome["user"], outcome["method"]) == ("admin", "DefineSystem")
    assert os.stat(secured.audit.path).st_mode & 0o777 == 0o600


def test_denied_and_failed_calls_are_audited_reads_are_not(secured: Secured) -> None:
    reader = secured.connect("reader")
    reader.EnumerateInstances("TST_VirtualSystem")
    rv, _ = reader.InvokeMethod("RequestStateChange", VM1, RequestedState=pywbem.Uint16(3))
    assert rv == 32769
    admin = secured.connect("admin")
    with pytest.raises(pywbem.CIMError):
        admin.InvokeMethod("Echo", SERVICE_PATH, U8=pywbem.Uint32(500))
    denied, failed = secured.audit.read()
    assert denied["user"] == "reader" and denied["allowed"] is False
    assert denied["return_value"] == 32769 and denied["arguments"] == {"RequestedState": "3"}
    assert "job" not in denied
    assert failed["method"] == "Echo" and failed["allowed"] is True
    assert failed["return_value"] is None
    assert failed["cim_status"] == pywbem.CIM_ERR_INVALID_PARAMETER and "U8" in failed["error"]


def test_secrets_never_reach_the_log() -> None:
    inner = pywbem.CIMInstance("X_Account", properties={
        "InstanceID": "a1", "Password": "hunter2-secret", "Data": "hunter2-secret"})
    args = summarise_arguments([("AdminPassword", "hunter2-secret"), ("Token", "t0k"),
                                ("Account", inner.tocimxmlstr()), ("Long", "x" * 1000),
                                ("Items", list(range(40)))])
    text = json.dumps(args)
    assert "hunter2" not in text and "t0k" not in text
    assert args["AdminPassword"] == args["Token"] == "[redacted]"
    assert args["Account"] == {"class": "X_Account", "InstanceID": "a1", "properties": 3}
    assert args["Long"].endswith("... (1000 chars)") and len(args["Long"]) < 300
    assert len(args["Items"]) == 33 and args["Items"][-1] == "... 8 more"


def test_rotation_by_size(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.log", max_bytes=4096, backups=2,
                   clock=lambda: datetime(2024, 1, 2, tzinfo=UTC))
    for i in range(100):
        log.write("method", n=i, pad="p" * 100)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["audit.log", "audit.log.1", "audit.log.2"]
    for name in files:
        assert (tmp_path / name).stat().st_size <= 4096
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600
    numbers = [r["n"] for r in log.read()]
    assert numbers[-1] == 99 and numbers == list(range(numbers[0], 100))
    older = [json.loads(x)["n"] for x in (tmp_path / "audit.log.1").read_text().splitlines()]
    assert older[-1] == numbers[0] - 1


def test_unwritable_log_never_fails_the_call(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    log = AuditLog(tmp_path / "missing-dir" / "audit.log")
    # an earlier test in this process may have set the root logger's level (vsms serve does)
    with caplog.at_level(logging.ERROR, logger="vsms.audit"):
        log.write("method", user="x")  # logged, not raised
    assert "cannot write the audit log" in caplog.text
