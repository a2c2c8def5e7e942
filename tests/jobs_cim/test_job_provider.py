"""Msvm_ConcreteJob / Msvm_StorageJob instances and methods, Msvm_AffectedJobElement."""

from __future__ import annotations

import threading
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
import pywbem

from tests import hyperv
from tests.jobs_cim.conftest import (
    CONCRETE_JOB_PROPERTIES,
    DEADLINE,
    FnWork,
    job_path,
    out_param,
    until_cancelled,
    wait_for,
    wait_state,
)
from vsms.app import Service
from vsms.cim import names
from vsms.cim.embedded import parse_instance
from vsms.cim.enums import JobState, ReturnCode, StateChangeReturn
from vsms.client import LocalClient
from vsms.errors import InvalidParameter
from vsms.model.job import AffectedElement

pytestmark = pytest.mark.qemu

NS = names.NAMESPACE
FINISHED = (JobState.COMPLETED, JobState.TERMINATED, JobState.KILLED, JobState.EXCEPTION)


def _blocking_job(service: Service,
                  **kw: Any) -> tuple[pywbem.CIMInstanceName, threading.Event]:
    started = threading.Event()
    rec = service.jobs.submit(name="Blocking Job", description="waits to be cancelled",
                              work=FnWork(lambda ctx: until_cancelled(ctx, started)), **kw)
    wait_for(started)
    return job_path(rec.instance_id), started


def _failing(service: Service) -> pywbem.CIMInstanceName:
    def body(ctx: object) -> None:
        raise InvalidParameter("the export directory /x is missing: pass an existing directory")
    rec = service.jobs.submit(name="Failing Job", description="fails", work=FnWork(body))
    return job_path(rec.instance_id)


def test_running_job_instance(service: Service, client: LocalClient) -> None:
    path, _ = _blocking_job(service)
    found = service.registry.enumerate_instances(NS, names.CONCRETE_JOB)
    mine = [i for i in found if i["InstanceID"] == path.keybindings["InstanceID"]]
    assert len(mine) == 1
    assert not [i for i in service.registry.enumerate_instances(NS, names.STORAGE_JOB)
                if i["InstanceID"] == path.keybindings["InstanceID"]]
    job = client.job(path)
    assert job.path.keybindings["InstanceID"] == path.keybindings["InstanceID"]
    assert set(job.properties) == set(CONCRETE_JOB_PROPERTIES)
    for name, (cim_type, is_array) in CONCRETE_JOB_PROPERTIES.items():
        assert (job.properties[name].type, bool(job.properties[name].is_array)) == (
            cim_type, is_array), name
    assert job["JobState"] == JobState.RUNNING and job["PercentComplete"] == 30
    assert job["Cancellable"] is True and job["ErrorCode"] == 0
    assert job["StartTime"] is not None and job["TimeSubmitted"] is not None
    assert str(job["TimeBeforeRemoval"]) == "00000000000500.000000:000"
    first = job["ElapsedTime"].timedelta
    time.sleep(0.05)
    assert client.job(path)["ElapsedTime"].timedelta > first
    # the same InstanceID under the other job class is not an instance
    with pytest.raises(pywbem.CIMError) as exc:
        client.job(job_path(path.keybindings["InstanceID"], names.STORAGE_JOB))
    assert exc.value.status_code == pywbem.CIM_ERR_NOT_FOUND
    rv, _ = client.invoke(path, "RequestStateChange", RequestedState=pywbem.Uint16(4))
    assert rv == StateChangeReturn.TRANSITION_STARTED


def test_terminate_mid_run_then_get_error(service: Service, client: LocalClient) -> None:
    path, _ = _blocking_job(service)
    rv, out = client.invoke(path, "GetError")
    assert rv == ReturnCode.COMPLETED and out_param(out, "Error") is None
    rv, _ = client.invoke(path, "RequestStateChange", RequestedState=pywbem.Uint16(4))
    assert rv == StateChangeReturn.TRANSITION_STARTED
    job = wait_state(client, path, FINISHED)
    assert job["JobState"] == JobState.TERMINATED
    assert job["ErrorCode"] == ReturnCode.FAILED
    assert "cancelled" in job["ErrorDescription"]
    assert job["ElapsedTime"].timedelta.total_seconds() > 0
    rv, out = client.invoke(path, "GetError")
    assert rv == ReturnCode.COMPLETED
    err = parse_instance(out_param(out, "Error"))
    assert err.classname == "CIM_Error" and err["Message"] == job["ErrorDescription"]
    assert err["OwningEntity"] == "vsms"
    rv, out = client.invoke(path, "GetErrorEx")
    assert rv == ReturnCode.COMPLETED
    errors = [parse_instance(e) for e in out_param(out, "Errors")]
    assert [(e.classname, e["Message"]) for e in errors] == [("Msvm_Error", err["Message"])]
    # a finished job cannot change state any more
    rv, _ = client.invoke(path, "RequestStateChange", RequestedState=pywbem.Uint16(4))
    assert rv == StateChangeReturn.INVALID_STATE_TRANSITION


def test_request_state_change_refusals(service: Service, client: LocalClient) -> None:
    path, _ = _blocking_job(service)
    assert client.invoke(path, "RequestStateChange",
                         RequestedState=pywbem.Uint16(2))[0] == StateChangeReturn.NOT_SUPPORTED
    assert client.invoke(path, "RequestStateChange",
                         RequestedState=pywbem.Uint16(99))[0] == StateChangeReturn.INVALID_PARAMETER
    assert client.invoke(path, "RequestStateChange")[0] == StateChangeReturn.INVALID_PARAMETER
    bad_timeout = pywbem.CIMDateTime("20240101000000.000000+000")  # a point in time
    assert client.invoke(path, "RequestStateChange", RequestedState=pywbem.Uint16(4),
                         TimeoutPeriod=bad_timeout)[0] == StateChangeReturn.INVALID_PARAMETER
    assert client.job(path)["JobState"] == JobState.RUNNING
    # KillJob is not supported, and does nothing
    assert client.invoke(path, "KillJob", DeleteOnKill=True)[0] == ReturnCode.NOT_SUPPORTED
    assert client.job(path)["JobState"] == JobState.RUNNING
    # with a TimeoutPeriod the call waits for the job to end
    rv, _ = client.invoke(path, "RequestStateChange", RequestedState=pywbem.Uint16(4),
                          TimeoutPeriod=pywbem.CIMDateTime("00000000000030.000000:000"))
    assert rv == StateChangeReturn.COMPLETED
    assert client.job(path)["JobState"] == JobState.TERMINATED


def test_not_cancellable_job(service: Service, client: LocalClient) -> None:
    release = threading.Event()
    started = threading.Event()

    def body(ctx: object) -> None:
        started.set()
        release.wait(30)
    rec = service.jobs.submit(name="Pinned", description="cannot be cancelled",
                              work=FnWork(body), cancellable=False)
    path = job_path(rec.instance_id)
    wait_for(started)
    try:
        assert client.job(path)["Cancellable"] is False
        rv, _ = client.invoke(path, "RequestStateChange", RequestedState=pywbem.Uint16(4))
        assert rv == StateChangeReturn.NOT_SUPPORTED
    finally:
        release.set()
    assert wait_state(client, path, FINISHED)["JobState"] == JobState.COMPLETED
    rv, out = client.invoke(path, "GetError")
    assert rv == ReturnCode.COMPLETED and out_param(out, "Error") is None
    rv, out = client.invoke(path, "GetErrorEx")
    assert rv == ReturnCode.COMPLETED and not out_param(out, "Errors")


def test_failed_job_and_its_error(service: Service, client: LocalClient) -> None:
    path = _failing(service)
    job = wait_state(client, path, FINISHED)
    assert job["JobState"] == JobState.EXCEPTION
    assert job["ErrorCode"] == ReturnCode.INVALID_PARAMETER
    assert "pass an existing directory" in job["ErrorDescription"]
    assert job["ErrorSummaryDescription"]
    rv, out = client.invoke(path, "GetError")
    assert rv == ReturnCode.COMPLETED
    err = parse_instance(out_param(out, "Error"))
    assert err["CIMStatusCode"] == 4 and err["MessageID"] == "VSMS32773"
    assert "pass an existing directory" in err["Message"]


def test_affected_job_element_from_both_ends(service: Service, client: LocalClient) -> None:
    vm_keys = {"CreationClassName": names.COMPUTER_SYSTEM,
               "Name": "0D7BD4A2-3C63-4B4C-9A55-0A7C4BE4C0DE"}
    vm = pywbem.CIMInstanceName(names.COMPUTER_SYSTEM, keybindings=vm_keys, namespace=NS)
    path, _ = _blocking_job(service, affected=(AffectedElement(names.COMPUTER_SYSTEM, vm_keys),))
    other, _ = _blocking_job(service)
    reg = service.registry
    from_job = reg.references(NS, path, result_class=names.AFFECTED_JOB_ELEMENT)
    assert len(from_job) == 1
    assoc = from_job[0]
    assert assoc.classname == names.AFFECTED_JOB_ELEMENT
    assert assoc["AffectingElement"].keybindings["InstanceID"] == path.keybindings["InstanceID"]
    assert assoc["AffectedElement"].keybindings["Name"] == vm_keys["Name"]
    assert list(assoc["ElementEffects"]) == [5]
    assert reg.get_instance(NS, assoc.path)["AffectedElement"] == assoc["AffectedElement"]
    from_vm = reg.references(NS, vm, result_class=names.AFFECTED_JOB_ELEMENT,
                             role="AffectedElement")
    assert [a["AffectingElement"].keybindings["InstanceID"] for a in from_vm] == [
        path.keybindings["InstanceID"]]
    jobs = reg.associators(NS, vm, assoc_class=names.AFFECTED_JOB_ELEMENT,
                           result_class=names.CONCRETE_JOB)
    assert [j["InstanceID"] for j in jobs] == [path.keybindings["InstanceID"]]
    assert reg.references(NS, other, result_class=names.AFFECTED_JOB_ELEMENT) == []
    for p in (path, other):
        client.invoke(p, "RequestStateChange", RequestedState=pywbem.Uint16(4))
        wait_state(client, p, FINISHED)


def test_a_vm_state_change_job_is_linked_to_its_vm(service: Service, client: LocalClient,
                                                   storage_root: Path) -> None:
    name = f"jobs-cim-{storage_root.name}"
    vm = hyperv.define_vm(client, name, memory_mb=64)
    guid = str(vm.keybindings["Name"])
    try:
        rv, out, job = client.run(vm, "RequestStateChange", timeout=DEADLINE,
                                  RequestedState=pywbem.Uint16(2))
        assert rv == ReturnCode.JOB_STARTED and job is not None
        assert job["JobState"] == JobState.COMPLETED, job["ErrorDescription"]
        # job -> VM
        found = client.affected_vm(job)
        assert found["Name"] == guid and found["ElementName"] == name
        # VM -> job
        jobs = service.registry.associators(NS, vm, assoc_class=names.AFFECTED_JOB_ELEMENT,
                                            result_class=names.CONCRETE_JOB)
        assert job["InstanceID"] in [j["InstanceID"] for j in jobs]
        refs = service.registry.references(NS, vm, result_class=names.AFFECTED_JOB_ELEMENT)
        mine = [r for r in refs
                if r["AffectingElement"].keybindings["InstanceID"] == job["InstanceID"]]
        assert len(mine) == 1 and list(mine[0]["ElementEffects"])
    finally:
        with suppress(Exception):
            service.host.undefine(guid)
