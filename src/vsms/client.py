"""A small client of the Python API (``Service.registry``), shaped like a WBEM client session.

It is what the tests and the scripted demo use; the ``vsms`` command and the examples use the
same calls through pywbem over CIM-XML.
"""

from __future__ import annotations

import time
from typing import Any

import pywbem

from vsms.cim import names
from vsms.cim.enums import JobState, ReturnCode
from vsms.errors import OperationFailed
from vsms.providers.registry import Registry


class LocalClient:
    def __init__(self, registry: Registry, namespace: str = names.NAMESPACE) -> None:
        self.registry = registry
        self.namespace = namespace

    def service(self, classname: str = names.VSMS) -> pywbem.CIMInstanceName:
        found = self.registry.enumerate_instances(self.namespace, classname)
        if not found or found[0].path is None:
            raise OperationFailed(f"no {classname} instance")
        path: pywbem.CIMInstanceName = found[0].path
        return path

    def invoke(self, target: pywbem.CIMInstanceName | pywbem.CIMClassName | str, method: str,
               **params: Any) -> tuple[int, dict[str, Any]]:
        if isinstance(target, str):
            target = self.service(target)
        return self.registry.invoke_method(self.namespace, target, method, params)

    def vsms(self, method: str, **params: Any) -> tuple[int, dict[str, Any]]:
        return self.invoke(names.VSMS, method, **params)

    def job(self, path: pywbem.CIMInstanceName) -> pywbem.CIMInstance:
        return self.registry.get_instance(self.namespace, path)

    def wait(self, path: pywbem.CIMInstanceName, timeout: float = 300.0,
             interval: float = 0.05) -> pywbem.CIMInstance:
        """Poll the job like a Hyper-V client until JobState leaves New/Starting/Running."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(path)
            if JobState(int(job["JobState"])).finished:
                return job
            if time.monotonic() > deadline:
                raise OperationFailed(f"job {path} did not finish within {timeout} s")
            time.sleep(interval)

    def run(self, target: pywbem.CIMInstanceName | str, method: str, timeout: float = 300.0,
            **params: Any) -> tuple[int, dict[str, Any], pywbem.CIMInstance | None]:
        """Invoke, and when a job was started wait for it: (ReturnValue, out, finished job)."""
        rv, out = self.invoke(target, method, **params)
        if rv == ReturnCode.JOB_STARTED:
            return rv, out, self.wait(out["Job"], timeout)
        return rv, out, None

    def vm(self, name: str) -> pywbem.CIMInstance:
        """The Msvm_ComputerSystem whose ElementName is ``name`` (exactly one)."""
        found = [i for i in self.registry.enumerate_instances(self.namespace, names.COMPUTER_SYSTEM)
                 if i["ElementName"] == name and i["Caption"] == "Virtual Machine"]
        if len(found) != 1:
            raise OperationFailed(f"expected one VM named {name!r}, found {len(found)}")
        return found[0]

    def affected_vm(self, job: pywbem.CIMInstance) -> pywbem.CIMInstance:
        """The VM a finished job affected (through Msvm_AffectedJobElement)."""
        assert job.path is not None
        found = self.registry.associators(self.namespace, job.path,
                                          assoc_class=names.AFFECTED_JOB_ELEMENT,
                                          result_class=names.COMPUTER_SYSTEM)
        if len(found) != 1:
            raise OperationFailed(f"job {job.path} affected {len(found)} VMs")
        return found[0]
