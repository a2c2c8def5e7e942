"""The operator command's connection to a running vsms, through pywbem over CIM-XML.

``Session`` finds the services and virtual machines, invokes extrinsic methods and follows the
Msvm_ConcreteJob a long call returns (polling JobState and PercentComplete, with a deadline),
the way Hyper-V clients do. Failures become ``CliError`` with a message that says what failed
and why: a method's ReturnValue by its reference name, or the job's ErrorDescription.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import pywbem

from vsms.cim import names
from vsms.cim.enums import JobState, ReturnCode
from vsms.cli import codes
from vsms.cli.progress import JobProgress

VM_CAPTION = "Virtual Machine"
_HTTP_TIMEOUT = 120
_FINISHED = frozenset(int(s) for s in JobState if s.finished)


class CliError(Exception):
    """A failure to report: ``message`` on stderr, ``data`` in the JSON error document."""

    def __init__(self, message: str, *, status: int = 1,
                 data: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.data = dict(data or {})


def method_failed(method: str, code: int, out: Mapping[str, Any]) -> CliError:
    """The error for a ReturnValue that is neither 0 nor 4096."""
    detail = out.get("ErrorDescription")
    why = str(detail) if detail else codes.reason(method, code)
    return CliError(f"{method} failed: {codes.return_name(code)}: {why}",
                    data={"method": method, "return_value": code,
                          "return_name": codes.RETURN_NAMES.get(code, "Unknown error"),
                          "reason": why})


def job_failed(what: str, job: pywbem.CIMInstance) -> CliError:
    """The error for a job that ended in any state but Completed."""
    code = int(job["ErrorCode"] or 0)
    state = codes.job_state_name(job["JobState"])
    text = job["ErrorDescription"] or job["ErrorSummaryDescription"] or f"the job ended {state}"
    return CliError(f"{what} failed: {text} (job {job['InstanceID']} ended {state}, "
                    f"ErrorCode {codes.return_name(code)})",
                    data={"job": job, "error_code": code, "error_description": text,
                          "job_state": state})


def describe_wbem_error(err: pywbem.Error, url: str) -> str:
    """A pywbem failure as one sentence that says what to do."""
    if isinstance(err, pywbem.AuthError):
        return (f"the service at {url} refused the credentials: give --user and --password "
                "(or VSMS_USER and VSMS_PASSWORD)")
    if isinstance(err, pywbem.TimeoutError):
        return f"no answer from the service at {url} in time: {err}"
    if isinstance(err, pywbem.ConnectionError):
        return (f"cannot reach the vsms service at {url}: {err}; is `vsms serve` running? "
                "(set --url or VSMS_URL)")
    if isinstance(err, pywbem.CIMError):
        return f"the service refused the request: {err.status_code_name}: {err.status_description}"
    return f"the exchange with the service at {url} failed: {err}"


class Session:
    """A pywbem connection to root/virtualization plus the Hyper-V call sequences."""

    def __init__(self, url: str, *, user: str | None = None, password: str | None = None,
                 verify: bool = True, ca_certs: str | None = None, timeout: float = 3600.0,
                 poll: float = 0.3) -> None:
        creds = (user, password or "") if user else None
        self.url = url
        self.timeout = timeout
        self.poll = poll
        self.conn = pywbem.WBEMConnection(url, creds, default_namespace=names.NAMESPACE,
                                          no_verification=not verify, ca_certs=ca_certs,
                                          timeout=_HTTP_TIMEOUT)
        if ca_certs or not verify:
            # requests lets $REQUESTS_CA_BUNDLE/$CURL_CA_BUNDLE override the verification pywbem
            # sets on its session; an explicit --ca-cert or --no-verify must win.
            self.conn.session.trust_env = False

    # ------------------------------------------------------------------ finding things
    def service(self, classname: str = names.VSMS) -> pywbem.CIMInstanceName:
        found = self.conn.EnumerateInstanceNames(classname)
        if not found:
            raise CliError(f"the service at {self.url} has no {classname}")
        path: pywbem.CIMInstanceName = found[0]
        return path

    def vms(self) -> list[pywbem.CIMInstance]:
        """Every virtual machine (the host computer system left out)."""
        return [i for i in self.conn.EnumerateInstances(names.COMPUTER_SYSTEM)
                if i.get("Caption") == VM_CAPTION]

    def vm(self, ident: str) -> pywbem.CIMInstance:
        """The VM whose ID (GUID) or name (ElementName) is ``ident``; exactly one."""
        vms = self.vms()
        for vm in vms:
            if str(vm["Name"]).lower() == ident.strip("{}").lower():
                return vm
        named = [vm for vm in vms if vm["ElementName"] == ident]
        if not named:
            raise CliError(f"no virtual machine is named {ident!r}: see `vsms vm list`",
                           data={"vm": ident})
        if len(named) > 1:
            ids = ", ".join(str(vm["Name"]) for vm in named)
            raise CliError(f"{len(named)} virtual machines are named {ident!r} ({ids}): give the "
                           "ID instead of the name", data={"vm": ident})
        return named[0]

    def associators(self, path: pywbem.CIMInstanceName, assoc: str,
                    result: str | None = None) -> list[pywbem.CIMInstance]:
        found: list[pywbem.CIMInstance] = self.conn.Associators(path, AssocClass=assoc,
                                                                ResultClass=result)
        return found

    def settings(self, vm: pywbem.CIMInstance) -> tuple[pywbem.CIMInstance,
                                                        list[pywbem.CIMInstance]]:
        """The VM's Msvm_VirtualSystemSettingData and every component setting (RASDs...)."""
        vssds = self.associators(vm.path, names.SETTINGS_DEFINE_STATE, names.VSSD)
        if len(vssds) != 1:
            raise CliError(f"the virtual machine {vm['ElementName']!r} has {len(vssds)} "
                           f"{names.VSSD} instances instead of one")
        parts = self.associators(vssds[0].path, names.VSSD_COMPONENT)
        return vssds[0], parts

    def affected_vm(self, job: pywbem.CIMInstance) -> pywbem.CIMInstance | None:
        """The virtual machine a finished job affected (Msvm_AffectedJobElement), if any."""
        found = self.associators(job.path, names.AFFECTED_JOB_ELEMENT, names.COMPUTER_SYSTEM)
        return found[0] if found else None

    # ------------------------------------------------------------------ methods and jobs
    def invoke(self, target: pywbem.CIMInstanceName, method: str,
               params: Sequence[tuple[str, Any]] = ()) -> tuple[int, Mapping[str, Any]]:
        rv, out = self.conn.InvokeMethod(method, target, Params=list(params))
        return int(rv), out

    def call(self, target: pywbem.CIMInstanceName, method: str,
             params: Sequence[tuple[str, Any]] = (), *, label: str | None = None
             ) -> tuple[Mapping[str, Any], pywbem.CIMInstance | None]:
        """Invoke and, when a job was started, follow it to the end.

        Returns (out parameters, the finished job or None). Raises CliError when the method
        returns an error or the job ends in any state but Completed.
        """
        rv, out = self.invoke(target, method, params)
        if rv == ReturnCode.JOB_STARTED:
            job = self.wait(out["Job"], label or method)
            return out, job
        if rv != ReturnCode.COMPLETED:
            raise method_failed(method, rv, out)
        return out, None

    def wait(self, job_path: pywbem.CIMInstanceName, label: str) -> pywbem.CIMInstance:
        """Poll the job until it finishes (progress on stderr); CliError unless Completed."""
        progress = JobProgress(label)
        deadline = time.monotonic() + self.timeout
        try:
            while True:
                job: pywbem.CIMInstance = self.conn.GetInstance(job_path)
                state = int(job["JobState"] or 0)
                progress.update(int(job["PercentComplete"] or 0), str(job["JobStatus"] or ""))
                if state in _FINISHED:
                    break
                if time.monotonic() > deadline:
                    raise CliError(
                        f"{label}: job {job['InstanceID']} is still running after "
                        f"{self.timeout:g} s; it goes on in the service: follow it with "
                        "`vsms jobs --watch`", data={"job": job})
                time.sleep(self.poll)
        finally:
            progress.close()
        if state != JobState.COMPLETED:
            raise job_failed(label, job)
        return job


def vm_summary(vm: pywbem.CIMInstance) -> dict[str, Any]:
    """The few facts about a VM that lists and result lines show."""
    state = vm.get("EnabledState")
    return {"name": vm.get("ElementName"), "id": vm.get("Name"),
            "state": codes.state_name(state), "state_code": None if state is None else int(state),
            "health": vm.get("HealthState")}


def job_summary(job: pywbem.CIMInstance) -> dict[str, Any]:
    """A job as ``vsms jobs`` and the JSON results show it."""
    state = job.get("JobState")
    return {"id": job.get("InstanceID"), "class": job.classname, "name": job.get("ElementName"),
            "description": job.get("Description"),
            "state": codes.job_state_name(state), "state_code": None if state is None
            else int(state), "percent": job.get("PercentComplete"),
            "status": job.get("JobStatus"), "error_code": job.get("ErrorCode"),
            "error_description": job.get("ErrorDescription"),
            "submitted": job.get("TimeSubmitted"), "started": job.get("StartTime"),
            "elapsed": job.get("ElapsedTime")}
