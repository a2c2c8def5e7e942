"""Msvm_ConcreteJob and Msvm_StorageJob (instances and methods) and Msvm_AffectedJobElement.

Job methods:
- RequestStateChange(RequestedState, TimeoutPeriod) returns the DMTF StateChangeReturn codes of
  the job engine (4096 once a Terminate/Kill is under way, 4097 for a finished job, 1 for
  Start/Suspend/Service or a job that cannot be cancelled, 5 for a bad value). With a non-zero
  TimeoutPeriod interval it waits that long for the job to end: 0 if it did, 3 if not (the
  cancellation goes on).
- GetError() returns 0 and Error = an embedded CIM_Error when the job failed or was terminated,
  or NULL otherwise; GetErrorEx() the same as a one-element Errors array of Msvm_Error.
- KillJob (deprecated) and any other method: 32770 Not supported (with an ErrorDescription).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import pywbem

from vsms.auth.policy import Role
from vsms.cim import names
from vsms.cim.embedded import serialize_instance
from vsms.cim.enums import JobState, ReturnCode, StateChangeReturn
from vsms.errors import InvalidParameter, NotFound
from vsms.mapping.jobs import error_instance, job_instance
from vsms.model.job import JobRecord
from vsms.providers.base import CIMTarget, ServiceProvider, association, method
from vsms.providers.common import Params, Result, job_path, key, param
from vsms.providers.context import ServiceContext

log = logging.getLogger(__name__)

JOB_CLASSES = (names.CONCRETE_JOB, names.STORAGE_JOB)
MSVM_ERROR = "Msvm_Error"  # what GetErrorEx returns
# The longest a RequestStateChange call blocks, whatever TimeoutPeriod asks for.
MAX_STATE_CHANGE_WAIT = timedelta(minutes=5)
_O = Role.OPERATOR


def _find(ctx: ServiceContext, path: pywbem.CIMInstanceName) -> JobRecord | None:
    """The job at ``path`` (class must match the record's class), or None."""
    try:
        instance_id = key(path, "InstanceID")
    except InvalidParameter:
        return None
    rec = ctx.jobs.get(instance_id)
    if rec is None and instance_id != instance_id.upper():
        rec = ctx.jobs.get(instance_id.upper())
    if rec is None or rec.classname.lower() != path.classname.lower():
        return None
    return rec


def _interval(value: Any) -> timedelta | None:
    """TimeoutPeriod as a timedelta (None for NULL); ValueError when it is not an interval."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        value = pywbem.CIMDateTime(value.strip())
    if isinstance(value, pywbem.CIMDateTime) and value.is_interval:
        td = value.timedelta
        assert isinstance(td, timedelta)
        return td
    raise ValueError(f"TimeoutPeriod must be a CIM interval, got {value!r}")


class JobProvider(ServiceProvider):
    """Instances and methods of Msvm_ConcreteJob and Msvm_StorageJob, from the job engine."""

    classnames = JOB_CLASSES

    def enumerate(self, classname: str) -> Iterable[pywbem.CIMInstance]:
        return [job_instance(r) for r in self.ctx.jobs.records()
                if r.classname.lower() == classname.lower()]

    def get(self, path: pywbem.CIMInstanceName) -> pywbem.CIMInstance | None:
        rec = _find(self.ctx, path)
        return job_instance(rec) if rec is not None else None

    def _job(self, target: CIMTarget) -> JobRecord | None:
        return _find(self.ctx, target) if isinstance(target, pywbem.CIMInstanceName) else None

    @method("GetError", _O)
    def get_error(self, target: CIMTarget, params: Params) -> Result:
        rec = self._job(target)
        if rec is None:
            return int(ReturnCode.INVALID_PARAMETER), {}
        err = error_instance(rec)
        return int(ReturnCode.COMPLETED), {
            "Error": serialize_instance(err) if err is not None else None}

    @method("GetErrorEx", _O)
    def get_error_ex(self, target: CIMTarget, params: Params) -> Result:
        rec = self._job(target)
        if rec is None:
            return int(ReturnCode.INVALID_PARAMETER), {}
        err = error_instance(rec, classname=MSVM_ERROR)
        return int(ReturnCode.COMPLETED), {
            "Errors": [serialize_instance(err)] if err is not None else None}

    @method("RequestStateChange", _O, params=("RequestedState", "TimeoutPeriod"))
    def request_state_change(self, target: CIMTarget, params: Params) -> Result:
        rec = self._job(target)
        requested = param(params, "RequestedState", required=False)
        if rec is None or isinstance(requested, bool) or not isinstance(requested, int):
            return int(StateChangeReturn.INVALID_PARAMETER), {}
        try:
            timeout = _interval(param(params, "TimeoutPeriod", required=False))
        except (ValueError, TypeError) as exc:
            log.info("RequestStateChange on job %s: %s", rec.instance_id, exc)
            return int(StateChangeReturn.INVALID_PARAMETER), {}
        try:
            code = self.ctx.jobs.request_state_change(rec.instance_id, int(requested))
        except NotFound:
            return int(StateChangeReturn.INVALID_PARAMETER), {}
        if code != StateChangeReturn.TRANSITION_STARTED or not timeout:
            return int(code), {}
        wait = min(timeout, MAX_STATE_CHANGE_WAIT).total_seconds()
        done = self.ctx.jobs.wait(rec.instance_id, wait)
        if JobState(done.state).finished:
            return int(StateChangeReturn.COMPLETED), {}
        return int(StateChangeReturn.TIMEOUT), {}


class AffectedJobElementProvider(ServiceProvider):
    """Msvm_AffectedJobElement: each Msvm_ConcreteJob to the elements its record names.

    AffectingElement is declared as an Msvm_ConcreteJob reference, so Msvm_StorageJob records
    (which never name affected elements) take no part.
    """

    classnames = (names.AFFECTED_JOB_ELEMENT,)

    def enumerate(self, classname: str) -> Iterable[pywbem.CIMInstance]:
        out = []
        for rec in self.ctx.jobs.records():
            if rec.classname != names.CONCRETE_JOB:
                continue
            job = job_path(rec)
            for element in rec.affected:
                affected = pywbem.CIMInstanceName(element.classname, keybindings=dict(element.keys),
                                                  namespace=names.NAMESPACE)
                effects = [pywbem.Uint16(e) for e in element.effects]
                out.append(association(
                    names.AFFECTED_JOB_ELEMENT,
                    {"AffectingElement": job, "AffectedElement": affected},
                    {"ElementEffects": pywbem.CIMProperty("ElementEffects", effects,
                                                          type="uint16", is_array=True),
                     "OtherElementEffectsDescriptions": pywbem.CIMProperty(
                         "OtherElementEffectsDescriptions", None, type="string",
                         is_array=True)},
                    ref_classes={"AffectingElement": names.CONCRETE_JOB,
                                 "AffectedElement": "CIM_ManagedElement"}))
        return out
