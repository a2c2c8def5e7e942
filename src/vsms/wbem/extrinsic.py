"""Extrinsic method calls (METHODCALL): parameters typed after the class's method declaration.

Values arrive as wire text (sblim wbemcli sends no PARAMTYPE at all), so each IN parameter is
converted to its declared type; a value that does not fit is CIM_ERR_INVALID_PARAMETER naming
the parameter, as is a missing parameter that carries the ``Required`` qualifier. Embedded
instance parameters are passed on as the CIM-XML text the client sent (or as a CIMInstance when
the client sent an INSTANCE element), for the provider to parse. A VsmsError a provider lets
escape becomes the method's ReturnValue, as Hyper-V reports failures. OUT parameters the provider
left NULL are not written (sblim wbemcli crashes on an empty PARAMVALUE).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pywbem

from vsms.errors import VsmsError
from vsms.providers.registry import Registry
from vsms.wbem import encode
from vsms.wbem.args import invalid
from vsms.wbem.decode import MethodCall, ParamValue, convert_scalar
from vsms.wbem.wql import parse_object_path

log = logging.getLogger(__name__)


def _quals(obj: Any) -> dict[str, Any]:
    return {k.lower(): q.value for k, q in obj.qualifiers.items()}


def _embedded(decl: pywbem.CIMParameter) -> bool:
    q = _quals(decl)
    return bool(decl.embedded_object) or "embeddedinstance" in q or bool(q.get("embeddedobject"))


def _as_ref(v: Any, bad: Any) -> pywbem.CIMInstanceName | pywbem.CIMClassName:
    if isinstance(v, (pywbem.CIMInstanceName, pywbem.CIMClassName)):
        return v
    if isinstance(v, str):
        try:
            return parse_object_path(v)
        except pywbem.CIMError:
            pass
        try:
            return pywbem.CIMInstanceName.from_wbem_uri(v.strip())
        except (ValueError, TypeError):
            pass
    raise bad(f"must be a reference to an object, not {v!r}")


def convert(pv: ParamValue, decl: pywbem.CIMParameter, where: str) -> Any:
    """The value of one IN parameter, typed as ``decl`` declares it."""
    def bad(why: str) -> pywbem.CIMError:
        return invalid(f"parameter {decl.name} of {where} {why}")

    kind, v = pv.kind, pv.value
    if kind == "null":
        return None
    typename = f"an array of {decl.type}" if decl.is_array else f"a {decl.type}"
    if decl.type == "reference":
        if decl.is_array:
            items = v if kind in ("refarray", "array") else [v] if kind in ("ref", "value") \
                else None
            if items is None:
                raise bad(f"must be {typename}, not a {kind}")
            return [None if x is None else _as_ref(x, bad) for x in items]
        if kind not in ("ref", "value"):
            raise bad(f"must be a reference (VALUE.REFERENCE), not a {kind}")
        return _as_ref(v, bad)
    if kind in ("ref", "refarray") or (pv.paramtype or "").lower() == "reference":
        raise bad(f"must be {typename}, not a reference")
    embedded = _embedded(decl)

    def scalar(x: Any) -> Any:
        if embedded and isinstance(x, (str, pywbem.CIMInstance)):
            return x
        if kind == "instance":
            raise bad(f"must be {typename}, not an instance")
        try:
            return convert_scalar(x, decl.type)
        except ValueError as exc:
            raise bad(f"must be {typename}: {exc}") from None

    if decl.is_array:
        if kind == "array":
            return [None if x is None else scalar(x) for x in v]
        if kind in ("value", "instance"):
            return [scalar(v)]
        raise bad(f"must be {typename}, not a {kind}")
    if kind == "array":
        raise bad(f"must be {typename}, not an array")
    if kind not in ("value", "instance"):
        raise bad(f"must be {typename}, not a {kind}")
    return scalar(v)


def _method(registry: Registry, call: MethodCall) -> tuple[str, pywbem.CIMClass, pywbem.CIMMethod]:
    ns = registry.namespace(call.namespace)
    cls = ns.cls(call.target.classname)
    meth = next((m for n, m in cls.methods.items() if n.lower() == call.name.lower()), None)
    if meth is None:
        raise pywbem.CIMError(pywbem.CIM_ERR_METHOD_NOT_FOUND,
                              f"class {cls.classname} has no method {call.name}")
    return ns.name, cls, meth


def _in_params(call: MethodCall, cls: pywbem.CIMClass, meth: pywbem.CIMMethod) -> dict[str, Any]:
    where = f"{cls.classname}.{meth.name}"
    declared = {n.lower(): p for n, p in meth.parameters.items()}
    out: dict[str, Any] = {}
    for pv in call.params:
        decl = declared.get(pv.name.lower())
        if decl is None:
            raise invalid(f"method {where} has no parameter {pv.name}")
        out[decl.name] = convert(pv, decl, where)
    for decl in meth.parameters.values():
        q = _quals(decl)
        if q.get("required") and q.get("in", True) is not False and out.get(decl.name) is None:
            raise invalid(f"parameter {decl.name} of {where} is required")
    return out


def _out_param(name: str, value: Any, decl: pywbem.CIMParameter | None, ns: str,
               host: str) -> str:
    if decl is not None:
        name, ptype = decl.name, decl.type
        emb = decl.embedded_object or ("instance" if _embedded(decl) else None)
    else:
        first = value[0] if isinstance(value, list) and value else value
        ptype = "string" if isinstance(first, (pywbem.CIMInstance, str)) or first is None \
            else pywbem.cimtype(first)
        emb = None
    if ptype == "reference":
        value = [None if r is None else _complete(r, ns, host) for r in value] \
            if isinstance(value, list) else (None if value is None else _complete(value, ns, host))
    first = value[0] if isinstance(value, list) and value else value
    if isinstance(first, pywbem.CIMInstance):
        emb = "instance"
    elif not isinstance(first, str):
        emb = None
    return encode.paramvalue(name, value, ptype, emb)


def _complete(path: Any, ns: str, host: str) -> Any:
    if not isinstance(path, (pywbem.CIMInstanceName, pywbem.CIMClassName)):
        return path
    out = path.copy()
    out.namespace = out.namespace or ns
    out.host = host
    return out


@dataclass
class Ran:
    """What a method call gave, before any wire format: ReturnValue, OUT parameters (NULL ones
    left out, references completed with namespace and host), the declaration, the namespace."""

    return_value: int | None
    out: dict[str, Any]
    method: pywbem.CIMMethod | None
    classname: str
    namespace: str


def run(registry: Registry, host: str, call: MethodCall) -> Ran:
    """Run ``call`` (protocol-neutral: CIM-XML and WS-Management encode the result)."""
    ns, cls, meth = _method(registry, call)
    params = _in_params(call, cls, meth)
    target = call.target.copy()
    target.namespace = ns
    try:
        rv, out = registry.invoke_method(ns, target, meth.name, params)
    except VsmsError as err:
        log.log(logging.INFO if err.expected else logging.ERROR,
                "%s.%s failed with %d: %s", cls.classname, meth.name, int(err.code), err)
        rv, out = int(err.code), {"ErrorDescription": err.message}
    declared = {n.lower(): p for n, p in meth.parameters.items()}
    kept: dict[str, Any] = {}
    for name, value in (out or {}).items():
        if value is None:  # a NULL output is left out: sblim's parser crashes on an empty one
            continue
        decl = declared.get(name.lower())
        if (decl is not None and decl.type == "reference") or isinstance(
                value, (pywbem.CIMInstanceName, pywbem.CIMClassName)):
            value = [None if r is None else _complete(r, ns, host) for r in value] \
                if isinstance(value, list) else _complete(value, ns, host)
        kept[decl.name if decl is not None else name] = value
    return Ran(rv, kept, meth, cls.classname, ns)


def invoke(registry: Registry, host: str, call: MethodCall) -> tuple[str, str]:
    """Run ``call``; returns (METHODRESPONSE content, declared class name for the log)."""
    ran = run(registry, host, call)
    return cimxml(ran, host), ran.classname


def cimxml(ran: Ran, host: str) -> str:
    """The METHODRESPONSE content of ``ran``."""
    meth = ran.method
    declared = {n.lower(): p for n, p in meth.parameters.items()} if meth is not None else {}
    rtype = meth.return_type if meth is not None and meth.return_type else "uint32"
    rv = ran.return_value
    parts = [f'<RETURNVALUE PARAMTYPE="{rtype}">'
             f'{"" if rv is None else encode.value(rv)}</RETURNVALUE>']
    for name, value in ran.out.items():
        parts.append(_out_param(name, value, declared.get(name.lower()), ran.namespace, host))
    return "".join(parts)
