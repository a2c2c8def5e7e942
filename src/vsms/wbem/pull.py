"""The pull operations of DSP0200: Open*, Pull*, CloseEnumeration, with expiring contexts.

An Open operation takes a snapshot of the result, returns up to MaxObjectCount items and, when
more remain, an enumeration context that lives for OperationTimeout seconds after each use
(default :attr:`EnumerationContexts.default_timeout`). Contexts are kept in the protocol-neutral
store of :mod:`vsms.wbem.contexts`, owned by the calling user and bounded per user and in all.
Filter queries and ContinueOnError are not supported and say so with their DSP0200 status
codes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pywbem

from vsms.wbem import encode, query
from vsms.wbem.args import Args, Ctx, Result, invalid
from vsms.wbem.contexts import ContextLimit, EnumerationContexts, UnknownContext
from vsms.wbem.intrinsic import associated, instance_shape, render

# what each kind of context yields, and which Pull reads it
WITH_PATH, PATHS, NO_PATH = "instances with path", "instance paths", "instances"
_PULL_OP = {WITH_PATH: "PullInstancesWithPath", PATHS: "PullInstancePaths",
            NO_PATH: "PullInstances"}
_OPEN_COMMON = ("FilterQueryLanguage", "FilterQuery", "OperationTimeout", "ContinueOnError",
                "MaxObjectCount")


def _cim_error(exc: ContextLimit | UnknownContext) -> pywbem.CIMError:
    if isinstance(exc, ContextLimit):
        return pywbem.CIMError(pywbem.CIM_ERR_SERVER_LIMITS_EXCEEDED, exc.message)
    text = exc.message
    if exc.yields in _PULL_OP:
        text += f"; read it with {_PULL_OP[exc.yields]}"
    return pywbem.CIMError(pywbem.CIM_ERR_INVALID_ENUMERATION_CONTEXT, text)


def timeout(contexts: EnumerationContexts, seconds: int | None) -> float:
    """The idle timeout of a new context: OperationTimeout, or the store's default."""
    if seconds is None:
        return contexts.default_timeout
    if seconds == 0 or seconds > contexts.max_timeout:
        raise pywbem.CIMError(
            pywbem.CIM_ERR_INVALID_OPERATION_TIMEOUT,
            f"OperationTimeout {seconds} is not accepted: give 1 to {int(contexts.max_timeout)} "
            f"seconds, or omit it for the default of {int(contexts.default_timeout)}")
    return float(seconds)


# ---------------------------------------------------------------------- handlers
def _tail(items: str, key: str | None) -> tuple[str, list[str]]:
    ctx_param = encode.paramvalue("EnumerationContext", key, None)
    eos = encode.paramvalue("EndOfSequence", key is None, None)
    return items, [ctx_param, eos]


def _open(ctx: Ctx, a: Args, contexts: EnumerationContexts, kind: str, items: Sequence[Any],
          render_one: Callable[[Any], str], classname: str | None) -> Result:
    try:
        body, key = contexts.open(ctx.namespace, kind, items, render_one,
                                  a.uint32("MaxObjectCount", 0) or 0,
                                  timeout(contexts, a.uint32("OperationTimeout", None)),
                                  owner=ctx.user)
    except ContextLimit as exc:
        raise _cim_error(exc) from None
    ireturn, params = _tail(body, key)
    return Result(ireturn, params, classname=classname, count=len(items))


def _check_open(a: Args) -> None:
    if a.given("FilterQueryLanguage") or a.given("FilterQuery"):
        raise pywbem.CIMError(pywbem.CIM_ERR_FILTERED_ENUMERATION_NOT_SUPPORTED,
                              f"{a.op} with a filter query is not supported; use ExecQuery or "
                              f"OpenQueryInstances with WQL")
    if a.flag("ContinueOnError", False):
        raise pywbem.CIMError(pywbem.CIM_ERR_CONTINUATION_ON_ERROR_NOT_SUPPORTED,
                              "ContinueOnError=true is not supported")


def _renderers(ctx: Ctx, a: Args, kind: str, requested: str | None = None,
               deep: bool = True) -> Callable[[pywbem.CIMInstance], str]:
    host, ns = ctx.host, ctx.namespace
    if kind == PATHS:
        return lambda i: encode.instancepath(i.path, host, ns)
    shape = instance_shape(ctx, a, requested, deep)
    return lambda i: f"<VALUE.INSTANCEWITHPATH>{encode.instancepath(i.path, host, ns)}" \
                     f"{render(i, shape)}</VALUE.INSTANCEWITHPATH>"


def make_open_enumerate(kind: str) -> Callable[[Ctx, Args, EnumerationContexts], Result]:
    def op(ctx: Ctx, a: Args, contexts: EnumerationContexts) -> Result:
        _check_open(a)
        name = a.classname("ClassName", required=True)
        assert name is not None
        found = ctx.registry.enumerate_instances(ctx.namespace, name)
        r = _renderers(ctx, a, kind, name, a.flag("DeepInheritance", True))
        return _open(ctx, a, contexts, kind, found, r, name)
    return op


def make_open_assoc(kind: str, refs: bool) -> Callable[[Ctx, Args, EnumerationContexts], Result]:
    def op(ctx: Ctx, a: Args, contexts: EnumerationContexts) -> Result:
        _check_open(a)
        target = a.instancename("InstanceName")
        found = associated(ctx, a, target, refs, "InstanceName")
        return _open(ctx, a, contexts, kind, found, _renderers(ctx, a, kind), target.classname)
    return op


def open_query_instances(ctx: Ctx, a: Args, contexts: EnumerationContexts) -> Result:
    if a.flag("ContinueOnError", False):
        raise pywbem.CIMError(pywbem.CIM_ERR_CONTINUATION_ON_ERROR_NOT_SUPPORTED,
                              "ContinueOnError=true is not supported")
    if a.flag("ReturnQueryResultClass", False):
        raise invalid("ReturnQueryResultClass=true is not supported; omit it or send false")
    query.check_language(a.string("FilterQueryLanguage", required=True))
    text = a.string("FilterQuery", required=True)
    assert text is not None
    rows = query.run(ctx.registry, ctx.namespace, text)
    return _open(ctx, a, contexts, NO_PATH, rows,
                 lambda row: encode.instance(row[0], row[1], False, False), None)


def make_pull(kind: str) -> Callable[[Ctx, Args, EnumerationContexts], Result]:
    def op(ctx: Ctx, a: Args, contexts: EnumerationContexts) -> Result:
        key = a.string("EnumerationContext", required=True)
        count = a.uint32("MaxObjectCount", None)
        if count is None:
            raise invalid(f"{a.op} needs the parameter MaxObjectCount")
        try:
            body, nxt, n = contexts.pull(str(key), ctx.namespace, kind, count, owner=ctx.user)
        except UnknownContext as exc:
            raise _cim_error(exc) from None
        ireturn, params = _tail(body, nxt)
        return Result(ireturn, params, count=n)
    return op


def close_enumeration(ctx: Ctx, a: Args, contexts: EnumerationContexts) -> Result:
    key = a.string("EnumerationContext", required=True)
    try:
        contexts.close(str(key), ctx.namespace, owner=ctx.user)
    except UnknownContext as exc:
        raise _cim_error(exc) from None
    return Result(None)


PULL_OPS: dict[str, tuple[Callable[[Ctx, Args, EnumerationContexts], Result], tuple[str, ...]]] = {
    "OpenEnumerateInstances": (make_open_enumerate(WITH_PATH), (
        "ClassName", "DeepInheritance", "IncludeClassOrigin", "PropertyList", *_OPEN_COMMON)),
    "OpenEnumerateInstancePaths": (make_open_enumerate(PATHS), ("ClassName", *_OPEN_COMMON)),
    "OpenReferenceInstances": (make_open_assoc(WITH_PATH, True), (
        "InstanceName", "ResultClass", "Role", "IncludeClassOrigin", "PropertyList",
        *_OPEN_COMMON)),
    "OpenReferenceInstancePaths": (make_open_assoc(PATHS, True), (
        "InstanceName", "ResultClass", "Role", *_OPEN_COMMON)),
    "OpenAssociatorInstances": (make_open_assoc(WITH_PATH, False), (
        "InstanceName", "AssocClass", "ResultClass", "Role", "ResultRole", "IncludeClassOrigin",
        "PropertyList", *_OPEN_COMMON)),
    "OpenAssociatorInstancePaths": (make_open_assoc(PATHS, False), (
        "InstanceName", "AssocClass", "ResultClass", "Role", "ResultRole", *_OPEN_COMMON)),
    "OpenQueryInstances": (open_query_instances, (
        "FilterQueryLanguage", "FilterQuery", "ReturnQueryResultClass", "OperationTimeout",
        "ContinueOnError", "MaxObjectCount")),
    "PullInstancesWithPath": (make_pull(WITH_PATH), ("EnumerationContext", "MaxObjectCount")),
    "PullInstancePaths": (make_pull(PATHS), ("EnumerationContext", "MaxObjectCount")),
    "PullInstances": (make_pull(NO_PATH), ("EnumerationContext", "MaxObjectCount")),
    "CloseEnumeration": (close_enumeration, ("EnumerationContext",)),
}
