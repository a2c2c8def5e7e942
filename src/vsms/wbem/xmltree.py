"""A small, safe XML reader: bytes -> a tree of :class:`Node`.

Built on expat with every DTD feature refused (a DOCTYPE, entity or notation declaration is an
error, so neither external entities nor entity expansion can happen) and with bounds on depth,
element count and the length of any one text or attribute value. A leaf element keeps its text
as is; the text of an element with children is kept only when it is not blank (so indentation
between elements disappears).
"""

from __future__ import annotations

from typing import Any
from xml.parsers import expat

MAX_DEPTH = 64
MAX_ELEMENTS = 100_000
"""Most elements in one request: client requests hold a few hundred; building a tree node costs
microseconds of Python, so this also bounds the CPU a request can take (about a second)."""
MAX_STRING = 4 * 1024 * 1024
"""Longest text of one element or value of one attribute, in characters."""


class XmlError(Exception):
    """The body is not well-formed XML, or uses a forbidden XML feature."""


class Node:
    """One element: ``name``, ``attrs``, child ``kids`` and the concatenated ``text``."""

    __slots__ = ("attrs", "kids", "name", "text")

    def __init__(self, name: str, attrs: dict[str, str]) -> None:
        self.name = name
        self.attrs = attrs
        self.kids: list[Node] = []
        self.text = ""

    def __repr__(self) -> str:
        return f"<Node {self.name} {self.attrs} kids={len(self.kids)}>"

    def attr(self, name: str) -> str | None:
        """Attribute value; falls back to a case-insensitive match (some clients upper-case)."""
        v = self.attrs.get(name)
        if v is None:
            low = name.lower()
            for k, val in self.attrs.items():
                if k.lower() == low:
                    return val
        return v


class _Builder:
    def __init__(self, max_depth: int, max_elements: int, max_string: int) -> None:
        self.stack: list[Node] = []
        self.root: Node | None = None
        self.count = 0
        self.max_depth = max_depth
        self.max_elements = max_elements
        self.max_string = max_string
        self.chunks: list[list[str]] = []
        self.sizes: list[int] = []

    def _too_long(self) -> XmlError:
        return XmlError(f"an XML text or attribute value is longer than {self.max_string} "
                        "characters")

    def start(self, name: str, attrs: dict[str, str]) -> None:
        self.count += 1
        if self.count > self.max_elements:
            raise XmlError(f"too many XML elements (limit {self.max_elements})")
        if len(self.stack) >= self.max_depth:
            raise XmlError(f"XML nested deeper than {self.max_depth} levels")
        if any(len(v) > self.max_string for v in attrs.values()):
            raise self._too_long()
        node = Node(name, attrs)
        if self.stack:
            self.stack[-1].kids.append(node)
        elif self.root is None:
            self.root = node
        self.stack.append(node)
        self.chunks.append([])
        self.sizes.append(0)

    def end(self, name: str) -> None:
        node = self.stack.pop()
        parts = self.chunks.pop()
        self.sizes.pop()
        if parts:
            text = "".join(parts)
            node.text = text if not node.kids or text.strip() else ""

    def data(self, text: str) -> None:
        if self.chunks:
            self.sizes[-1] += len(text)
            if self.sizes[-1] > self.max_string:
                raise self._too_long()
            self.chunks[-1].append(text)


def _refuse(what: str) -> Any:
    def handler(*_args: Any) -> None:
        raise XmlError(f"{what} are not allowed in CIM-XML requests")
    return handler


def parse(data: bytes, *, max_depth: int = MAX_DEPTH, max_elements: int = MAX_ELEMENTS,
          max_string: int = MAX_STRING, namespaces: bool = False) -> Node:
    """Parse ``data`` into a Node tree; raises :class:`XmlError` with the reason.
    ``namespaces``: element and attribute names become ``"<namespace URI> <local name>"``
    (unqualified ones stay as they are), as WS-Management needs."""
    builder = _Builder(max_depth, max_elements, max_string)
    # CIM-XML is UTF-8 whatever the XML declaration says
    p = expat.ParserCreate("utf-8", " " if namespaces else None)
    p.buffer_text = True
    p.ordered_attributes = False
    p.StartElementHandler = builder.start
    p.EndElementHandler = builder.end
    p.CharacterDataHandler = builder.data
    p.StartDoctypeDeclHandler = _refuse("DOCTYPE declarations")
    p.EntityDeclHandler = _refuse("entity declarations")
    p.UnparsedEntityDeclHandler = _refuse("entity declarations")
    p.NotationDeclHandler = _refuse("notation declarations")
    p.ExternalEntityRefHandler = _refuse("external entities")
    p.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    try:
        p.Parse(data, True)
    except expat.ExpatError as exc:
        raise XmlError(f"XML is not well-formed: {expat.errors.messages[exc.code]} "
                       f"at line {exc.lineno}, column {exc.offset}") from None
    except (ValueError, LookupError) as exc:  # defensive: an encoding expat cannot read
        raise XmlError(f"XML cannot be read: {exc}") from None
    if builder.root is None:
        raise XmlError("XML document has no root element")
    return builder.root
