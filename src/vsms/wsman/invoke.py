"""WS-Management Invoke of an extrinsic method (MS-WSMV §4.1, DSP0227 §9): the request body
``<p:<Method>_INPUT xmlns:p="<ResourceURI>">`` read into the same :class:`MethodCall` CIM-XML
decodes to, and the reply ``<p:<Method>_OUTPUT>``.

IN parameters: text (converted to the declared type by ``vsms.wbem.extrinsic``), embedded-instance
strings as CIM-XML text (CDATA or escaped, passed on as is), references as endpoint references,
arrays as repeated elements, ``xsi:nil="true"`` as NULL. OUT parameters: references as EPRs,
embedded instances as nested elements typed with ``xsi:type`` in their class's namespace (a
provider's CIM-XML text is parsed first), arrays repeated; ``ReturnValue`` last.
"""

from __future__ import annotations

from typing import Any

import pywbem

from vsms.wbem.decode import MethodCall, ParamValue, ProtocolError, parse_embedded
from vsms.wbem.encode import esc_attr
from vsms.wbem.extrinsic import Ran
from vsms.wbem.xmltree import Node
from vsms.wsman import encode, soap
from vsms.wsman import names as n
from vsms.wsman.soap import Fault, q
from vsms.wsman.target import epr_path

_NIL = q(n.XSI, "nil")


def _bad(why: str) -> Fault:
    return Fault("w:InvalidParameter", why, soap.WSMAN_INTERNAL, soap.WBEM_E_INVALID_PARAMETER,
                 pywbem.CIM_ERR_INVALID_PARAMETER)


def _is_epr(node: Node) -> bool:
    return any(k.name in (q(n.WSA, "ReferenceParameters"), q(n.WSA, "Address"))
               for k in node.kids)


def read_call(body: Node | None, uri: str, method: str, namespace: str,
              target: pywbem.CIMInstanceName | pywbem.CIMClassName) -> MethodCall:
    """The MethodCall of an Invoke body (``uri``: the class's resource URI as sent)."""
    params: list[ParamValue] = []
    if body is not None:
        ns_uri, _, local = body.name.rpartition(" ")
        if local.lower() != f"{method.lower()}_input":
            raise _bad(f"the body of {method} must be a {method}_INPUT element, not {local}")
        if ns_uri.rstrip("/").lower() != uri.rstrip("/").lower():
            raise _bad(f"{method}_INPUT must be in the namespace of the resource URI {uri}, "
                       f"not {ns_uri or 'none'}")
        grouped: dict[str, list[Node]] = {}
        for k in body.kids:
            grouped.setdefault(k.name.rpartition(" ")[2], []).append(k)
        for name, nodes in grouped.items():
            params.append(_param(name, nodes, namespace))
    return MethodCall(method, namespace, target, params)


def _param(name: str, nodes: list[Node], namespace: str) -> ParamValue:
    values: list[Any] = []
    refs = False
    for node in nodes:
        if node.attrs.get(_NIL, "").strip().lower() in ("true", "1"):
            values.append(None)
        elif _is_epr(node):
            refs = True
            path = epr_path(node, namespace)
            path.namespace = path.namespace or namespace
            values.append(path)
        elif node.kids:
            raise _bad(f"parameter {name}: send an embedded instance as CIM-XML text "
                       f"(<INSTANCE CLASSNAME=...>, CDATA or escaped), not as XML elements")
        else:
            values.append(node.text)
    if len(values) == 1:
        v = values[0]
        if v is None:
            return ParamValue(name, None, None, "null", None)
        return ParamValue(name, None, None, "ref" if refs else "value", v)
    return ParamValue(name, None, None, "refarray" if refs else "array", values)


def _out_value(v: Any) -> Any:
    """A provider's OUT value as the encoder takes it (CIM-XML text of an instance parsed)."""
    if isinstance(v, list):
        return [_out_value(x) for x in v]
    if isinstance(v, str) and v.lstrip().startswith("<INSTANCE"):
        try:
            return parse_embedded(v)
        except ProtocolError:
            return v
    return v


def output(ran: Ran, method: str, uri: str) -> str:
    """The ``<p:<Method>_OUTPUT>`` element of a call's result."""
    parts = [f'<p:{method}_OUTPUT xmlns:p="{esc_attr(uri)}">']
    for name, value in ran.out.items():
        value = _out_value(value)
        if isinstance(value, pywbem.CIMInstance) and value.path is None:
            value.path = pywbem.CIMInstanceName(value.classname, namespace=ran.namespace)
        if isinstance(value, list):
            for x in value:
                if isinstance(x, pywbem.CIMInstance) and x.path is None:
                    x.path = pywbem.CIMInstanceName(x.classname, namespace=ran.namespace)
        parts.append(encode.value_xml(f"<p:{name}>", f"</p:{name}>", value))
    rv = ran.return_value
    parts.append('<p:ReturnValue xsi:nil="true"/>' if rv is None
                 else f"<p:ReturnValue>{int(rv)}</p:ReturnValue>")
    parts.append(f"</p:{method}_OUTPUT>")
    return "".join(parts)
