"""Route a decoded call to its handler and turn every failure into a CIM status.

Intrinsic operations are looked up in :data:`INTRINSIC` (traditional) and
:data:`vsms.wbem.pull.PULL_OPS`; the other DSP0200 operations (Create/Modify/Delete…, Get/
SetProperty, Set/DeleteQualifier, EnumerationCount) and unknown names get CIM_ERR_NOT_SUPPORTED,
which is also what makes pywbem fall back from pull operations it meets unsupported.

Authorization (``vsms.auth.policy``) comes first: given the caller's :class:`Principal`, a
denied intrinsic operation gets CIM_ERR_ACCESS_DENIED and a denied extrinsic method
ReturnValue 32769 without reaching a provider. Then every operation of an authenticated caller
runs on the registry as that caller sees it (``vsms.auth.scopes.ScopedRegistry``: per-VM
scopes; a caller without scopes sees everything). With an audit log, every extrinsic call (denied,
failed or not) is written to it, and the job a call started (4096) is watched until it ends.

The same steps serve the WS-Management front end (``vsms.wsman``): :meth:`Dispatcher.read` runs a
read as an intrinsic operation would be run (role, scoped view, errors to a CIM status), and
:meth:`Dispatcher.extrinsic` takes a ``render`` for the method's result in another wire format.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pywbem

from vsms import errors
from vsms.auth import policy
from vsms.auth.audit import AuditLog, summarise_arguments
from vsms.auth.basic import Principal
from vsms.auth.jobwatch import JobWatcher
from vsms.auth.scopes import JobOwners, ScopedRegistry
from vsms.cim.enums import ReturnCode
from vsms.providers.context import caller
from vsms.providers.registry import Registry
from vsms.wbem import extrinsic, intrinsic
from vsms.wbem.args import Args, Ctx, Result
from vsms.wbem.contexts import EnumerationContexts
from vsms.wbem.decode import IMethodCall, MethodCall, ProtocolError, param_content
from vsms.wbem.pull import PULL_OPS
from vsms.wbem.xmltree import XmlError, parse

log = logging.getLogger(__name__)

_FLAGS = ("LocalOnly", "IncludeQualifiers", "IncludeClassOrigin")
INTRINSIC: dict[str, tuple[Callable[[Ctx, Args], Result], tuple[str, ...]]] = {
    "GetClass": (intrinsic.get_class, ("ClassName", *_FLAGS, "PropertyList")),
    "EnumerateClasses": (intrinsic.enumerate_classes, ("ClassName", "DeepInheritance", *_FLAGS)),
    "EnumerateClassNames": (intrinsic.enumerate_class_names, ("ClassName", "DeepInheritance")),
    "GetInstance": (intrinsic.get_instance, ("InstanceName", *_FLAGS, "PropertyList")),
    "EnumerateInstances": (intrinsic.enumerate_instances, (
        "ClassName", "DeepInheritance", *_FLAGS, "PropertyList")),
    "EnumerateInstanceNames": (intrinsic.enumerate_instance_names, ("ClassName",)),
    "Associators": (intrinsic.associators, (
        "ObjectName", "AssocClass", "ResultClass", "Role", "ResultRole", "IncludeQualifiers",
        "IncludeClassOrigin", "PropertyList")),
    "AssociatorNames": (intrinsic.associator_names, (
        "ObjectName", "AssocClass", "ResultClass", "Role", "ResultRole")),
    "References": (intrinsic.references, (
        "ObjectName", "ResultClass", "Role", "IncludeQualifiers", "IncludeClassOrigin",
        "PropertyList")),
    "ReferenceNames": (intrinsic.reference_names, ("ObjectName", "ResultClass", "Role")),
    "GetQualifier": (intrinsic.get_qualifier, ("QualifierName",)),
    "EnumerateQualifiers": (intrinsic.enumerate_qualifiers, ()),
    "ExecQuery": (intrinsic.exec_query, ("QueryLanguage", "Query")),
}
_BY_NAME = {k.lower(): (k, v) for k, v in INTRINSIC.items()}
_PULL_BY_NAME = {k.lower(): (k, v) for k, v in PULL_OPS.items()}
_NOT_SUPPORTED = {n.lower() for n in (
    "CreateClass", "ModifyClass", "DeleteClass", "CreateInstance", "ModifyInstance",
    "DeleteInstance", "GetProperty", "SetProperty", "SetQualifier", "DeleteQualifier",
    "EnumerationCount")}

_STATUS_OF = (
    (errors.NotFound, pywbem.CIM_ERR_NOT_FOUND),
    (errors.FileNotFound, pywbem.CIM_ERR_NOT_FOUND),
    (errors.InvalidParameter, pywbem.CIM_ERR_INVALID_PARAMETER),
    (errors.IncorrectDataType, pywbem.CIM_ERR_INVALID_PARAMETER),
    (errors.ValidationFailed, pywbem.CIM_ERR_INVALID_PARAMETER),
    (errors.NotSupported, pywbem.CIM_ERR_NOT_SUPPORTED),
    (errors.AccessDenied, pywbem.CIM_ERR_ACCESS_DENIED),
)


@dataclass
class Outcome:
    """The content of (I)METHODRESPONSE, or the CIM error to put there instead."""

    body: str = ""
    status: int = 0
    description: str = ""
    classname: str | None = None
    count: int | None = None
    ran: extrinsic.Ran | None = None  # an extrinsic call's result (ReturnValue, OUT values)


class Dispatcher:
    def __init__(self, registry: Registry, host: str,
                 contexts: EnumerationContexts | None = None, *,
                 audit: AuditLog | None = None) -> None:
        self.registry = registry
        self.host = host
        self.contexts = contexts if contexts is not None else EnumerationContexts()
        self.audit = audit
        self.watcher = JobWatcher(registry, audit) if audit is not None else None
        self.job_owners = JobOwners()  # who started which job (scoped users see their jobs)

    def close(self) -> None:
        """Stop watching jobs for the audit log (their lines say the outcome was not seen)."""
        if self.watcher is not None:
            self.watcher.close()

    def intrinsic(self, call: IMethodCall, principal: Principal | None = None) -> Outcome:
        """``principal`` None: no authorization check (the Python API, tests)."""
        if principal is not None and not policy.may_run(principal.role, call.name):
            log.warning("%s (%s) from %s may not run %s", principal.user or "-",
                        principal.role.label, principal.source, call.name)
            return Outcome(status=pywbem.CIM_ERR_ACCESS_DENIED,
                           description=f"access denied: {call.name} needs the "
                                       f"{policy.operation_role(call.name).label} role; user "
                                       f"{principal.user!r} has the {principal.role.label} "
                                       f"role")
        return self._guard(
            lambda: self._intrinsic(call, self._view(principal), principal), call.name)

    def read(self, operation: str, principal: Principal | None,
             run: Callable[[Registry], Outcome]) -> Outcome:
        """Run a read (``operation``: the intrinsic operation it amounts to, for the role table)
        on the registry as ``principal`` sees it; failures become the CIM status."""
        if principal is not None and not policy.may_run(principal.role, operation):
            return Outcome(status=pywbem.CIM_ERR_ACCESS_DENIED,
                           description=f"access denied: {operation} needs the "
                                       f"{policy.operation_role(operation).label} role")
        return self._guard(lambda: run(self._view(principal)), operation)

    def extrinsic(self, call: MethodCall, principal: Principal | None = None,
                  render: Callable[[extrinsic.Ran], str] | None = None) -> Outcome:
        """``render``: the reply content of the result (default: CIM-XML METHODRESPONSE)."""
        def show(ran: extrinsic.Ran) -> str:
            return render(ran) if render is not None else extrinsic.cimxml(ran, self.host)

        def run() -> Outcome:
            token = caller.set(principal.user if principal else "")  # the Owner of its jobs
            try:
                ran = extrinsic.run(self._view(principal), self.host, call)
            finally:
                caller.reset(token)
            return Outcome(show(ran), classname=ran.classname, ran=ran)

        classname = call.target.classname
        allowed = principal is None or policy.may_call(principal.role, classname, call.name)
        if allowed:
            outcome = self._guard(run, f"{classname}.{call.name}")
        else:
            assert principal is not None
            log.warning("%s (%s) from %s may not call %s.%s: ReturnValue %d",
                        principal.user or "-", principal.role.label, principal.source,
                        classname, call.name, ReturnCode.ACCESS_DENIED)
            denied = extrinsic.Ran(int(ReturnCode.ACCESS_DENIED), {}, None, classname,
                                   call.namespace)
            outcome = Outcome(show(denied), classname=classname, ran=denied)
        if self.audit is not None:
            self._audit(call, principal, allowed, outcome)
        return outcome

    def _audit(self, call: MethodCall, principal: Principal | None, allowed: bool,
               outcome: Outcome) -> None:
        rv, job = _method_result(outcome.body) if not outcome.status else (None, None)
        if outcome.ran is not None:
            rv = outcome.ran.return_value
            ref = next((v for k, v in outcome.ran.out.items() if k.lower() == "job"), None)
            job = ref if isinstance(ref, pywbem.CIMInstanceName) else None
        who = {"user": principal.user if principal else "",
               "source": principal.source if principal else "",
               "class": call.target.classname, "method": call.name}
        fields: dict[str, Any] = {
            **who, "role": principal.role.label if principal else "",
            "auth": principal.via if principal else "",
            "namespace": call.namespace, "target": _target_text(call.target),
            "arguments": summarise_arguments((pv.name, pv.value) for pv in call.params),
            "allowed": allowed, "return_value": rv}
        if outcome.status:
            fields.update(cim_status=outcome.status, error=outcome.description)
        if job is not None:
            fields["job"] = str(job.keybindings.get("InstanceID", job))
        assert self.audit is not None
        self.audit.write("method", **fields)
        if job is not None and rv == ReturnCode.JOB_STARTED and self.watcher is not None:
            self.watcher.watch(job.namespace or call.namespace, job, who)

    def _view(self, principal: Principal | None) -> Registry:
        """The registry as the caller sees it: filtered by its scopes (vsms.auth.scopes); the
        registry itself for callers without scopes."""
        if principal is None or not principal.grants:
            return self.registry
        return ScopedRegistry(self.registry, principal, self.job_owners)

    def _intrinsic(self, call: IMethodCall, registry: Registry,
                   principal: Principal | None) -> Outcome:
        low = call.name.lower()
        ns = registry.namespace(call.namespace).name
        ctx = Ctx(registry, ns, self.host, principal.user if principal else None)
        if low in _BY_NAME:
            handler, allowed = _BY_NAME[low][1]
            result = handler(ctx, Args(call, allowed))
        elif low in _PULL_BY_NAME:
            phandler, allowed = _PULL_BY_NAME[low][1]
            result = phandler(ctx, Args(call, allowed), self.contexts)
        elif low in _NOT_SUPPORTED:
            raise pywbem.CIMError(pywbem.CIM_ERR_NOT_SUPPORTED,
                                  f"operation {call.name} is not supported by this server "
                                  f"(its classes and instances are read-only over CIM-XML)")
        else:
            raise pywbem.CIMError(pywbem.CIM_ERR_NOT_SUPPORTED,
                                  f"{call.name} is not a DSP0200 intrinsic operation")
        body = result.ireturn
        inner = "" if body is None else f"<IRETURNVALUE>{body}</IRETURNVALUE>"
        return Outcome(inner + "".join(result.params), classname=result.classname,
                       count=result.count)

    @staticmethod
    def _guard(run: Callable[[], Outcome], what: str) -> Outcome:
        try:
            return run()
        except pywbem.CIMError as exc:
            return Outcome(status=exc.status_code, description=exc.status_description or "")
        except errors.VsmsError as err:
            status = next((s for cls, s in _STATUS_OF if isinstance(err, cls)),
                          pywbem.CIM_ERR_FAILED)
            log.log(logging.INFO if err.expected else logging.ERROR, "%s: %s", what, err)
            return Outcome(status=status, description=str(err))
        except Exception as exc:
            log.exception("internal error in %s", what)
            return Outcome(status=pywbem.CIM_ERR_FAILED,
                           description=f"internal error in {what}: {type(exc).__name__}: {exc} "
                                       f"(logged by the server)")


def _target_text(target: pywbem.CIMInstanceName | pywbem.CIMClassName) -> str:
    if isinstance(target, pywbem.CIMInstanceName):
        keys = ",".join(f"{k}={v}" for k, v in sorted(target.keybindings.items()))
        return f"{target.classname}.{keys}" if keys else str(target.classname)
    return str(target.classname)


def _method_result(body: str) -> tuple[int | None, pywbem.CIMInstanceName | None]:
    """ReturnValue and the ``Job`` OUT reference of a METHODRESPONSE content we wrote."""
    try:
        root = parse(f"<R>{body}</R>".encode())
    except XmlError:
        return None, None
    rv: int | None = None
    job: pywbem.CIMInstanceName | None = None
    for node in root.kids:
        if node.name == "RETURNVALUE":
            value = next((k for k in node.kids if k.name == "VALUE"), None)
            text = value.text if value is not None else node.text
            try:
                rv = int(text.strip())
            except ValueError:
                rv = None
        elif node.name == "PARAMVALUE" and (node.attr("NAME") or "").lower() == "job":
            try:
                kind, value = param_content(node)
            except ProtocolError:
                continue
            if kind == "ref" and isinstance(value, pywbem.CIMInstanceName):
                job = value
    return rv, job
