"""The WS-CIM writer (DSP0230, MS-WSMV §2.2.5) for instances, values and endpoint references.

An instance is one element in its class's resource-URI namespace, ``xsi:type="p:<Class>_Type"``,
its properties in MOF order; NULL is ``xsi:nil="true"`` (a NULL array: one such element,
§3.1.4.1.26), arrays are repeated elements, booleans lower case, datetimes ``<cim:Datetime>``
(xs:dateTime) and intervals ``<cim:Interval>`` (xs:duration), references EPRs, embedded
instances nested elements typed in their own class's namespace. Strings are built directly;
what each class needs (its URI, its properties in order with their tags) is computed once per
class and cached; so is the text of each instance that providers share between calls
(:class:`vsms.wbem.rendered.Rendered`). The prefixes ``a``, ``w``, ``xsi`` and ``cim`` are
declared on the envelope.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from datetime import timedelta
from typing import Any

import pywbem

from vsms.wbem.encode import esc, esc_attr
from vsms.wbem.rendered import Rendered
from vsms.wsman import names as n


def interval_text(td: timedelta) -> str:
    s = td.seconds
    frac = f".{td.microseconds:06d}".rstrip("0").rstrip(".") if td.microseconds else ""
    return f"P{td.days}DT{s // 3600}H{s % 3600 // 60}M{s % 60}{frac}S"


def datetime_xml(v: pywbem.CIMDateTime) -> str:
    if v.is_interval:
        return f"<cim:Interval>{interval_text(v.timedelta)}</cim:Interval>"
    return f"<cim:Datetime>{v.datetime.isoformat()}</cim:Datetime>"


def atom(v: Any) -> str:
    """Element content of one scalar (not a reference or instance)."""
    t = type(v)
    if t is str:
        return esc(v)
    if t is bool:
        return "true" if v else "false"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(int(v))
    if isinstance(v, pywbem.CIMDateTime):
        return datetime_xml(v)
    if isinstance(v, float):
        return repr(float(v))
    if isinstance(v, bytes):
        return esc(v.decode("utf-8", "replace"))
    return esc(str(v))


def selector_value(v: Any) -> str:
    if isinstance(v, pywbem.CIMInstanceName):
        return f"{EPR_OPEN}{epr(v)}</a:EndpointReference>"
    if isinstance(v, bool):
        return "true" if v else "false"
    return esc(str(v))


def epr(path: pywbem.CIMInstanceName | pywbem.CIMClassName, namespace: str | None = None) -> str:
    """The content of an endpoint reference: address, resource URI and selectors (with
    ``__cimnamespace``)."""
    ns = path.namespace or namespace or ""
    sels = ""
    if isinstance(path, pywbem.CIMInstanceName):
        sels = "".join(f'<w:Selector Name="{esc_attr(k)}">{selector_value(v)}</w:Selector>'
                       for k, v in path.keybindings.items())
    sels += f'<w:Selector Name="{n.CIMNAMESPACE}">{esc(ns)}</w:Selector>'
    # each part declares its own prefixes (as WinRM writes them): clients that copy an EPR's
    # parts into their next request as text (the wsl tools) keep them well-formed
    return (f"<a:Address{_A}>{n.ANONYMOUS}</a:Address><a:ReferenceParameters{_A}>"
            f"<w:ResourceURI{_W}>{esc(n.class_uri(ns, path.classname))}</w:ResourceURI>"
            f"<w:SelectorSet{_W}>{sels}</w:SelectorSet></a:ReferenceParameters>")


_A = f' xmlns:a="{n.WSA}"'
_W = f' xmlns:w="{n.WSMAN}"'
EPR_OPEN = f"<a:EndpointReference{_A}>"


class Shapes:
    """Per-class metadata, cached: (resource URI, [(name, lower name, open tag, close tag)])."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], tuple[str, list[tuple[str, str, str, str]]]] = {}

    def of(self, namespace: str, cls: pywbem.CIMClass | None, classname: str
           ) -> tuple[str, list[tuple[str, str, str, str]]]:
        key = (namespace.lower(), classname.lower())
        got = self._cache.get(key)
        if got is not None and cls is not None:
            return got
        uri = n.class_uri(namespace, cls.classname if cls is not None else classname)
        props = [(p, p.lower(), f"<p:{p}>", f"</p:{p}>")
                 for p in (cls.properties if cls is not None else ())]
        shape = (uri, props)
        if cls is not None:
            with self._lock:
                self._cache[key] = shape
        return shape


SHAPES = Shapes()
RENDERED: Rendered[str] = Rendered()  # the WS-Man text of shared instances (vsms.wbem.rendered)


def value_xml(tag: str, close: str, v: Any, prefix: str = "p") -> str:
    """One property or parameter (``tag``: its open tag, ``<p:Name>``) with value ``v``."""
    if v is None:
        return f'{tag[:-1]} xsi:nil="true"/>'
    if isinstance(v, list):
        if not v:
            return ""
        return "".join(value_xml(tag, close, x, prefix) for x in v if x is not None)
    if isinstance(v, (pywbem.CIMInstanceName, pywbem.CIMClassName)):
        return f"{tag}{epr(v)}{close}"
    if isinstance(v, pywbem.CIMInstance):
        return nested(tag, close, v)
    return f"{tag}{atom(v)}{close}"


def nested(tag: str, close: str, inst: pywbem.CIMInstance) -> str:
    """An embedded instance: the element typed with xsi:type in its class's namespace."""
    ns = inst.path.namespace if inst.path is not None and inst.path.namespace else \
        "root/virtualization"
    uri = n.class_uri(ns, inst.classname)
    inner = "".join(value_xml(f"<q:{name}>", f"</q:{name}>", p.value, "q")
                    for name, p in inst.properties.items())
    return (f'{tag[:-1]} xmlns:q="{esc_attr(uri)}" xsi:type="q:{inst.classname}_Type">'
            f"{inner}{close}")


def instance(inst: pywbem.CIMInstance, namespace: str, cls: pywbem.CIMClass | None,
             keep: Collection[str] | None = None) -> str:
    """One instance as the element ``<p:<Class>>`` (``keep``: lower-case property names to
    write, None: all). The text of a shared instance written before with the same options is
    given back without writing it again (:data:`RENDERED`)."""
    options = (namespace, cls is not None, None if keep is None else frozenset(keep))
    return RENDERED.text(inst, options, lambda: write_instance(inst, namespace, cls, keep))


def write_instance(inst: pywbem.CIMInstance, namespace: str, cls: pywbem.CIMClass | None,
                   keep: Collection[str] | None = None) -> str:
    """What :func:`instance` gives, always written afresh."""
    uri, props = SHAPES.of(namespace, cls, inst.classname)
    name = inst.classname
    values = inst.properties
    parts = [f'<p:{name} xmlns:p="{uri}" xsi:type="p:{name}_Type">']
    seen = set()
    append = parts.append
    # one pass over the instance's properties (a NocaseDict lookup per property costs more)
    byname = {p.name.lower(): p.value for p in values.values()}
    for _name, low, tag, close in props:
        if keep is not None and low not in keep:
            continue
        seen.add(low)
        v = byname.get(low)
        t = type(v)
        if v is None:  # the common cases inline (this loop is the enumeration's hot path)
            append(f'{tag[:-1]} xsi:nil="true"/>')
        elif t is str:
            append(f"{tag}{esc(v)}{close}")
        elif t is bool:
            append(f"{tag}{'true' if v else 'false'}{close}")
        else:
            append(value_xml(tag, close, v))
    if len(seen) < len(values):
        for pname, prop in values.items():
            if pname.lower() not in seen and (keep is None or pname.lower() in keep):
                parts.append(value_xml(f"<p:{pname}>", f"</p:{pname}>", prop.value))
    parts.append(f"</p:{name}>")
    return "".join(parts)
