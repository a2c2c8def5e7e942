"""A real Service on qemu:///system (state in tmp, one storage root per test) and job helpers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import pywbem

from vsms.app import Service
from vsms.cim import names
from vsms.cim.enums import JobState
from vsms.client import LocalClient
from vsms.jobs.context import JobContext, OpContext
from vsms.settings import Settings

DEADLINE = 30.0  # seconds: the longest a test waits for anything

# Every property of the reference pages (msvm-concretejob.md, msvm-storagejob.md) and its type.
CONCRETE_JOB_PROPERTIES: dict[str, tuple[str, bool]] = {
    "Caption": ("string", False), "Description": ("string", False),
    "ElementName": ("string", False), "InstallDate": ("datetime", False),
    "OperationalStatus": ("uint16", True), "Status": ("string", False),
    "HealthState": ("uint16", False), "JobStatus": ("string", False),
    "TimeSubmitted": ("datetime", False), "ScheduledStartTime": ("datetime", False),
    "StartTime": ("datetime", False), "ElapsedTime": ("datetime", False),
    "JobRunTimes": ("uint32", False), "RunMonth": ("uint8", False), "RunDay": ("sint8", False),
    "RunDayOfWeek": ("sint8", False), "RunStartInterval": ("datetime", False),
    "LocalOrUtcTime": ("uint16", False), "UntilTime": ("datetime", False),
    "Notify": ("string", False), "Owner": ("string", False), "Priority": ("uint32", False),
    "PercentComplete": ("uint16", False), "DeleteOnCompletion": ("boolean", False),
    "ErrorCode": ("uint16", False), "ErrorDescription": ("string", False),
    "ErrorSummaryDescription": ("string", False), "RecoveryAction": ("uint16", False),
    "OtherRecoveryAction": ("string", False), "InstanceID": ("string", False),
    "Name": ("string", False), "JobState": ("uint16", False),
    "TimeOfLastStateChange": ("datetime", False), "StatusDescriptions": ("string", True),
    "TimeBeforeRemoval": ("datetime", False), "Cancellable": ("boolean", False),
}
STORAGE_JOB_PROPERTIES = {
    **CONCRETE_JOB_PROPERTIES,
    "Type": ("uint16", False), "JobCompletionStatusCode": ("uint32", False),
    "Parent": ("string", False), "Child": ("string", False),
}


class FnWork:
    """Job work whose body is a plain function of the context."""

    def __init__(self, fn: Callable[[JobContext], None]) -> None:
        self.fn = fn

    def run(self, ctx: OpContext) -> None:
        self.fn(cast(JobContext, ctx))


def until_cancelled(ctx: JobContext, started: threading.Event | None = None) -> None:
    """Work body: report progress, then loop on check_cancelled (fails if never cancelled)."""
    ctx.progress(30)
    if started is not None:
        started.set()
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        ctx.check_cancelled()
        time.sleep(0.01)
    raise AssertionError("the job was never cancelled")


def wait_for(event: threading.Event) -> None:
    if not event.wait(DEADLINE):
        raise AssertionError("timed out waiting for the job to reach its checkpoint")


def job_path(instance_id: str, classname: str = names.CONCRETE_JOB) -> pywbem.CIMInstanceName:
    return pywbem.CIMInstanceName(classname, keybindings={"InstanceID": instance_id},
                                  namespace=names.NAMESPACE)


def wait_state(client: LocalClient, path: pywbem.CIMInstanceName,
               states: tuple[JobState, ...]) -> pywbem.CIMInstance:
    end = time.monotonic() + DEADLINE
    while True:
        job = client.job(path)
        if JobState(int(job["JobState"])) in states:
            return job
        if time.monotonic() > end:
            raise AssertionError(f"job {path} stayed in {job['JobState']}")
        time.sleep(0.02)


@pytest.fixture
def service(storage_root: Path, tmp_path: Path, qemu_uri: str) -> Iterator[Service]:
    settings = Settings(state_dir=tmp_path / "state", storage_roots=(storage_root,),
                        libvirt_uri=qemu_uri, job_workers=2)
    svc = Service(settings)
    try:
        yield svc
    finally:
        svc.close(timeout=DEADLINE)


@pytest.fixture
def client(service: Service) -> LocalClient:
    return LocalClient(service.registry)


def out_param(out: dict[str, Any], name: str) -> Any:
    for k, v in out.items():
        if k.lower() == name.lower():
            return v
    raise KeyError(name)
