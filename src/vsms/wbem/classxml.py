"""CIM-XML writer for class definitions and qualifier declarations (DSP0201).

Like :mod:`vsms.wbem.encode`: strings, explicit end tags, pywbem's element choices.
"""

from __future__ import annotations

import pywbem

from vsms.wbem.encode import esc_attr, prop, qualifier, value

_SCOPES = ("CLASS", "ASSOCIATION", "REFERENCE", "PROPERTY", "METHOD", "PARAMETER", "INDICATION")


def _quals(obj: object, quals: bool) -> str:
    qs = getattr(obj, "qualifiers", None)
    if not quals or not qs:
        return ""
    return "".join(qualifier(q) for q in qs.values())


def parameter(p: pywbem.CIMParameter, quals: bool = True) -> str:
    name = esc_attr(p.name)
    qx = _quals(p, quals)
    size = f' ARRAYSIZE="{p.array_size}"' if p.array_size is not None else ""
    if p.type == "reference":
        rc = f' REFERENCECLASS="{esc_attr(p.reference_class)}"' if p.reference_class else ""
        if p.is_array:
            return (f'<PARAMETER.REFARRAY NAME="{name}"{rc}{size}>{qx}'
                    f"</PARAMETER.REFARRAY>")
        return f'<PARAMETER.REFERENCE NAME="{name}"{rc}>{qx}</PARAMETER.REFERENCE>'
    if p.is_array:
        return f'<PARAMETER.ARRAY NAME="{name}" TYPE="{p.type}"{size}>{qx}</PARAMETER.ARRAY>'
    return f'<PARAMETER NAME="{name}" TYPE="{p.type}">{qx}</PARAMETER>'


def method(m: pywbem.CIMMethod, origin: bool = True, quals: bool = True) -> str:
    attrs = f' NAME="{esc_attr(m.name)}"'
    if m.return_type:
        attrs += f' TYPE="{m.return_type}"'
    if origin and m.class_origin:
        attrs += f' CLASSORIGIN="{esc_attr(m.class_origin)}"'
    if m.propagated is not None:
        attrs += f' PROPAGATED="{"true" if m.propagated else "false"}"'
    params = "".join(parameter(p, quals) for p in m.parameters.values())
    return f"<METHOD{attrs}>{_quals(m, quals)}{params}</METHOD>"


def cim_class(c: pywbem.CIMClass, origin: bool = True, quals: bool = True) -> str:
    """CLASS element. ``origin``: write CLASSORIGIN; ``quals``: write qualifiers."""
    sup = f' SUPERCLASS="{esc_attr(c.superclass)}"' if c.superclass else ""
    props = "".join(prop(p, origin, quals) for p in c.properties.values())
    meths = "".join(method(m, origin, quals) for m in c.methods.values())
    return f'<CLASS NAME="{esc_attr(c.classname)}"{sup}>{_quals(c, quals)}{props}{meths}</CLASS>'


def qualifier_declaration(q: pywbem.CIMQualifierDeclaration) -> str:
    attrs = f' NAME="{esc_attr(q.name)}" TYPE="{q.type}"'
    attrs += f' ISARRAY="{"true" if q.is_array else "false"}"'
    if q.array_size is not None:
        attrs += f' ARRAYSIZE="{q.array_size}"'
    for attr, flag in (("OVERRIDABLE", q.overridable), ("TOSUBCLASS", q.tosubclass),
                       ("TOINSTANCE", q.toinstance), ("TRANSLATABLE", q.translatable)):
        if flag is not None:
            attrs += f' {attr}="{"true" if flag else "false"}"'
    scopes = {k.upper(): bool(v) for k, v in (q.scopes or {}).items()}
    any_scope = scopes.get("ANY", False)
    scope = "".join(f' {s}="{"true" if any_scope or scopes.get(s) else "false"}"'
                    for s in _SCOPES)
    inner = "" if q.value is None else value(q.value)
    return f"<QUALIFIER.DECLARATION{attrs}><SCOPE{scope}></SCOPE>{inner}</QUALIFIER.DECLARATION>"
