"""Embedded instances: one CIM instance carried as CIM-XML text in a string parameter.

:func:`parse_instance` reads what clients send: pywbem's ``tocimxmlstr()`` output, WMI's
``GetText_(1)`` (DTD 2.0) text, or an ``INSTANCE`` wrapped in ``VALUE.NAMEDINSTANCE``,
``VALUE.OBJECT``, ``VALUE.OBJECTWITHPATH``/``VALUE.OBJECTWITHLOCALPATH``,
``VALUE.INSTANCEWITHPATH`` (what pywbem's ``tocimxmlstr()`` writes for an instance that came
from a server, its path complete) or a CDATA section.
It is lenient about what does not carry data (unknown attributes such as ``CLASSORIGIN``,
``PROPAGATED``, ``xml:lang``; ``QUALIFIER`` elements; an XML declaration; surrounding
whitespace) and strict about safety: no DOCTYPE, no entity declarations, at most
:data:`MAX_TEXT` bytes, :data:`MAX_DEPTH` nested elements and :data:`MAX_NESTING` levels of
instances embedded in properties. Values are converted to the declared ``TYPE`` (pywbem's CIM
integer, real, boolean, ``CIMDateTime``, ``CIMInstanceName`` and nested ``CIMInstance``
types). Anything else raises :class:`vsms.errors.IncorrectDataType` naming the problem.

:func:`serialize_instance` writes the ``INSTANCE`` element as pywbem does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, NoReturn
from xml.parsers import expat

import pywbem

from vsms.errors import IncorrectDataType

MAX_TEXT = 1 << 20
"""Largest accepted text, in bytes of UTF-8."""
MAX_DEPTH = 32
"""Deepest accepted element nesting within one text."""
MAX_NESTING = 4
"""Deepest accepted chain of instances embedded in properties of instances."""

_HINT = "send one CIM-XML INSTANCE element (as pywbem tocimxmlstr() or WMI GetText_(1) write it)"
_WRAPPERS = ("VALUE.NAMEDINSTANCE", "VALUE.OBJECT", "VALUE.OBJECTWITHPATH",
             "VALUE.OBJECTWITHLOCALPATH", "VALUE.INSTANCEWITHPATH")
_INTS: dict[str, type] = {
    "uint8": pywbem.Uint8, "sint8": pywbem.Sint8, "uint16": pywbem.Uint16,
    "sint16": pywbem.Sint16, "uint32": pywbem.Uint32, "sint32": pywbem.Sint32,
    "uint64": pywbem.Uint64, "sint64": pywbem.Sint64}
_REALS: dict[str, type] = {"real32": pywbem.Real32, "real64": pywbem.Real64}
_INT_RE = re.compile(r"[+-]?(\d+|0[xX][0-9a-fA-F]+)")
_TYPES = frozenset({"string", "char16", "boolean", "datetime", "reference", *_INTS, *_REALS})
_XML_DECL = re.compile(r"<\?xml\b[^>]*\?>")


class _Bad(Exception):
    """A problem found while reading; turned into IncorrectDataType by parse_instance."""


@dataclass
class _Node:
    tag: str
    attrs: dict[str, str]
    line: int
    children: list[_Node] = field(default_factory=list)
    text: str = ""

    def attr(self, name: str) -> str | None:
        return self.attrs.get(name.upper())

    def where(self) -> str:
        return f"<{self.tag}> at line {self.line}"

    def elements(self, skip: tuple[str, ...] = ("QUALIFIER",)) -> list[_Node]:
        return [c for c in self.children if c.tag not in skip]


# ------------------------------------------------------------------------------ public API

def parse_instance(text: str, *, what: str = "The embedded instance") -> pywbem.CIMInstance:
    """Parse one embedded instance. ``what`` names it in error messages (for example the
    parameter name, "ResourceSettingData"). The path is set when the text carries one."""
    try:
        return _parse_text(text, 0)
    except _Bad as exc:
        raise IncorrectDataType(f"{what} is not a CIM-XML INSTANCE: {exc}; {_HINT}") from None
    except (ValueError, TypeError) as exc:  # a value pywbem refuses that no check above caught
        raise IncorrectDataType(f"{what} is not a valid CIM instance: {exc}; {_HINT}") from None


def serialize_instance(inst: pywbem.CIMInstance) -> str:
    """The ``INSTANCE`` element of ``inst`` as pywbem writes it (without its path: an embedded
    instance has none)."""
    text: str = inst.tocimxmlstr(ignore_path=True)
    return text


# ------------------------------------------------------------------------------ XML reading

def _prepare(text: Any) -> tuple[str, int]:
    """The XML to parse, and how many lines were cut off before it (for line numbers)."""
    if not isinstance(text, str):
        raise _Bad(f"expected a string, got {type(text).__name__}")
    if len(text) > MAX_TEXT or len(text.encode("utf-8", "surrogatepass")) > MAX_TEXT:
        raise _Bad(f"the text is larger than {MAX_TEXT} bytes")
    start = len(text) - len(text.lstrip().lstrip("\ufeff").lstrip())
    end = len(text.rstrip())
    if text.startswith("<![CDATA[", start) and text.endswith("]]>", 0, end):
        start, end = start + len("<![CDATA["), end - len("]]>")
    decl = _XML_DECL.match(text, start, end)
    if decl:
        start = decl.end()
    body = text[start:end].strip()
    if not body:
        raise _Bad("the text is empty")
    return body, text.count("\n", 0, text.index(body, start))


def _refuse(what: str) -> NoReturn:
    raise _Bad(f"{what} are refused (no DTDs or entities are accepted)")


def _read_xml(body: str, skipped_lines: int) -> _Node:
    """Build a small element tree with expat, refusing DTDs and entities."""
    parser = expat.ParserCreate("utf-8")  # the text is Unicode: any declared encoding is moot
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.buffer_text = True
    stack: list[_Node] = []
    roots: list[_Node] = []

    def start(tag: str, attrs: dict[str, str]) -> None:
        if len(stack) >= MAX_DEPTH:
            raise _Bad(f"elements are nested deeper than {MAX_DEPTH} levels "
                       f"at line {parser.CurrentLineNumber + skipped_lines}")
        node = _Node(tag.upper(), {k.upper(): v for k, v in attrs.items()},
                     parser.CurrentLineNumber + skipped_lines)
        (stack[-1].children if stack else roots).append(node)
        stack.append(node)

    def end(tag: str) -> None:
        stack.pop()

    def chars(data: str) -> None:
        if stack:
            stack[-1].text += data

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    parser.StartDoctypeDeclHandler = lambda *a: _refuse("DOCTYPE declarations")
    parser.EntityDeclHandler = lambda *a: _refuse("entity declarations")
    parser.UnparsedEntityDeclHandler = lambda *a: _refuse("entity declarations")
    parser.ExternalEntityRefHandler = lambda *a: _refuse("external entities")
    try:
        data = body.encode("utf-8")
    except UnicodeEncodeError:
        raise _Bad("the text holds characters that are not valid Unicode") from None
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise _Bad(f"malformed XML: {expat.ErrorString(exc.code)} at line "
                   f"{exc.lineno + skipped_lines}, column {exc.offset + 1}") from None
    except (ValueError, LookupError) as exc:  # e.g. an encoding expat cannot read
        raise _Bad(f"unreadable XML: {exc}") from None
    return roots[0]


def _parse_text(text: Any, nesting: int) -> pywbem.CIMInstance:
    if nesting > MAX_NESTING:
        raise _Bad(f"instances are embedded deeper than {MAX_NESTING} levels")
    root = _read_xml(*_prepare(text))
    if root.tag == "INSTANCE":
        return _instance(root, None, nesting)
    if root.tag not in _WRAPPERS:
        raise _Bad(f"unexpected element {root.where()}")
    kids = root.elements()
    inst_nodes = [k for k in kids if k.tag == "INSTANCE"]
    path_nodes = [k for k in kids if k.tag != "INSTANCE"]
    if len(inst_nodes) != 1:
        found = inst_nodes[1] if inst_nodes else (kids[0] if kids else None)
        detail = f"unexpected element {found.where()}" if found else "no INSTANCE inside"
        raise _Bad(f"{detail} in {root.where()}")
    for node in path_nodes:
        if node.tag not in ("INSTANCENAME", "INSTANCEPATH", "LOCALINSTANCEPATH"):
            raise _Bad(f"unexpected element {node.where()} in {root.where()}")
    if len(path_nodes) > 1:
        raise _Bad(f"more than one instance path in {root.where()}")
    path = _instance_path(path_nodes[0]) if path_nodes else None
    return _instance(inst_nodes[0], path, nesting)


# ------------------------------------------------------------------------------ CIM-XML

def _instance(node: _Node, path: pywbem.CIMInstanceName | None,
              nesting: int) -> pywbem.CIMInstance:
    classname = node.attr("CLASSNAME")
    if not classname:
        raise _Bad(f"{node.where()} has no CLASSNAME")
    props: list[pywbem.CIMProperty] = []
    seen: set[str] = set()
    for child in node.elements():
        if child.tag == "PROPERTY":
            prop = _property(child, nesting)
        elif child.tag == "PROPERTY.ARRAY":
            prop = _property_array(child, nesting)
        elif child.tag == "PROPERTY.REFERENCE":
            prop = _property_reference(child)
        else:
            raise _Bad(f"unexpected element {child.where()} in INSTANCE {classname}")
        if prop.name.lower() in seen:
            raise _Bad(f"property {prop.name} appears twice in INSTANCE {classname}")
        seen.add(prop.name.lower())
        props.append(prop)
    return pywbem.CIMInstance(classname, properties=props, path=path)


def _name_and_type(node: _Node) -> tuple[str, str, bool]:
    """NAME, TYPE (lower case; string when absent) and whether the value is an embedded
    instance (EmbeddedObject attribute, or an EmbeddedInstance/EmbeddedObject qualifier)."""
    name = node.attr("NAME")
    if not name:
        raise _Bad(f"{node.where()} has no NAME")
    cimtype = (node.attr("TYPE") or "string").strip().lower()
    if cimtype not in _TYPES:
        raise _Bad(f"property {name} has the unknown TYPE {cimtype[:40]!r}")
    embedded = bool(node.attr("EMBEDDEDOBJECT"))
    for q in node.children:
        if q.tag == "QUALIFIER" and (q.attr("NAME") or "").lower() in (
                "embeddedinstance", "embeddedobject"):
            embedded = True
    if embedded and cimtype != "string":
        raise _Bad(f"property {name} is an embedded object but has TYPE {cimtype!r}")
    return name, cimtype, embedded


def _single(node: _Node, allowed: tuple[str, ...]) -> _Node | None:
    kids = node.elements()
    for kid in kids:
        if kid.tag not in allowed:
            raise _Bad(f"unexpected element {kid.where()} in {node.where()}")
    if len(kids) > 1:
        raise _Bad(f"{node.where()} has more than one value")
    return kids[0] if kids else None


def _property(node: _Node, nesting: int) -> pywbem.CIMProperty:
    name, cimtype, embedded = _name_and_type(node)
    value_node = _single(node, ("VALUE", "VALUE.NULL"))
    if cimtype == "reference":
        text = value_node.text.strip() if value_node is not None else ""
        return pywbem.CIMProperty(name, _uri(text, name) if text else None, type="reference")
    value = None
    if value_node is not None and value_node.tag == "VALUE":
        value = _value(value_node.text, cimtype, name, embedded, nesting)
    return pywbem.CIMProperty(name, value, type=cimtype,
                              embedded_object="instance" if embedded else None)


def _property_array(node: _Node, nesting: int) -> pywbem.CIMProperty:
    name, cimtype, embedded = _name_and_type(node)
    if cimtype == "reference":
        raise _Bad(f"array property {name} has TYPE reference, which CIM-XML does not allow")
    array = _single(node, ("VALUE.ARRAY",))
    values: list[Any] | None = None
    if array is not None:
        values = []
        for item in array.elements():
            if item.tag == "VALUE.NULL":
                values.append(None)
            elif item.tag == "VALUE":
                values.append(_value(item.text, cimtype, name, embedded, nesting))
            else:
                raise _Bad(f"unexpected element {item.where()} in array property {name}")
    return pywbem.CIMProperty(name, values, type=cimtype, is_array=True,
                              embedded_object="instance" if embedded else None)


def _property_reference(node: _Node) -> pywbem.CIMProperty:
    name = node.attr("NAME")
    if not name:
        raise _Bad(f"{node.where()} has no NAME")
    value_node = _single(node, ("VALUE.REFERENCE",))
    path = None
    if value_node is not None:
        target = _single(value_node, ("INSTANCENAME", "INSTANCEPATH", "LOCALINSTANCEPATH"))
        if target is None:
            raise _Bad(f"reference property {name} has an empty VALUE.REFERENCE")
        path = _instance_path(target)
    return pywbem.CIMProperty(name, path, type="reference",
                              reference_class=node.attr("REFERENCECLASS"))


def _value(text: str, cimtype: str, name: str, embedded: bool, nesting: int) -> Any:
    if embedded:
        if not text.strip():
            return None
        try:
            return _parse_text(text, nesting + 1)
        except _Bad as exc:
            raise _Bad(f"property {name} holds a bad embedded instance ({exc})") from None
    return _convert(text, cimtype, f"property {name}")


def _convert(text: str, cimtype: str, where: str) -> Any:
    """Convert VALUE text to the Python/pywbem value of CIM type ``cimtype``."""
    if cimtype == "string":
        return text
    raw = text.strip()
    shown = raw if len(raw) <= 40 else raw[:40] + "..."
    if cimtype in _INTS:
        if not _INT_RE.fullmatch(raw):
            raise _Bad(f"{where} ({cimtype}) has value {shown!r}, which is not an integer")
        try:
            return _INTS[cimtype](int(raw, 0) if "x" in raw.lower() else int(raw))
        except ValueError:
            raise _Bad(f"{where} ({cimtype}) has value {shown!r}, which is out of range"
                       ) from None
    if cimtype in _REALS:
        try:
            return _REALS[cimtype](float(raw))
        except ValueError:
            raise _Bad(f"{where} ({cimtype}) has value {shown!r}, which is not a number"
                       ) from None
    if cimtype == "boolean":
        if raw.lower() not in ("true", "false"):
            raise _Bad(f"{where} (boolean) has value {shown!r}; use TRUE or FALSE")
        return raw.lower() == "true"
    if cimtype == "datetime":
        try:
            return pywbem.CIMDateTime(raw)
        except ValueError:
            raise _Bad(f"{where} (datetime) has value {shown!r}, which is not a CIM datetime "
                       f"(yyyymmddHHMMSS.mmmmmm+UUU or ddddddddHHMMSS.mmmmmm:000)") from None
    if cimtype == "char16":
        if len(text) != 1:
            raise _Bad(f"{where} (char16) has value {shown!r}, which is not one character")
        return pywbem.Char16(text)
    raise _Bad(f"{where} has the unknown TYPE {cimtype!r}")


# ------------------------------------------------------------------------------ paths

def _uri(text: str, name: str) -> pywbem.CIMInstanceName:
    try:
        return pywbem.CIMInstanceName.from_wbem_uri(text)
    except (ValueError, TypeError) as exc:
        raise _Bad(f"reference property {name} has value {text!r}, which is not an object "
                   f"path ({exc})") from None


def _namespace(node: _Node) -> str:
    if node.tag != "LOCALNAMESPACEPATH":
        raise _Bad(f"unexpected element {node.where()}; expected LOCALNAMESPACEPATH")
    parts = []
    for ns in node.elements():
        if ns.tag != "NAMESPACE" or not ns.attr("NAME"):
            raise _Bad(f"unexpected element {ns.where()} in {node.where()}")
        parts.append(ns.attr("NAME") or "")
    namespace = "/".join(parts)
    if not parts or "" in namespace.split("/"):
        raise _Bad(f"{node.where()} names no namespace, or one with an empty segment")
    return namespace


def _instance_path(node: _Node) -> pywbem.CIMInstanceName:
    """INSTANCENAME, LOCALINSTANCEPATH or INSTANCEPATH -> CIMInstanceName."""
    host = namespace = None
    if node.tag in ("INSTANCEPATH", "LOCALINSTANCEPATH"):
        kids = node.elements()
        if len(kids) != 2 or kids[1].tag != "INSTANCENAME":
            raise _Bad(f"{node.where()} must hold a namespace path and an INSTANCENAME")
        if node.tag == "INSTANCEPATH":
            nsp = kids[0].elements()
            if kids[0].tag != "NAMESPACEPATH" or len(nsp) != 2 or nsp[0].tag != "HOST":
                raise _Bad(f"{kids[0].where()} must be a NAMESPACEPATH with HOST")
            host = nsp[0].text.strip()
            namespace = _namespace(nsp[1])
        else:
            namespace = _namespace(kids[0])
        node = kids[1]
    if node.tag != "INSTANCENAME":
        raise _Bad(f"unexpected element {node.where()}; expected an instance path")
    classname = node.attr("CLASSNAME")
    if not classname:
        raise _Bad(f"{node.where()} has no CLASSNAME")
    keys: dict[str, Any] = {}
    for kb in node.elements():
        if kb.tag != "KEYBINDING" or not kb.attr("NAME"):
            raise _Bad(f"unexpected element {kb.where()} in INSTANCENAME {classname}")
        keys[kb.attr("NAME") or ""] = _key_value(kb, classname)
    return pywbem.CIMInstanceName(classname, keybindings=keys, namespace=namespace, host=host)


def _key_value(kb: _Node, classname: str) -> Any:
    where = f"key {kb.attr('NAME')} of {classname}"
    kid = _single(kb, ("KEYVALUE", "VALUE.REFERENCE"))
    if kid is None:
        raise _Bad(f"{where} has no value")
    if kid.tag == "VALUE.REFERENCE":
        target = _single(kid, ("INSTANCENAME", "INSTANCEPATH", "LOCALINSTANCEPATH"))
        if target is None:
            raise _Bad(f"{where} has an empty VALUE.REFERENCE")
        return _instance_path(target)
    declared = kid.attr("TYPE")
    if declared:
        return _convert(kid.text, declared.strip().lower(), where)
    kind = (kid.attr("VALUETYPE") or "string").lower()
    if kind == "boolean":
        return _convert(kid.text, "boolean", where)
    if kind == "numeric":
        raw = kid.text.strip()
        if _INT_RE.fullmatch(raw):
            return int(raw, 0) if "x" in raw.lower() else int(raw)
        return _convert(raw, "real64", where)
    return kid.text
