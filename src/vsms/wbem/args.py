"""Typed access to the IPARAMVALUEs of an intrinsic call, and what a handler returns.

Every accessor raises ``CIM_ERR_INVALID_PARAMETER`` naming the operation and the parameter when
a value has the wrong shape, and the constructor refuses parameters the operation does not have.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pywbem

from vsms.providers.registry import Registry
from vsms.wbem.decode import IMethodCall, convert_scalar


def invalid(msg: str) -> pywbem.CIMError:
    return pywbem.CIMError(pywbem.CIM_ERR_INVALID_PARAMETER, msg)


@dataclass
class Result:
    """``ireturn``: content of IRETURNVALUE (None: no IRETURNVALUE); ``params``: PARAMVALUEs;
    ``classname``/``count`` only feed the request log."""

    ireturn: str | None = None
    params: list[str] = field(default_factory=list)
    classname: str | None = None
    count: int | None = None


@dataclass
class Ctx:
    """What every handler gets: the registry, the namespace of the call and our host name;
    ``user``: who calls (owner of the enumeration contexts it opens; None: the Python API)."""

    registry: Registry
    namespace: str
    host: str
    user: str | None = None


class Args:
    def __init__(self, call: IMethodCall, allowed: Iterable[str]) -> None:
        self.op = call.name
        self._params = call.params
        known = {a.lower() for a in allowed}
        for low, (name, _) in call.params.items():
            if low not in known:
                raise invalid(f"operation {call.name} has no parameter {name}")

    def _get(self, name: str) -> tuple[str, Any]:
        entry = self._params.get(name.lower())
        return ("null", None) if entry is None else entry[1]

    def _bad(self, name: str, what: str) -> pywbem.CIMError:
        return invalid(f"parameter {name} of {self.op} must be {what}")

    def given(self, name: str) -> bool:
        return self._get(name)[0] != "null"

    def flag(self, name: str, default: bool) -> bool:
        kind, v = self._get(name)
        if kind == "null":
            return default
        if kind != "value":
            raise self._bad(name, "a boolean (TRUE or FALSE)")
        try:
            return bool(convert_scalar(v, "boolean"))
        except ValueError:
            raise self._bad(name, f"a boolean (TRUE or FALSE), not {v!r}") from None

    def classname(self, name: str, required: bool = False) -> str | None:
        kind, v = self._get(name)
        if kind == "null":
            if required:
                raise invalid(f"{self.op} needs the parameter {name} (a class name)")
            return None
        if kind != "classname" or not v:
            raise self._bad(name, "a CLASSNAME")
        return str(v)

    def instancename(self, name: str) -> pywbem.CIMInstanceName:
        kind, v = self._get(name)
        if kind == "null":
            raise invalid(f"{self.op} needs the parameter {name} (an instance name)")
        if kind != "ref" or not isinstance(v, pywbem.CIMInstanceName):
            raise self._bad(name, "an INSTANCENAME")
        return v

    def objectname(self, name: str) -> pywbem.CIMInstanceName | pywbem.CIMClassName:
        kind, v = self._get(name)
        if kind == "null":
            raise invalid(f"{self.op} needs the parameter {name} (an instance or class name)")
        if kind == "classname":
            return pywbem.CIMClassName(v)
        if kind != "ref":
            raise self._bad(name, "an INSTANCENAME or a CLASSNAME")
        return v

    def string(self, name: str, required: bool = False) -> str | None:
        kind, v = self._get(name)
        if kind == "null":
            if required:
                raise invalid(f"{self.op} needs the parameter {name}")
            return None
        if kind != "value":
            raise self._bad(name, "a string VALUE")
        return str(v)

    def uint32(self, name: str, default: int | None) -> int | None:
        kind, v = self._get(name)
        if kind == "null":
            return default
        if kind != "value":
            raise self._bad(name, "an unsigned 32-bit integer")
        try:
            return int(convert_scalar(v, "uint32"))
        except ValueError:
            raise self._bad(name, f"an unsigned 32-bit integer, not {v!r}") from None

    def property_list(self, name: str = "PropertyList") -> list[str] | None:
        kind, v = self._get(name)
        if kind == "null":
            return None
        if kind == "value":  # a lone VALUE: a one-element list
            return [str(v)]
        if kind != "array" or any(x is None for x in v):
            raise self._bad(name, "a VALUE.ARRAY of property names")
        return [str(x) for x in v]
