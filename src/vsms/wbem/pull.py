"""The pull operations of DSP0200: Open*, Pull*, CloseEnumeration, with expiring contexts.

An Open operation takes a snapshot of the result, returns up to MaxObjectCount items and, when
more remain, an enumeration context that lives for OperationTimeout seconds after each use
(default :attr:`EnumerationContexts.default_timeout`). Filter queries and ContinueOnError are
not supported and say so with their DSP0200 status codes.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pywbem

from vsms.wbem import encode, query
from vsms.wbem.args import Args, Ctx, Result, invalid
from vsms.wbem.intrinsic import associated, instance_shape, render

# what each kind of context yields, and which Pull reads it
WITH_PATH, PATHS, NO_PATH = "instances with path", "instance paths", "instances"
_PULL_OP = {WITH_PATH: "PullInstancesWithPath", PATHS: "PullInstancePaths",
            NO_PATH: "PullInstances"}
_OPEN_COMMON = ("FilterQueryLanguage", "FilterQuery", "OperationTimeout", "ContinueOnError",
                "MaxObjectCount")


def _ctx_error(msg: str) -> pywbem.CIMError:
    return pywbem.CIMError(pywbem.CIM_ERR_INVALID_ENUMERATION_CONTEXT, msg)


@dataclass
class _Enumeration:
    namespace: str
    kind: str
    items: list[Any]
    render: Callable[[Any], str]
    timeout: float
    expires: float
    pos: int = 0


class EnumerationContexts:
    """Open enumerations, thread-safe, bounded in number, expired lazily on each use."""

    def __init__(self, *, default_timeout: float = 60.0, max_timeout: float = 3600.0,
                 max_open: int = 256, clock: Callable[[], float] = time.monotonic) -> None:
        self.default_timeout = default_timeout
        self.max_timeout = max_timeout
        self.max_open = max_open
        self._clock = clock
        self._lock = threading.Lock()
        self._open: dict[str, _Enumeration] = {}

    def __len__(self) -> int:
        with self._lock:
            self._expire()
            return len(self._open)

    def _expire(self) -> None:
        now = self._clock()
        for key in [k for k, e in self._open.items() if e.expires <= now]:
            del self._open[key]

    def timeout(self, seconds: int | None) -> float:
        if seconds is None:
            return self.default_timeout
        if seconds == 0 or seconds > self.max_timeout:
            raise pywbem.CIMError(
                pywbem.CIM_ERR_INVALID_OPERATION_TIMEOUT,
                f"OperationTimeout {seconds} is not accepted: give 1 to {int(self.max_timeout)} "
                f"seconds, or omit it for the default of {int(self.default_timeout)}")
        return float(seconds)

    def open(self, namespace: str, kind: str, items: list[Any], render: Callable[[Any], str],
             max_count: int, timeout: float) -> tuple[str, str | None]:
        """First batch (rendered) and the context id, or None when nothing remains."""
        if max_count >= len(items):
            return "".join(render(i) for i in items), None
        with self._lock:
            self._expire()
            if len(self._open) >= self.max_open:
                raise pywbem.CIMError(
                    pywbem.CIM_ERR_SERVER_LIMITS_EXCEEDED,
                    f"{self.max_open} enumerations are open; pull them to the end or close them")
            key = secrets.token_hex(16)
            self._open[key] = _Enumeration(namespace, kind, items, render, timeout,
                                           self._clock() + timeout, max_count)
        return "".join(render(i) for i in items[:max_count]), key

    def pull(self, key: str, namespace: str, kind: str,
             max_count: int) -> tuple[str, str | None, int]:
        with self._lock:
            self._expire()
            e = self._open.get(key)
            if e is None or e.namespace.lower() != namespace.lower():
                raise _ctx_error(f"enumeration context {key!r} does not exist in {namespace} "
                                 f"(closed, finished or expired)")
            if e.kind != kind:
                raise _ctx_error(f"enumeration context {key!r} yields {e.kind}; "
                                 f"read it with {_PULL_OP[e.kind]}")
            batch = e.items[e.pos:e.pos + max_count]
            e.pos += len(batch)
            if e.pos >= len(e.items):
                del self._open[key]
                nxt = None
            else:
                e.expires = self._clock() + e.timeout
                nxt = key
        return "".join(e.render(i) for i in batch), nxt, len(batch)

    def close(self, key: str, namespace: str) -> None:
        with self._lock:
            self._expire()
            e = self._open.get(key)
            if e is None or e.namespace.lower() != namespace.lower():
                raise _ctx_error(f"enumeration context {key!r} does not exist in {namespace}")
            del self._open[key]


# ---------------------------------------------------------------------- handlers
def _tail(items: str, key: str | None) -> tuple[str, list[str]]:
    ctx_param = encode.paramvalue("EnumerationContext", key, None)
    eos = encode.paramvalue("EndOfSequence", key is None, None)
    return items, [ctx_param, eos]


def _open(ctx: Ctx, a: Args, contexts: EnumerationContexts, kind: str, items: list[Any],
          render_one: Callable[[Any], str], classname: str | None) -> Result:
    body, key = contexts.open(ctx.namespace, kind, items, render_one,
                              a.uint32("MaxObjectCount", 0) or 0,
                              contexts.timeout(a.uint32("OperationTimeout", None)))
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
        body, nxt, n = contexts.pull(str(key), ctx.namespace, kind, count)
        ireturn, params = _tail(body, nxt)
        return Result(ireturn, params, count=n)
    return op


def close_enumeration(ctx: Ctx, a: Args, contexts: EnumerationContexts) -> Result:
    key = a.string("EnumerationContext", required=True)
    contexts.close(str(key), ctx.namespace)
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
