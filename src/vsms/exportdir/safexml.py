"""Hardened XML parsing for export files: no DTD, no entities, bounded size, depth and count.

The result is a tuple tree ``(name, attributes, children)`` where children are nodes or text:
the shape pywbem's CIM-XML tuple parser consumes, so the bytes are parsed once, by expat, under
our limits, and pywbem only sees the finished tree.
"""

from __future__ import annotations

from typing import Union
from xml.parsers import expat

from vsms.errors import IncorrectDataType

Node = tuple[str, dict[str, str], list[Union["Node", str]]]


class _Refused(Exception):
    """Raised from inside an expat handler to stop parsing at once."""


class _Builder:
    def __init__(self, max_depth: int, max_elements: int) -> None:
        self.max_depth = max_depth
        self.max_elements = max_elements
        self.count = 0
        self.stack: list[Node] = []
        self.root: Node | None = None

    def doctype(self, *_args: object) -> None:
        raise _Refused("it contains a document type declaration (<!DOCTYPE>), which is not allowed")

    def entity(self, *_args: object) -> None:
        raise _Refused("it declares an entity, which is not allowed")

    def external(self, *_args: object) -> int:
        raise _Refused("it refers to an external entity, which is not allowed")

    def start(self, name: str, attrs: dict[str, str]) -> None:
        self.count += 1
        if self.count > self.max_elements:
            raise _Refused(f"it has more than {self.max_elements} elements")
        if len(self.stack) >= self.max_depth:
            raise _Refused(f"its elements are nested more than {self.max_depth} deep")
        node: Node = (name, dict(attrs), [])
        if self.stack:
            self.stack[-1][2].append(node)
        else:
            self.root = node
        self.stack.append(node)

    def end(self, _name: str) -> None:
        self.stack.pop()

    def text(self, data: str) -> None:
        if not self.stack:
            return
        children = self.stack[-1][2]
        if children and isinstance(children[-1], str):
            children[-1] += data
        else:
            children.append(data)


def parse_xml(data: bytes, *, max_bytes: int, max_depth: int, max_elements: int) -> Node:
    """Parse ``data`` into a tuple tree.

    Raises IncorrectDataType whose message says why the document was refused (it reads as the
    end of a sentence that names the file: "it is not well-formed XML (…)").
    """
    if len(data) > max_bytes:
        raise IncorrectDataType(f"it is {len(data)} bytes long, more than the limit of {max_bytes}")
    builder = _Builder(max_depth, max_elements)
    parser = expat.ParserCreate("utf-8")  # export files are UTF-8 whatever they declare
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.buffer_text = True
    parser.StartDoctypeDeclHandler = builder.doctype
    parser.EntityDeclHandler = builder.entity
    parser.UnparsedEntityDeclHandler = builder.entity
    parser.ExternalEntityRefHandler = builder.external
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.text
    try:
        parser.Parse(data, True)
    except _Refused as exc:
        raise IncorrectDataType(str(exc)) from None
    except expat.ExpatError as exc:
        raise IncorrectDataType(f"it is not well-formed XML ({exc})") from None
    except (ValueError, LookupError) as exc:  # defensive: an encoding expat cannot read
        raise IncorrectDataType(f"it cannot be read as UTF-8 XML ({exc})") from None
    if builder.root is None:  # pragma: no cover - expat reports "no element found" first
        raise IncorrectDataType("it holds no XML element")
    return builder.root


def children(node: Node, name: str | None = None) -> list[Node]:
    """Element children of ``node`` (only those called ``name`` when given)."""
    return [c for c in node[2] if not isinstance(c, str) and (name is None or c[0] == name)]


def text_of(node: Node) -> str:
    """The concatenated text directly inside ``node``."""
    return "".join(c for c in node[2] if isinstance(c, str))


def stray_text(node: Node) -> bool:
    """True when ``node`` has non-whitespace text between its child elements."""
    return any(isinstance(c, str) and c.strip() for c in node[2])
