"""Route a decoded call to its handler and turn every failure into a CIM status.

Intrinsic operations are looked up in :data:`INTRINSIC` (traditional) and
:data:`vsms.wbem.pull.PULL_OPS`; the other DSP0200 operations (Create/Modify/Delete…, Get/
SetProperty, Set/DeleteQualifier, EnumerationCount) and unknown names get CIM_ERR_NOT_SUPPORTED,
which is also what makes pywbem fall back from pull operations it meets unsupported.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import pywbem

from vsms import errors
from vsms.providers.registry import Registry
from vsms.wbem import extrinsic, intrinsic
from vsms.wbem.args import Args, Ctx, Result
from vsms.wbem.decode import IMethodCall, MethodCall
from vsms.wbem.pull import PULL_OPS, EnumerationContexts

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


class Dispatcher:
    def __init__(self, registry: Registry, host: str,
                 contexts: EnumerationContexts | None = None) -> None:
        self.registry = registry
        self.host = host
        self.contexts = contexts if contexts is not None else EnumerationContexts()

    def intrinsic(self, call: IMethodCall) -> Outcome:
        return self._guard(lambda: self._intrinsic(call), call.name)

    def extrinsic(self, call: MethodCall) -> Outcome:
        def run() -> Outcome:
            body, classname = extrinsic.invoke(self.registry, self.host, call)
            return Outcome(body, classname=classname)
        return self._guard(run, f"{call.target.classname}.{call.name}")

    def _intrinsic(self, call: IMethodCall) -> Outcome:
        low = call.name.lower()
        ns = self.registry.namespace(call.namespace).name
        ctx = Ctx(self.registry, ns, self.host)
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
