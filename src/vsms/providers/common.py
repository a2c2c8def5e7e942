"""Helpers every provider shares: argument coercion, object paths, error-to-ReturnValue."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

import pywbem

from vsms.cim import names
from vsms.cim.embedded import parse_instance
from vsms.cim.enums import ElementEffects, ReturnCode
from vsms.errors import InvalidParameter, VsmsError
from vsms.model.job import AffectedElement, JobRecord

log = logging.getLogger(__name__)

Params = Mapping[str, Any]
Result = tuple[int, dict[str, Any]]
Handler = Callable[[pywbem.CIMInstanceName | pywbem.CIMClassName, Params], Result]

_WMI_PATH = re.compile(
    r"^(?:\\\\(?P<host>[^\\]+)\\(?P<ns>[^:]+):)?(?P<rest>[A-Za-z_][\w]*(?:\..*)?)$")


ERROR_DESCRIPTION = "ErrorDescription"
"""A vsms extension: on a failure returned at once (no job), the method response also carries
this undeclared OUT parameter with the reason and the fix, the text a failed job would have in
its ErrorDescription. Hyper-V clients ignore out parameters they do not know."""


def guarded(fn: Handler, what: str = "") -> Handler:
    """Run a method handler; a VsmsError becomes its ReturnValue (logged by severity) and the
    reason goes into the ErrorDescription out parameter."""
    what = what or getattr(fn, "__name__", "method")

    def run(target: pywbem.CIMInstanceName | pywbem.CIMClassName, params: Params) -> Result:
        try:
            return fn(target, params)
        except VsmsError as err:
            level = logging.INFO if err.expected else logging.ERROR
            log.log(level, "%s failed with %d: %s", what, int(err.code), err)
            return int(err.code), {ERROR_DESCRIPTION: err.message}

    return run


def not_supported(classname: str, method: str) -> Result:
    """32770 for a method the class declares but vsms does not implement."""
    return int(ReturnCode.NOT_SUPPORTED), {
        ERROR_DESCRIPTION: f"{classname}.{method} is not supported by vsms; see docs/methods.md "
                           "for the methods it implements"}


def param(params: Params, name: str, *, required: bool = True) -> Any:
    for key, value in params.items():
        if key.lower() == name.lower():
            if value is None and required:
                break
            return value
    if required:
        raise InvalidParameter(f"parameter {name} is required")
    return None


def as_bool(params: Params, name: str, default: bool | None = None) -> bool:
    value = param(params, name, required=default is None)
    if value is None:
        assert default is not None
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise InvalidParameter(f"parameter {name} must be a boolean, got {value!r}")


def as_str(params: Params, name: str, *, required: bool = True) -> str | None:
    value = param(params, name, required=required)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidParameter(f"parameter {name} must be a string, got {type(value).__name__}")
    return value


def as_instance(value: Any, name: str, classname: str | None = None) -> pywbem.CIMInstance:
    """An embedded-instance parameter: a CIMInstance, or a string holding one (CIM-XML)."""
    inst = value if isinstance(value, pywbem.CIMInstance) else None
    if inst is None:
        if not isinstance(value, str):
            raise InvalidParameter(f"parameter {name} must be an embedded instance string")
        inst = parse_instance(value)
    if classname and inst.classname.lower() != classname.lower():
        raise InvalidParameter(
            f"parameter {name} must hold a {classname} instance, not {inst.classname}")
    return inst


def parse_path(value: Any, name: str) -> pywbem.CIMInstanceName:
    """A REF parameter: a CIMInstanceName, a WBEM URI, or a WMI path string."""
    if isinstance(value, pywbem.CIMInstanceName):
        return value
    if isinstance(value, str) and value.strip():
        text = value.strip()
        m = _WMI_PATH.match(text)
        if m and "\\" in text[:2]:
            text = m.group("rest")
        try:
            return pywbem.CIMInstanceName.from_wbem_uri(text)
        except (ValueError, TypeError) as exc:
            raise InvalidParameter(f"parameter {name} is not an object path: {value!r}: {exc}"
                                   ) from None
    raise InvalidParameter(f"parameter {name} must be a reference to an object")


def same_value(a: Any, b: Any) -> bool:
    """Key values as WMI compares them: references by :func:`same_path` (a string is read as a
    WBEM URI), integers by value, everything else as case-insensitive text."""
    if isinstance(a, pywbem.CIMInstanceName) or isinstance(b, pywbem.CIMInstanceName):
        try:
            pa, pb = (v if isinstance(v, pywbem.CIMInstanceName)
                      else pywbem.CIMInstanceName.from_wbem_uri(str(v)) for v in (a, b))
        except (ValueError, TypeError):
            return False
        return same_path(pa, pb)
    if isinstance(a, int) and isinstance(b, int) and bool not in (type(a), type(b)):
        return a == b
    return str(a).casefold() == str(b).casefold()


def same_path(a: pywbem.CIMInstanceName, b: pywbem.CIMInstanceName, *,
              partial: bool = False) -> bool:
    """Do ``a`` and ``b`` name the same instance? Class and key names are case-insensitive,
    values compare by :func:`same_value`; host and namespace are ignored. With ``partial``,
    ``b`` may give only some of the keys (a WQL path)."""
    if a.classname.lower() != b.classname.lower():
        return False
    ka = {k.lower(): v for k, v in a.keybindings.items()}
    kb = {k.lower(): v for k, v in b.keybindings.items()}
    if not partial and ka.keys() != kb.keys():
        return False
    return all(k in ka and same_value(ka[k], v) for k, v in kb.items())


def key(path: pywbem.CIMInstanceName, name: str) -> str:
    for k, v in path.keybindings.items():
        if k.lower() == name.lower():
            return str(v)
    raise InvalidParameter(f"object path {path} has no key {name}")


def vm_path(guid: str) -> pywbem.CIMInstanceName:
    return pywbem.CIMInstanceName(
        names.COMPUTER_SYSTEM,
        keybindings={"CreationClassName": names.COMPUTER_SYSTEM, "Name": guid},
        namespace=names.NAMESPACE)


def vm_element(guid: str, effect: ElementEffects) -> AffectedElement:
    """The VM as an element a job affects (Msvm_AffectedJobElement)."""
    return AffectedElement(names.COMPUTER_SYSTEM,
                           {"CreationClassName": names.COMPUTER_SYSTEM, "Name": guid},
                           [int(effect)])


def job_path(rec: JobRecord) -> pywbem.CIMInstanceName:
    return pywbem.CIMInstanceName(rec.classname, keybindings={"InstanceID": rec.instance_id},
                                  namespace=names.NAMESPACE)


def job_started(rec: JobRecord, **out: Any) -> Result:
    return int(ReturnCode.JOB_STARTED), {"Job": job_path(rec), **out}
