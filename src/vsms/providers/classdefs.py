"""Class definitions as a CIMOM serves them: inheritance resolved, qualifier declarations.

``resolve_classes`` gives each class its inherited properties and methods (``class_origin`` set,
``propagated`` true for inherited ones, qualifiers that propagate copied down), so GetClass answers
as with LocalOnly=false and inherited methods can be invoked; ``derive_qualifiers`` builds the
qualifier declarations (scopes from where each qualifier is used) that a namespace reports.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pywbem

_NOT_INHERITED = {"abstract", "override", "deprecated", "experimental"}


def _inherits(q: pywbem.CIMQualifier) -> bool:
    return q.tosubclass is not False and q.name.lower() not in _NOT_INHERITED


def _fix_embedded(obj: Any) -> None:
    """MOFCompiler leaves ``embedded_object`` unset; derive it from the qualifiers."""
    if getattr(obj, "embedded_object", None) is None:
        names = {q.lower() for q in obj.qualifiers}
        if "embeddedinstance" in names:
            obj.embedded_object = "instance"
        elif "embeddedobject" in names:
            obj.embedded_object = "object"


def _merge(local: Any, inherited: Any | None, origin: str) -> Any:
    """A local property or method: class_origin set, qualifiers inherited from ``inherited``."""
    out = local.copy()
    if out.class_origin is None:
        out.class_origin = origin
    if out.propagated is None:
        out.propagated = False
    if inherited is not None:
        for qn, q in inherited.qualifiers.items():
            if qn not in out.qualifiers and _inherits(q):
                q2 = q.copy()
                q2.propagated = True
                out.qualifiers[qn] = q2
    return out


def _propagate(item: Any) -> Any:
    out = item.copy()
    out.propagated = True
    out.qualifiers = {n: q for n, q in out.qualifiers.items() if _inherits(q)}
    return out


def resolve_classes(classes: Iterable[pywbem.CIMClass]) -> list[pywbem.CIMClass]:
    """Copies of ``classes`` with inherited properties, methods and class qualifiers merged in.

    Idempotent: classes that already carry their inherited members come out unchanged apart
    from ``class_origin``/``propagated``/``embedded_object`` being filled where unset. A class
    whose superclass is not in ``classes`` is kept as given."""
    given = {c.classname.lower(): c for c in classes}
    done: dict[str, pywbem.CIMClass] = {}

    def resolve(key: str, depth: int = 0) -> pywbem.CIMClass:
        if key in done:
            return done[key]
        c = given[key]
        sup = c.superclass.lower() if c.superclass else ""
        base = resolve(sup, depth + 1) if sup in given and depth < 64 else None
        out = c.copy()
        out.properties = {}
        for n, p in c.properties.items():
            out.properties[n] = _merge(p, base.properties.get(n) if base else None, c.classname)
        out.methods = {}
        for n, m in c.methods.items():
            out.methods[n] = _merge(m, base.methods.get(n) if base else None, c.classname)
        if base is not None:
            for n, p in base.properties.items():
                if n not in out.properties:
                    out.properties[n] = _propagate(p)
            for n, m in base.methods.items():
                if n not in out.methods:
                    out.methods[n] = _propagate(m)
            for n, q in base.qualifiers.items():
                if n not in out.qualifiers and _inherits(q):
                    q2 = q.copy()
                    q2.propagated = True
                    out.qualifiers[n] = q2
        for p in out.properties.values():
            _fix_embedded(p)
        for m in out.methods.values():
            for par in m.parameters.values():
                _fix_embedded(par)
        done[key] = out
        return out

    return [resolve(k) for k in given]


_SCOPES = ("CLASS", "ASSOCIATION", "INDICATION", "PROPERTY", "REFERENCE", "METHOD", "PARAMETER")


def derive_qualifiers(classes: Iterable[pywbem.CIMClass]) -> list[pywbem.CIMQualifierDeclaration]:
    """Qualifier declarations inferred from what ``classes`` use (type, array-ness, flavors and
    the kinds of element each qualifier was seen on)."""
    seen: dict[str, tuple[pywbem.CIMQualifier, set[str]]] = {}

    def note(quals: Mapping[str, pywbem.CIMQualifier], scope: str) -> None:
        for q in quals.values():
            entry = seen.setdefault(q.name.lower(), (q, set()))
            entry[1].add(scope)

    for c in classes:
        is_assoc = any(q.lower() == "association" for q in c.qualifiers)
        note(c.qualifiers, "ASSOCIATION" if is_assoc else "CLASS")
        for p in c.properties.values():
            note(p.qualifiers, "REFERENCE" if p.type == "reference" else "PROPERTY")
        for m in c.methods.values():
            note(m.qualifiers, "METHOD")
            for par in m.parameters.values():
                note(par.qualifiers, "PARAMETER")
    out = []
    for q, scopes in seen.values():
        out.append(pywbem.CIMQualifierDeclaration(
            q.name, q.type, is_array=isinstance(q.value, list),
            scopes={s: s in scopes for s in _SCOPES},
            overridable=q.overridable, tosubclass=q.tosubclass,
            translatable=q.translatable))
    return out
