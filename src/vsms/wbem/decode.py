"""CIM-XML request decoding (DSP0201): a :mod:`xmltree` tree -> calls with pywbem values.

Structural problems raise :class:`ProtocolError` (an HTTP 400/501 with a ``CIMError`` header);
a well-formed value of the wrong shape inside a parameter is left to the dispatcher, which
answers it with a CIM error naming the parameter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pywbem

from vsms.wbem.xmltree import Node, XmlError, parse

_INT_TYPES = {"uint8", "uint16", "uint32", "uint64", "sint8", "sint16", "sint32", "sint64"}
_INT_RE = re.compile(r"^\s*[+-]?(?:\d+|0[xX][0-9a-fA-F]+)\s*$")
MAX_EMBEDDING = 8


class ProtocolError(Exception):
    """An HTTP-level rejection: ``status`` and the DSP0200 ``CIMError`` header value."""

    def __init__(self, status: int, cimerror: str | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.cimerror = cimerror
        self.message = message


def not_valid(message: str) -> ProtocolError:
    return ProtocolError(400, "request-not-valid", message)


@dataclass
class ParamValue:
    """One PARAMVALUE of an extrinsic call, before conversion to the declared type.

    ``kind`` is what the element held: value, array, ref, refarray, instance, null."""

    name: str
    paramtype: str | None
    embedded: str | None
    kind: str
    value: Any


@dataclass
class IMethodCall:
    name: str
    namespace: str
    params: dict[str, tuple[str, Any]] = field(default_factory=dict)  # lower name -> (name, v)


@dataclass
class MethodCall:
    name: str
    namespace: str
    target: pywbem.CIMInstanceName | pywbem.CIMClassName
    params: list[ParamValue] = field(default_factory=list)


@dataclass
class Message:
    id: str
    protocol_version: str
    call: IMethodCall | MethodCall


# ---------------------------------------------------------------------- scalars
def convert_scalar(text: str, cimtype: str) -> Any:
    """Wire text -> typed pywbem value; ValueError names what is wrong."""
    if cimtype == "string":
        return text
    if cimtype == "boolean":
        t = text.strip().lower()
        if t not in ("true", "false"):
            raise ValueError(f"{text!r} is not a boolean (TRUE or FALSE)")
        return t == "true"
    if cimtype in _INT_TYPES:
        if not _INT_RE.match(text):
            raise ValueError(f"{text!r} is not an integer")
        return pywbem.cimvalue(int(text.strip(), 0 if "x" in text.lower() else 10), cimtype)
    if cimtype in ("real32", "real64"):
        return pywbem.cimvalue(float(text.strip()), cimtype)
    if cimtype == "char16":
        if len(text) != 1:
            raise ValueError(f"{text!r} is not a single character")
        return pywbem.Char16(text)
    if cimtype == "datetime":
        return pywbem.CIMDateTime(text.strip())
    raise ValueError(f"unsupported CIM type {cimtype!r}")


def _untyped_key(text: str, valuetype: str) -> Any:
    if valuetype == "boolean":
        return convert_scalar(text, "boolean")
    if valuetype == "numeric":
        t = text.strip()
        try:
            return int(t, 0 if "x" in t.lower() else 10)
        except ValueError:
            return float(t)
    return text


# ---------------------------------------------------------------------- names and paths
def _need(node: Node, attr: str) -> str:
    v = node.attr(attr)
    if v is None:
        raise not_valid(f"element {node.name} lacks its {attr} attribute")
    return v


def _expect(node: Node, *names: str) -> None:
    if node.name not in names:
        raise not_valid(f"expected {' or '.join(names)}, found element {node.name}")


def local_namespace(node: Node) -> str:
    _expect(node, "LOCALNAMESPACEPATH")
    parts = [_need(k, "NAME") for k in node.kids if k.name == "NAMESPACE"]
    if not parts:
        raise not_valid("LOCALNAMESPACEPATH holds no NAMESPACE element")
    return "/".join(p.strip("/") for p in parts)


def _namespace_path(node: Node) -> tuple[str | None, str]:
    _expect(node, "NAMESPACEPATH")
    host = next((k.text.strip() for k in node.kids if k.name == "HOST"), None)
    lnp = next((k for k in node.kids if k.name == "LOCALNAMESPACEPATH"), None)
    if lnp is None:
        raise not_valid("NAMESPACEPATH holds no LOCALNAMESPACEPATH")
    return host, local_namespace(lnp)


def keyvalue(node: Node) -> Any:
    _expect(node, "KEYVALUE")
    cimtype = node.attr("TYPE")
    valuetype = node.attr("VALUETYPE") or "string"
    try:
        if cimtype:
            return convert_scalar(node.text, cimtype)
        return _untyped_key(node.text, valuetype)
    except ValueError as exc:
        raise not_valid(f"bad KEYVALUE: {exc}") from None


def instance_name(node: Node, namespace: str | None = None,
                  host: str | None = None) -> pywbem.CIMInstanceName:
    _expect(node, "INSTANCENAME")
    keys: dict[str, Any] = {}
    for kb in node.kids:
        if kb.name != "KEYBINDING":
            raise not_valid(f"INSTANCENAME may hold only KEYBINDING elements, not {kb.name}")
        if len(kb.kids) != 1:
            raise not_valid("KEYBINDING must hold one KEYVALUE or VALUE.REFERENCE")
        child = kb.kids[0]
        keys[_need(kb, "NAME")] = (reference(child) if child.name == "VALUE.REFERENCE"
                                   else keyvalue(child))
    return pywbem.CIMInstanceName(_need(node, "CLASSNAME"), keybindings=keys,
                                  namespace=namespace, host=host)


def class_name(node: Node) -> str:
    _expect(node, "CLASSNAME")
    return _need(node, "NAME")


def _two(node: Node) -> tuple[Node, Node]:
    if len(node.kids) != 2:
        raise not_valid(f"{node.name} must hold two elements")
    return node.kids[0], node.kids[1]


def reference(node: Node) -> pywbem.CIMInstanceName | pywbem.CIMClassName:
    """VALUE.REFERENCE: any of the six path forms DSP0201 allows."""
    _expect(node, "VALUE.REFERENCE")
    if len(node.kids) != 1:
        raise not_valid("VALUE.REFERENCE must hold exactly one path element")
    return object_path(node.kids[0])


def object_path(p: Node) -> pywbem.CIMInstanceName | pywbem.CIMClassName:
    if p.name == "INSTANCENAME":
        return instance_name(p)
    if p.name == "LOCALINSTANCEPATH":
        a, b = _two(p)
        return instance_name(b, local_namespace(a))
    if p.name == "INSTANCEPATH":
        a, b = _two(p)
        host, ns = _namespace_path(a)
        return instance_name(b, ns, host)
    if p.name == "CLASSNAME":
        return pywbem.CIMClassName(class_name(p))
    if p.name == "LOCALCLASSPATH":
        a, b = _two(p)
        return pywbem.CIMClassName(class_name(b), namespace=local_namespace(a))
    if p.name == "CLASSPATH":
        a, b = _two(p)
        host, ns = _namespace_path(a)
        return pywbem.CIMClassName(class_name(b), namespace=ns, host=host)
    raise not_valid(f"element {p.name} is not an object path")


# ---------------------------------------------------------------------- values
def value_array(node: Node) -> list[str | None]:
    _expect(node, "VALUE.ARRAY")
    out: list[str | None] = []
    for k in node.kids:
        if k.name == "VALUE":
            out.append(k.text)
        elif k.name == "VALUE.NULL":
            out.append(None)
        else:
            raise not_valid(f"VALUE.ARRAY may hold VALUE or VALUE.NULL, not {k.name}")
    return out


def ref_array(node: Node) -> list[Any]:
    out: list[Any] = []
    for k in node.kids:
        out.append(None if k.name == "VALUE.NULL" else reference(k))
    return out


def _typed(text: str, cimtype: str, embedded: str | None, depth: int) -> Any:
    if embedded:
        return parse_embedded(text, depth + 1)
    try:
        return convert_scalar(text, cimtype)
    except ValueError as exc:
        raise not_valid(f"bad property value: {exc}") from None


def instance(node: Node, depth: int = 0) -> pywbem.CIMInstance:
    """INSTANCE -> CIMInstance (qualifiers dropped, values typed after TYPE)."""
    _expect(node, "INSTANCE")
    inst = pywbem.CIMInstance(_need(node, "CLASSNAME"))
    for p in node.kids:
        if p.name == "QUALIFIER":
            continue
        name = _need(p, "NAME")
        value_node = next((k for k in p.kids if k.name != "QUALIFIER"), None)
        emb = p.attr("EmbeddedObject")
        if p.name == "PROPERTY.REFERENCE":
            ref = reference(value_node) if value_node is not None else None
            inst[name] = pywbem.CIMProperty(name, ref, type="reference",
                                            reference_class=p.attr("REFERENCECLASS"))
            continue
        cimtype = _need(p, "TYPE")
        is_array = p.name == "PROPERTY.ARRAY"
        if p.name not in ("PROPERTY", "PROPERTY.ARRAY"):
            raise not_valid(f"INSTANCE may not hold element {p.name}")
        value: Any = None
        if value_node is not None and is_array:
            value = [None if t is None else _typed(t, cimtype, emb, depth)
                     for t in value_array(value_node)]
        elif value_node is not None:
            _expect(value_node, "VALUE")
            value = _typed(value_node.text, cimtype, emb, depth)
        inst[name] = pywbem.CIMProperty(
            name, value, type="string" if emb else cimtype, is_array=is_array,
            embedded_object=("instance" if emb else None))
    return inst


def parse_embedded(text: str, depth: int = 0) -> pywbem.CIMInstance:
    """An embedded instance given as CIM-XML text."""
    if depth > MAX_EMBEDDING:
        raise not_valid(f"embedded instances nested deeper than {MAX_EMBEDDING} levels")
    try:
        root = parse(text.strip().encode("utf-8"))
    except XmlError as exc:
        raise not_valid(f"embedded instance is not well-formed: {exc}") from None
    while root.name in ("VALUE.NAMEDINSTANCE", "VALUE.OBJECT") and root.kids:
        root = root.kids[-1]
    return instance(root, depth)


def param_content(node: Node) -> tuple[str, Any]:
    """The one optional child of an (I)PARAMVALUE, as (kind, raw value)."""
    if not node.kids:
        return "null", None
    if len(node.kids) > 1:
        raise not_valid(f"{node.name} {node.attr('NAME')} holds more than one value element")
    k = node.kids[0]
    if k.name == "VALUE":
        return "value", k.text
    if k.name == "VALUE.ARRAY":
        return "array", value_array(k)
    if k.name == "VALUE.REFERENCE":
        return "ref", reference(k)
    if k.name == "VALUE.REFARRAY":
        return "refarray", ref_array(k)
    if k.name == "INSTANCENAME":
        return "ref", instance_name(k)
    if k.name == "CLASSNAME":
        return "classname", class_name(k)
    if k.name == "INSTANCE":
        return "instance", instance(k)
    if k.name == "VALUE.NAMEDINSTANCE":
        a, b = _two(k)
        inst = instance(b)
        inst.path = instance_name(a)
        return "instance", inst
    if k.name in ("CLASS", "QUALIFIER.DECLARATION"):
        return k.name.lower(), k
    raise not_valid(f"{node.name} may not hold element {k.name}")


# ---------------------------------------------------------------------- the message
def _major(version: str | None, want: str) -> bool:
    return bool(version) and str(version).strip().split(".")[0] == want


def message(root: Node) -> Message:
    if root.name != "CIM":
        raise not_valid(f"the root element must be CIM, not {root.name}")
    if not _major(root.attr("CIMVERSION"), "2"):
        raise ProtocolError(501, "unsupported-cim-version",
                            f"CIMVERSION {root.attr('CIMVERSION')!r} is not supported (use 2.x)")
    if not _major(root.attr("DTDVERSION"), "2"):
        raise ProtocolError(501, "unsupported-dtd-version",
                            f"DTDVERSION {root.attr('DTDVERSION')!r} is not supported (use 2.x)")
    if len(root.kids) != 1 or root.kids[0].name != "MESSAGE":
        raise not_valid("CIM must hold exactly one MESSAGE element")
    msg = root.kids[0]
    mid = _need(msg, "ID")
    pver = _need(msg, "PROTOCOLVERSION")
    if not _major(pver, "1"):
        raise ProtocolError(501, "unsupported-protocol-version",
                            f"PROTOCOLVERSION {pver!r} is not supported (use 1.x)")
    if len(msg.kids) != 1:
        raise not_valid("MESSAGE must hold exactly one request element")
    body = msg.kids[0]
    if body.name in ("MULTIREQ", "MULTIEXPREQ"):
        raise ProtocolError(501, "multiple-requests-unsupported",
                            "multiple requests (MULTIREQ) are not supported")
    if body.name != "SIMPLEREQ" or len(body.kids) != 1:
        raise not_valid("MESSAGE must hold a SIMPLEREQ with one IMETHODCALL or METHODCALL")
    call = body.kids[0]
    if call.name == "IMETHODCALL":
        return Message(mid, pver, _imethodcall(call))
    if call.name == "METHODCALL":
        return Message(mid, pver, _methodcall(call))
    raise not_valid(f"SIMPLEREQ may hold IMETHODCALL or METHODCALL, not {call.name}")


def _imethodcall(node: Node) -> IMethodCall:
    name = _need(node, "NAME")
    if not node.kids or node.kids[0].name != "LOCALNAMESPACEPATH":
        raise not_valid("IMETHODCALL must start with LOCALNAMESPACEPATH")
    call = IMethodCall(name, local_namespace(node.kids[0]))
    for p in node.kids[1:]:
        if p.name != "IPARAMVALUE":
            raise not_valid(f"IMETHODCALL may hold IPARAMVALUE elements, not {p.name}")
        pname = _need(p, "NAME")
        if pname.lower() in call.params:
            raise not_valid(f"parameter {pname} is given twice")
        call.params[pname.lower()] = (pname, param_content(p))
    return call


def _methodcall(node: Node) -> MethodCall:
    name = _need(node, "NAME")
    if not node.kids or node.kids[0].name not in ("LOCALINSTANCEPATH", "LOCALCLASSPATH"):
        raise not_valid("METHODCALL must start with LOCALINSTANCEPATH or LOCALCLASSPATH")
    target = object_path(node.kids[0])
    call = MethodCall(name, str(target.namespace), target)
    seen: set[str] = set()
    for p in node.kids[1:]:
        if p.name != "PARAMVALUE":
            raise not_valid(f"METHODCALL may hold PARAMVALUE elements, not {p.name}")
        pname = _need(p, "NAME")
        if pname.lower() in seen:
            raise not_valid(f"parameter {pname} is given twice")
        seen.add(pname.lower())
        kind, value = param_content(p)
        call.params.append(ParamValue(pname, p.attr("PARAMTYPE") or p.attr("TYPE"),
                                      p.attr("EmbeddedObject"), kind, value))
    return call
