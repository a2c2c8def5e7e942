"""Run a WQL query (see :mod:`vsms.wbem.wql`) against the registry.

Comparison rules: strings compare case-insensitively (as WMI does); a number literal compares
numerically with a numeric property and a quoted number is accepted for one; booleans compare
with TRUE/FALSE; a NULL property matches only ``IS NULL`` (or ``= NULL``); an array property
matches when any element does.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

import pywbem

from vsms.providers.common import same_path
from vsms.providers.registry import Registry
from vsms.wbem import wql

Row = tuple[pywbem.CIMInstance, Collection[str] | None]


def check_language(language: str | None) -> None:
    if language is None or language.strip().upper() != "WQL":
        raise pywbem.CIMError(pywbem.CIM_ERR_QUERY_LANGUAGE_NOT_SUPPORTED,
                              f"query language {language!r} is not supported; use WQL")


def run(registry: Registry, namespace: str, text: str) -> list[Row]:
    """Rows (instance, lower-case property names to show or None for all) of a WQL query."""
    q = wql.parse(text)
    if isinstance(q, wql.SelectQuery):
        return _select(registry, namespace, q)
    return _assoc(registry, namespace, q)


# ---------------------------------------------------------------------- SELECT
def _select(registry: Registry, namespace: str, q: wql.SelectQuery) -> list[Row]:
    try:
        cls = registry.get_class(namespace, q.classname)
    except pywbem.CIMError as exc:
        if exc.status_code == pywbem.CIM_ERR_INVALID_CLASS:
            raise wql.bad_query(f"class {q.classname} does not exist in {namespace}") from None
        raise
    known = {n.lower() for n in cls.properties}
    for name in q.properties or []:
        if name.lower() not in known:
            raise wql.bad_query(f"class {cls.classname} has no property {name}")
    if q.where is not None:
        _check_props(q.where, known, cls.classname)
    keep = None if q.properties is None else {p.lower() for p in q.properties}
    out: list[Row] = []
    for inst in registry.enumerate_instances(namespace, cls.classname):
        if q.where is None or _eval(q.where, inst):
            out.append((inst, keep))
    return out


def _check_props(expr: wql.Expr, known: set[str], classname: str) -> None:
    op = expr[0]
    if op in ("and", "or"):
        for term in expr[1]:
            _check_props(term, known, classname)
    elif op == "not":
        _check_props(expr[1], known, classname)
    elif expr[1].lower() not in known and expr[1].lower() != "__class":
        raise wql.bad_query(f"class {classname} has no property {expr[1]}")


def _value(inst: pywbem.CIMInstance, name: str) -> Any:
    if name.lower() == "__class":
        return inst.classname
    p = inst.properties.get(name)
    return None if p is None else p.value


def _eval(expr: wql.Expr, inst: pywbem.CIMInstance) -> bool:
    op = expr[0]
    if op == "and":
        return all(_eval(term, inst) for term in expr[1])
    if op == "or":
        return any(_eval(term, inst) for term in expr[1])
    if op == "not":
        return not _eval(expr[1], inst)
    value = _value(inst, expr[1])
    if op == "isnull":
        return (value is not None) if expr[2] else (value is None)
    if op == "like":
        rx = _like(expr[2])
        return any(isinstance(v, str) and rx.match(v) is not None for v in _items(value))
    _, _, cmp_op, lit = expr
    if lit is None:
        return (value is None) if cmp_op == "=" else (value is not None and cmp_op == "<>")
    return any(_compare(v, cmp_op, lit) for v in _items(value))


def _items(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _like(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "%":
            out.append(".*")
        elif c == "_":
            out.append(".")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise wql.bad_query(f"unclosed [ in LIKE pattern {pattern!r}")
            body = pattern[i + 1:end]
            neg = body.startswith("^")
            body = re.escape(body[1:] if neg else body).replace("\\-", "-")
            out.append(f"[{'^' if neg else ''}{body}]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z", re.IGNORECASE | re.DOTALL)


def _ordered(a: Any, op: str, b: Any) -> bool:
    if op == "=":
        return bool(a == b)
    if op == "<>":
        return bool(a != b)
    if op == "<":
        return bool(a < b)
    if op == "<=":
        return bool(a <= b)
    if op == ">":
        return bool(a > b)
    return bool(a >= b)


def _compare(v: Any, op: str, lit: Any) -> bool:
    if isinstance(v, bool):
        if isinstance(lit, str) and lit.strip().lower() in ("true", "false"):
            lit = lit.strip().lower() == "true"
        if not isinstance(lit, (bool, int)) or op not in ("=", "<>"):
            return False
        return _ordered(v, op, bool(lit))
    if isinstance(v, (int, float)):
        if isinstance(lit, str):
            try:
                lit = float(lit.strip())
            except ValueError:
                return False
        if isinstance(lit, bool) or not isinstance(lit, (int, float)):
            return False
        return _ordered(float(v), op, float(lit))
    if isinstance(v, pywbem.CIMInstanceName):
        if not isinstance(lit, str):
            return False
        try:
            other = wql.parse_object_path(lit)
        except pywbem.CIMError:
            return False
        same = same_path(v, other, partial=True)
        return same if op == "=" else (not same if op == "<>" else False)
    if isinstance(v, (str, pywbem.CIMDateTime)):
        text = str(v)
        lit_text = ("TRUE" if lit else "FALSE") if isinstance(lit, bool) else str(lit)
        return _ordered(text.casefold(), op, lit_text.casefold())
    return False


# ---------------------------------------------------------------------- ASSOCIATORS / REFERENCES
def _class_option(registry: Registry, namespace: str, opts: dict[str, Any],
                  key: str) -> str | None:
    name = opts.get(key)
    if name is None:
        return None
    try:
        return str(registry.get_class(namespace, str(name)).classname)
    except pywbem.CIMError:
        raise wql.bad_query(f"{key} names class {name}, which does not exist") from None


def resolve_target(registry: Registry, namespace: str,
                   path: pywbem.CIMInstanceName) -> list[pywbem.CIMInstanceName]:
    """The instance(s) a query path names; WMI clients may give only some of the keys."""
    try:
        return [registry.get_instance(namespace, path).path]
    except pywbem.CIMError as exc:
        if exc.status_code not in (pywbem.CIM_ERR_NOT_FOUND,):
            if exc.status_code == pywbem.CIM_ERR_INVALID_CLASS:
                raise wql.bad_query(f"class {path.classname} does not exist") from None
            raise
    found = [i.path for i in registry.enumerate_instances(namespace, path.classname)
             if same_path(i.path, path, partial=True)]
    if not found:
        raise pywbem.CIMError(pywbem.CIM_ERR_NOT_FOUND, f"object {path} does not exist")
    return found


def _has_qualifier(registry: Registry, namespace: str, classname: str, qual: str) -> bool:
    try:
        cls = registry.get_class(namespace, classname)
    except pywbem.CIMError:
        return False
    return any(q.lower() == qual.lower() for q in cls.qualifiers)


def _assoc(registry: Registry, namespace: str, q: wql.AssocQuery) -> list[Row]:
    opts = q.options
    if opts.get("classdefsonly") or opts.get("schemaonly"):
        raise pywbem.CIMError(pywbem.CIM_ERR_NOT_SUPPORTED,
                              "ClassDefsOnly and SchemaOnly queries are not supported")
    result_class = _class_option(registry, namespace, opts, "resultclass")
    role = opts.get("role")
    found: list[pywbem.CIMInstance] = []
    for target in resolve_target(registry, namespace, q.path):
        if q.kind == "references":
            found.extend(registry.references(namespace, target, result_class,
                                             str(role) if role else None))
            continue
        assoc_class = _class_option(registry, namespace, opts, "assocclass")
        assoc_classes: list[str | None] = [assoc_class]
        req_assoc = opts.get("requiredassocqualifier")
        if req_assoc:
            assoc_classes = [c.classname for c in registry.enumerate_classes(namespace, deep=True)
                             if _has_qualifier(registry, namespace, c.classname, str(req_assoc))
                             and (assoc_class is None or registry.namespace(namespace)
                                  .is_subclass(c.classname, assoc_class))]
        rrole = opts.get("resultrole")
        for ac in assoc_classes:
            found.extend(registry.associators(namespace, target, ac, result_class,
                                              str(role) if role else None,
                                              str(rrole) if rrole else None))
    req = opts.get("requiredqualifier")
    if req:
        found = [i for i in found if _has_qualifier(registry, namespace, i.classname, str(req))]
    rows: list[Row] = []
    seen: set[str] = set()
    for inst in found:
        key = str(inst.path)
        if key in seen:
            continue
        seen.add(key)
        keep = ({k.lower() for k in inst.path.keybindings} if opts.get("keysonly") else None)
        rows.append((inst, keep))
    return rows
