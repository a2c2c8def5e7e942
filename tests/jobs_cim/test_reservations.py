"""The busy reservation of a VM (its transition) is owned by the job it is handed to and
released exactly once, however the job ends: run, failed, cancelled while queued, or refused
at submission. On qemu:///system with a real Service."""

from __future__ import annotations

import threading
from contextlib import suppress
from pathlib import Path

import pytest
import pywbem

from tests import hyperv
from tests.jobs_cim import conftest as cj
from vsms.app import Service
from vsms.cim.enums import JobState, RequestedState, ReturnCode, StateChangeReturn
from vsms.client import LocalClient
from vsms.errors import InvalidState, OperationFailed, SystemNotAvailable
from vsms.jobs.context import JobContext
from vsms.operations.transitions import Transition, Transitions

pytestmark = pytest.mark.qemu

FINISHED = (JobState.COMPLETED, JobState.TERMINATED, JobState.KILLED, JobState.EXCEPTION)
BUSY = Transition(None, RequestedState.NOT_APPLICABLE, what="a test")
GUID = "6B0C3F3E-1D1A-4E0F-9E47-0A1B2C3D4E5F"


def test_a_reservation_is_released_once() -> None:
    transitions = Transitions()
    first = transitions.begin(GUID, BUSY)
    with pytest.raises(InvalidState):
        transitions.begin(GUID, BUSY)
    first.release()
    second = transitions.begin(GUID, BUSY)
    first.release()  # a second release must not end the next holder's reservation
    assert transitions.get(GUID) is BUSY
    second.release()
    assert transitions.get(GUID) is None


def test_as_a_context_manager_it_is_released_only_by_an_exception() -> None:
    transitions = Transitions()
    with pytest.raises(OperationFailed), transitions.begin(GUID, BUSY):
        raise OperationFailed("the check after the reservation failed")
    assert transitions.get(GUID) is None
    with transitions.begin(GUID, BUSY) as held:
        pass  # handed on (to a job): still held
    assert transitions.get(GUID) is BUSY
    held.release()


def test_the_job_releases_it_after_its_work_ran_and_before_it_ends(service: Service) -> None:
    transitions = service.context.transitions
    seen: list[object] = []
    rec = service.jobs.submit(name="Reserved", description="d",
                              work=cj.FnWork(lambda ctx: seen.append(transitions.get(GUID))),
                              reservation=transitions.begin(GUID, BUSY))
    done = service.jobs.wait(rec.instance_id, cj.DEADLINE)
    assert done.state is JobState.COMPLETED
    assert seen == [BUSY]  # held while the work ran
    assert transitions.get(GUID) is None  # free by the time the job shows Completed

    def fail(ctx: JobContext) -> None:
        raise OperationFailed("the work failed")
    rec = service.jobs.submit(name="Failing", description="d", work=cj.FnWork(fail),
                              reservation=transitions.begin(GUID, BUSY))
    assert service.jobs.wait(rec.instance_id, cj.DEADLINE).state is JobState.EXCEPTION
    assert transitions.get(GUID) is None


def test_a_job_cancelled_while_queued_releases_its_vm(service: Service, client: LocalClient,
                                                     storage_root: Path) -> None:
    vm = hyperv.define_vm(client, f"queued-{storage_root.name}", memory_mb=64)
    guid = str(vm.keybindings["Name"])
    blockers = []
    try:
        for _ in range(2):  # job_workers=2: both busy, the next job stays queued
            started = threading.Event()

            def block(ctx: JobContext, started: threading.Event = started) -> None:
                cj.until_cancelled(ctx, started)
            rec = service.jobs.submit(name="Blocking", description="d", work=cj.FnWork(block))
            cj.wait_for(started)
            blockers.append(cj.job_path(rec.instance_id))
        (storage_root / "out").mkdir()
        rv, out = client.vsms("ExportVirtualSystem", ComputerSystem=vm, CopyVmState=False,
                              ExportDirectory=str(storage_root / "out"))
        assert rv == ReturnCode.JOB_STARTED, out
        export = cj.out_param(out, "Job")
        assert client.job(export)["JobState"] == JobState.NEW
        rv, _ = client.invoke(vm, "RequestStateChange", RequestedState=pywbem.Uint16(2))
        assert rv == ReturnCode.INVALID_STATE  # reserved by the queued export
        assert client.invoke(export, "RequestStateChange", RequestedState=pywbem.Uint16(4))[0] \
            == StateChangeReturn.TRANSITION_STARTED
        assert cj.wait_state(client, export, FINISHED)["JobState"] == JobState.TERMINATED
        assert service.context.transitions.get(guid) is None
    finally:
        for path in blockers:
            client.invoke(path, "RequestStateChange", RequestedState=pywbem.Uint16(4))
            cj.wait_state(client, path, FINISHED)
        with suppress(Exception):
            service.host.undefine(guid)


def test_a_job_the_engine_refuses_releases_its_vm(service: Service) -> None:
    transitions = service.context.transitions
    service.jobs.shutdown(cj.DEADLINE)
    with pytest.raises(SystemNotAvailable):
        service.jobs.submit(name="Late", description="d", work=cj.FnWork(lambda ctx: None),
                            reservation=transitions.begin(GUID, BUSY))
    assert transitions.get(GUID) is None
