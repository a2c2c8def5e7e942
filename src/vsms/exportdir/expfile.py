"""The ``.exp`` file: a VM's settings instances as a CIM-XML declaration document.

```
<?xml version="1.0" encoding="utf-8"?>
<CIM CIMVERSION="2.0" DTDVERSION="2.0">
<DECLARATION>
<DECLGROUP>
<VALUE.OBJECT><INSTANCE CLASSNAME="Msvm_VirtualSystemSettingData">…</INSTANCE></VALUE.OBJECT>
…one VALUE.OBJECT per instance…
</DECLGROUP>
</DECLARATION>
</CIM>
```
Instances are written with pywbem's ``tocimxmlstr()`` and read back with pywbem's CIM-XML tuple
parser, fed from our hardened expat parse (safexml), so the bytes never reach a parser that
would honour a DTD.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape, quoteattr

from vsms.cim import names
from vsms.cim.embedded import parse_instance
from vsms.errors import IncorrectDataType
from vsms.exportdir import safexml
from vsms.exportdir.layout import (
    EXP_CLASSES,
    EXP_MAX_BYTES,
    XML_MAX_DEPTH,
    XML_MAX_ELEMENTS,
    q,
)

_HEAD = ('<?xml version="1.0" encoding="utf-8"?>\n'
         '<CIM CIMVERSION="2.0" DTDVERSION="2.0">\n<DECLARATION>\n<DECLGROUP>\n')
_TAIL = "</DECLGROUP>\n</DECLARATION>\n</CIM>\n"
_GROUP_HEADERS = ("LOCALNAMESPACEPATH", "NAMESPACEPATH")


def exp_to_xml(instances: list[Any]) -> bytes:
    """The .exp document for ``instances`` (pywbem CIMInstance objects; their paths are dropped)."""
    body = "".join(f"<VALUE.OBJECT>{inst.tocimxmlstr(ignore_path=True)}</VALUE.OBJECT>\n"
                   for inst in instances)
    return (_HEAD + body + _TAIL).encode("utf-8")


def instance_problems(instances: list[Any], guid: str) -> list[str]:
    """Clauses ("holds …") for every instance that is not a settings instance of VM ``guid``."""
    problems: list[str] = []
    own = f"Microsoft:{guid}".upper()
    seen: set[str] = set()
    vssd = 0
    for inst in instances:
        cls = inst.classname
        if cls not in EXP_CLASSES:
            problems.append(f"holds an instance of {cls}, which is not a settings class of a "
                            "virtual machine")
            continue
        iid = inst.get("InstanceID")
        if not isinstance(iid, str) or not iid:
            problems.append(f"holds a {cls} instance without an InstanceID")
            continue
        if iid.upper() != own and not iid.upper().startswith(own + "\\"):
            problems.append(f"holds the {cls} instance {q(iid)}, which does not belong to "
                            f"virtual machine {guid}")
        if iid.upper() in seen:
            problems.append(f"holds the InstanceID {q(iid)} more than once")
        seen.add(iid.upper())
        vssd += cls == names.VSSD
    if instances and vssd != 1:
        problems.append(f"holds {vssd} {names.VSSD} instances instead of exactly one")
    return problems


def _instances(root: safexml.Node) -> tuple[list[Any], list[str]]:
    problems: list[str] = []
    if root[0] != "CIM" or not root[1].get("CIMVERSION", "").startswith("2."):
        return [], [f"is not a CIM-XML document (the root element is <{root[0]}>, not "
                    '<CIM CIMVERSION="2.0">)']
    decls = safexml.children(root, "DECLARATION")
    if len(decls) != 1 or len(safexml.children(root)) != 1:
        return [], ["does not hold exactly one <DECLARATION> inside <CIM>"]
    found: list[Any] = []
    for group in safexml.children(decls[0]):
        if group[0] != "DECLGROUP":
            problems.append(f"has <{group[0]}> inside <DECLARATION>, where only <DECLGROUP> "
                            "belongs")
            continue
        for obj in safexml.children(group):
            if obj[0] in _GROUP_HEADERS:
                continue
            kids = safexml.children(obj)
            if obj[0] != "VALUE.OBJECT" or len(kids) != 1 or kids[0][0] != "INSTANCE":
                what = kids[0][0] if obj[0] == "VALUE.OBJECT" and kids else obj[0]
                problems.append(f"has <{what}> where a <VALUE.OBJECT> holding one <INSTANCE> "
                                "belongs")
                continue
            try:
                found.append(parse_instance(_xml(kids[0]), what="it"))
            except IncorrectDataType as exc:
                cls = kids[0][1].get("CLASSNAME", "?")
                problems.append(f"has an instance of {cls} that is not valid CIM-XML ({exc})")
    if not found and not problems:
        problems.append("holds no instances")
    return found, problems


def _xml(node: safexml.Node) -> str:
    """The element again as XML text, for ``cim.embedded.parse_instance``."""
    tag, attrs, kids = node
    head = tag + "".join(f" {k}={quoteattr(v)}" for k, v in attrs.items())
    inner = "".join(escape(k) if isinstance(k, str) else _xml(k) for k in kids)
    return f"<{head}>{inner}</{head.split()[0]}>"


def parse_exp(data: bytes) -> tuple[list[Any], list[str]]:
    """Parse .exp bytes: the instances (in file order) and clauses for every problem.

    The clauses follow the file's name ("… .exp is not a CIM-XML document …").
    """
    try:
        root = safexml.parse_xml(data, max_bytes=EXP_MAX_BYTES, max_depth=XML_MAX_DEPTH,
                                 max_elements=XML_MAX_ELEMENTS)
    except IncorrectDataType as exc:
        return [], [f"is refused because {exc}"]
    return _instances(root)
