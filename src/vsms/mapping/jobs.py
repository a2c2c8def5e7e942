"""Job records as Msvm_ConcreteJob / Msvm_StorageJob instances, and a failed job as CIM_Error.

``job_instance`` fills every property of the reference class pages (the ones a job never uses,
such as RunMonth or UntilTime, are present as typed NULLs). ``error_instance`` gives the CIM_Error
that GetError returns for a job that failed or was terminated, and None for any other job.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pywbem

from vsms.cim import names
from vsms.cim.datetimes import interval, to_cim
from vsms.cim.enums import JobState, ReturnCode
from vsms.model.job import TIME_BEFORE_REMOVAL, JobRecord

CIM_ERROR = "CIM_Error"
OWNING_ENTITY = "vsms"
STORAGE_JOB_CAPTION = "Storage Job"

_FAILED_STATES = (JobState.TERMINATED, JobState.KILLED, JobState.EXCEPTION)

# CIM_Job.RecoveryAction 2 = "Do Not Continue": a failed job is never re-run by the service.
_RECOVERY_DO_NOT_CONTINUE = 2
# CIM_Job.LocalOrUtcTime 2 = UTC: every time we report is UTC.
_UTC_TIME = 2

# HRESULTs for Msvm_StorageJob.JobCompletionStatusCode.
_S_OK = 0x00000000
_E_FAIL = 0x80004005
_HRESULT_CANCELLED = 0x800704C7  # HRESULT_FROM_WIN32(ERROR_CANCELLED)

_JOB_STATUS = {
    JobState.NEW: "Job is queued",
    JobState.STARTING: "Job is starting",
    JobState.RUNNING: "Job is running",
    JobState.SUSPENDED: "Job is suspended",
    JobState.SHUTTING_DOWN: "Job is shutting down and rolling back its changes",
    JobState.COMPLETED: "Job completed successfully",
    JobState.TERMINATED: "Job was terminated at the client's request",
    JobState.KILLED: "Job was killed at the client's request",
    JobState.EXCEPTION: "Job failed",
    JobState.SERVICE: "Job is in service state",
    JobState.QUERY_PENDING: "Job is waiting for a client",
}


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


def _elapsed(rec: JobRecord, now: datetime) -> timedelta:
    """Running time so far, or the total once the job has finished (never negative)."""
    if rec.start_time is None:
        return timedelta(0)
    end = rec.end_time if rec.end_time is not None else now
    return max(_utc(end) - _utc(rec.start_time), timedelta(0))


def _when(dt: datetime | None) -> pywbem.CIMDateTime | None:
    return to_cim(_utc(dt)) if dt is not None else None


def job_status(rec: JobRecord) -> str:
    """JobStatus: the text the job reported, else one derived from its state."""
    return rec.job_status or _JOB_STATUS.get(JobState(rec.state), "")


def _completion_hresult(rec: JobRecord) -> int:
    if rec.state in (JobState.TERMINATED, JobState.KILLED):
        return _HRESULT_CANCELLED
    if rec.state == JobState.EXCEPTION:
        return _E_FAIL
    return _S_OK


def _prop(name: str, value: Any, type_: str, *, array: bool = False) -> pywbem.CIMProperty:
    return pywbem.CIMProperty(name, value, type=type_, is_array=array)


def job_instance(rec: JobRecord, *, now: datetime | None = None) -> pywbem.CIMInstance:
    """The Msvm_ConcreteJob or Msvm_StorageJob (after ``rec.classname``) for ``rec``, path set.

    ``now`` (default: the current UTC time) only matters for ElapsedTime of a running job.
    """
    now = now if now is not None else datetime.now(UTC)
    storage = rec.classname == names.STORAGE_JOB
    failed = rec.state in _FAILED_STATES
    u16, u32 = pywbem.Uint16, pywbem.Uint32
    props = [
        _prop("InstanceID", rec.instance_id, "string"),
        _prop("Caption", STORAGE_JOB_CAPTION if storage else rec.name, "string"),
        _prop("Description", rec.description, "string"),
        _prop("ElementName", rec.name, "string"),
        _prop("Name", rec.name, "string"),
        _prop("InstallDate", None, "datetime"),
        _prop("OperationalStatus", [u16(2)], "uint16", array=True),
        _prop("StatusDescriptions", ["OK"], "string", array=True),
        _prop("Status", None, "string"),
        _prop("HealthState", u16(5), "uint16"),
        _prop("JobStatus", job_status(rec), "string"),
        _prop("TimeSubmitted", _when(rec.time_submitted), "datetime"),
        _prop("ScheduledStartTime", None, "datetime"),
        _prop("StartTime", _when(rec.start_time), "datetime"),
        _prop("ElapsedTime", interval(_elapsed(rec, _utc(now))), "datetime"),
        _prop("JobRunTimes", u32(1), "uint32"),
        _prop("RunMonth", None, "uint8"),
        _prop("RunDay", None, "sint8"),
        _prop("RunDayOfWeek", None, "sint8"),
        _prop("RunStartInterval", None, "datetime"),
        _prop("LocalOrUtcTime", u16(_UTC_TIME), "uint16"),
        _prop("UntilTime", None, "datetime"),
        _prop("Notify", None, "string"),
        _prop("Owner", rec.owner or None, "string"),
        _prop("Priority", u32(0), "uint32"),
        _prop("PercentComplete", u16(max(0, min(100, int(rec.percent)))), "uint16"),
        # finished jobs are removed after TimeBeforeRemoval
        _prop("DeleteOnCompletion", True, "boolean"),
        _prop("ErrorCode", u16(rec.error_code), "uint16"),
        _prop("ErrorDescription", rec.error_description or None, "string"),
        _prop("ErrorSummaryDescription", rec.error_summary or None, "string"),
        _prop("RecoveryAction", u16(_RECOVERY_DO_NOT_CONTINUE), "uint16"),
        _prop("OtherRecoveryAction", None, "string"),
        _prop("JobState", u16(rec.state), "uint16"),
        _prop("TimeOfLastStateChange", _when(rec.time_of_last_state_change), "datetime"),
        _prop("TimeBeforeRemoval", interval(TIME_BEFORE_REMOVAL), "datetime"),
        _prop("Cancellable", bool(rec.cancellable), "boolean"),
    ]
    if storage:
        parent = rec.result.get("Parent") if failed else None
        child = rec.result.get("Child") if failed else None
        props += [
            _prop("Type", u16(rec.storage_job_type), "uint16"),
            _prop("JobCompletionStatusCode", u32(_completion_hresult(rec)), "uint32"),
            _prop("Parent", parent if isinstance(parent, str) and parent else None, "string"),
            _prop("Child", child if isinstance(child, str) and child else None, "string"),
        ]
    path = pywbem.CIMInstanceName(rec.classname, keybindings={"InstanceID": rec.instance_id},
                                  namespace=names.NAMESPACE)
    return pywbem.CIMInstance(rec.classname, properties=props, path=path)


# --------------------------------------------------------------------------- CIM_Error

# CIM_Error.ErrorType
_SOFTWARE_ERROR, _OTHER_ERROR, _SECURITY_ERROR = 4, 1, 7
_OVERSUBSCRIPTION_ERROR, _UNAVAILABLE_RESOURCE, _UNSUPPORTED_OPERATION = 8, 9, 10
# CIM_Error.PerceivedSeverity
_LOW, _MEDIUM, _HIGH = 2, 3, 4
# CIM_Error.ProbableCause (ITU X.733 numbering used by the CIM_Error page)
_CAUSE_OTHER, _CAUSE_CONFIGURATION, _CAUSE_OUT_OF_MEMORY = 1, 8, 33
_CAUSE_SOFTWARE_ERROR, _CAUSE_RESOURCE_UNAVAILABLE, _CAUSE_UNAUTHORIZED = 47, 57, 65
_CAUSE_ELEMENT_MISSING, _CAUSE_TIMEOUT, _CAUSE_PROCEDURAL = 73, 111, 129
# CIM_Error.CIMStatusCode (DSP0201)
_CIM_FAILED, _CIM_ACCESS_DENIED, _CIM_INVALID_PARAMETER = 1, 2, 4
_CIM_NOT_FOUND, _CIM_NOT_SUPPORTED, _CIM_TYPE_MISMATCH = 6, 7, 13
# CIM_Error.ErrorSourceFormat 2 = CIMObjectHandle (ErrorSource holds the job's object path)
_SOURCE_OBJECT_HANDLE = 2

# ReturnCode -> (ErrorType, PerceivedSeverity, ProbableCause, CIMStatusCode)
_ERROR_TABLE: dict[int, tuple[int, int, int, int]] = {
    ReturnCode.FAILED: (_SOFTWARE_ERROR, _HIGH, _CAUSE_SOFTWARE_ERROR, _CIM_FAILED),
    ReturnCode.ACCESS_DENIED: (_SECURITY_ERROR, _MEDIUM, _CAUSE_UNAUTHORIZED, _CIM_ACCESS_DENIED),
    ReturnCode.NOT_SUPPORTED: (_UNSUPPORTED_OPERATION, _MEDIUM, _CAUSE_OTHER, _CIM_NOT_SUPPORTED),
    ReturnCode.STATUS_UNKNOWN: (_SOFTWARE_ERROR, _HIGH, _CAUSE_SOFTWARE_ERROR, _CIM_FAILED),
    ReturnCode.TIMEOUT: (_SOFTWARE_ERROR, _HIGH, _CAUSE_TIMEOUT, _CIM_FAILED),
    ReturnCode.INVALID_PARAMETER: (_SOFTWARE_ERROR, _MEDIUM, _CAUSE_CONFIGURATION,
                                   _CIM_INVALID_PARAMETER),
    ReturnCode.SYSTEM_IN_USE: (_UNAVAILABLE_RESOURCE, _MEDIUM, _CAUSE_PROCEDURAL, _CIM_FAILED),
    ReturnCode.INVALID_STATE: (_SOFTWARE_ERROR, _MEDIUM, _CAUSE_PROCEDURAL, _CIM_FAILED),
    ReturnCode.INCORRECT_DATA_TYPE: (_SOFTWARE_ERROR, _MEDIUM, _CAUSE_CONFIGURATION,
                                     _CIM_TYPE_MISMATCH),
    ReturnCode.SYSTEM_NOT_AVAILABLE: (_UNAVAILABLE_RESOURCE, _HIGH, _CAUSE_RESOURCE_UNAVAILABLE,
                                      _CIM_FAILED),
    ReturnCode.OUT_OF_MEMORY: (_OVERSUBSCRIPTION_ERROR, _HIGH, _CAUSE_OUT_OF_MEMORY, _CIM_FAILED),
    ReturnCode.FILE_NOT_FOUND: (_UNAVAILABLE_RESOURCE, _MEDIUM, _CAUSE_ELEMENT_MISSING,
                                _CIM_NOT_FOUND),
}

_CIM_STATUS_TEXT = {
    _CIM_FAILED: "CIM_ERR_FAILED", _CIM_ACCESS_DENIED: "CIM_ERR_ACCESS_DENIED",
    _CIM_INVALID_PARAMETER: "CIM_ERR_INVALID_PARAMETER", _CIM_NOT_FOUND: "CIM_ERR_NOT_FOUND",
    _CIM_NOT_SUPPORTED: "CIM_ERR_NOT_SUPPORTED", _CIM_TYPE_MISMATCH: "CIM_ERR_TYPE_MISMATCH",
}


def _code_name(code: int) -> str:
    try:
        return ReturnCode(code).name.replace("_", " ").capitalize()
    except ValueError:
        return f"error {code}"


def error_instance(rec: JobRecord, *, classname: str = CIM_ERROR) -> pywbem.CIMInstance | None:
    """The CIM_Error describing why ``rec`` failed, or None when it has not failed.

    ``classname`` may name a subclass of CIM_Error (GetErrorEx returns Msvm_Error instances).
    A job "failed" when it ended Exception, Terminated or Killed. ErrorSource is the job's object
    path as a WBEM URI (namespace and class, no host).
    """
    if rec.state not in _FAILED_STATES:
        return None
    cancelled = rec.state in (JobState.TERMINATED, JobState.KILLED)
    code = rec.error_code or int(ReturnCode.FAILED)
    etype, severity, cause, cim_status = _ERROR_TABLE.get(
        code, (_SOFTWARE_ERROR, _HIGH, _CAUSE_SOFTWARE_ERROR, _CIM_FAILED))
    other_type = None
    if cancelled:
        etype, severity, cause = _OTHER_ERROR, _LOW, _CAUSE_OTHER
        other_type = "Job cancelled"
    message = rec.error_description or rec.error_summary or job_status(rec)
    if cancelled:
        cause_text = "The job was stopped by a RequestStateChange request from a client"
    else:
        cause_text = rec.error_summary or f"{rec.name}: {_code_name(code)}"
    path = pywbem.CIMInstanceName(rec.classname, keybindings={"InstanceID": rec.instance_id},
                                  namespace=names.NAMESPACE)
    u16 = pywbem.Uint16
    props = [
        _prop("ErrorType", u16(etype), "uint16"),
        _prop("OtherErrorType", other_type, "string"),
        _prop("OwningEntity", OWNING_ENTITY, "string"),
        _prop("MessageID", f"VSMS{code}", "string"),
        _prop("Message", message, "string"),
        _prop("MessageArguments", [rec.name, message], "string", array=True),
        _prop("PerceivedSeverity", u16(severity), "uint16"),
        _prop("ProbableCause", u16(cause), "uint16"),
        _prop("ProbableCauseDescription", cause_text, "string"),
        _prop("RecommendedActions", None, "string", array=True),
        _prop("ErrorSource", path.to_wbem_uri(), "string"),
        _prop("ErrorSourceFormat", u16(_SOURCE_OBJECT_HANDLE), "uint16"),
        _prop("OtherErrorSourceFormat", None, "string"),
        _prop("CIMStatusCode", pywbem.Uint32(cim_status), "uint32"),
        _prop("CIMStatusCodeDescription", _CIM_STATUS_TEXT[cim_status], "string"),
    ]
    return pywbem.CIMInstance(classname, properties=props)
