"""The registry: classes and providers per namespace, and the generic CIM operations on them.

The WBEM front end (and the Python API) talks only to :class:`Registry`. It raises
``pywbem.CIMError`` with DSP0200 status codes for intrinsic-operation failures; extrinsic methods
return their ReturnValue and never raise for a documented failure.

Providers state what they serve through ``classnames``; the registry checks what they return
(class names, key properties present) before it goes to a client.

Classes are stored resolved (``vsms.providers.classdefs``): each holds its inherited properties and
methods (``class_origin`` set, ``propagated`` true for inherited ones), so ``get_class`` answers
like a CIMOM's GetClass with LocalOnly=false and inherited methods can be invoked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import pywbem

from vsms.auth.policy import method_role
from vsms.providers.classdefs import derive_qualifiers, resolve_classes
from vsms.providers.common import same_path

if TYPE_CHECKING:
    from vsms.providers.base import MethodDecl

CIMTarget: TypeAlias = "pywbem.CIMInstanceName | pywbem.CIMClassName"
# an enumeration's answer: a list, or a tuple shared between calls (read only)
Instances: TypeAlias = "Sequence[pywbem.CIMInstance]"


class Provider(Protocol):
    """Serves the instances and methods of some classes (exact class names, no subclassing
    implied); ``vsms.providers.base.Provider`` is the one implementation to subclass."""

    @property
    def classnames(self) -> tuple[str, ...]: ...

    @property
    def methods(self) -> Mapping[str, MethodDecl[Any]]:
        """Declared methods, by lower-case name (``vsms.providers.base.method``)."""
        ...

    def enumerate(self, classname: str) -> Iterable[pywbem.CIMInstance]:
        """All instances of ``classname`` (one of ``classnames``), each with ``path`` set."""
        ...

    def get(self, path: pywbem.CIMInstanceName) -> pywbem.CIMInstance | None:
        """The instance at ``path`` (class already checked to be one of ours), or None."""
        ...

    def references_to(self, classname: str, target: pywbem.CIMInstanceName
                      ) -> Iterable[pywbem.CIMInstance]:
        """The instances of association ``classname`` that may refer to ``target`` (a superset
        is fine, the registry filters)."""
        ...

    def invoke(self, target: CIMTarget, method: str,
               params: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """Run an extrinsic method. ``params`` were checked against the class definition
        (names known, IN direction, values converted to the declared CIM types, case-folded to the
        declared names). Returns (ReturnValue, out parameters by declared name)."""
        ...


def _err(status: int, msg: str) -> pywbem.CIMError:
    return pywbem.CIMError(status, msg)


@dataclass
class Namespace:
    name: str
    classes: dict[str, pywbem.CIMClass]  # keyed by lower-case class name
    providers: dict[str, Provider] = field(default_factory=dict)  # keyed by lower-case class
    # qualifier declarations, keyed by lower-case name
    qualifiers: dict[str, pywbem.CIMQualifierDeclaration] = field(default_factory=dict)

    def cls(self, classname: str) -> pywbem.CIMClass:
        c = self.classes.get(classname.lower())
        if c is None:
            raise _err(pywbem.CIM_ERR_INVALID_CLASS,
                       f"class {classname} does not exist in {self.name}")
        return c

    def subclasses(self, classname: str | None, deep: bool = True) -> list[pywbem.CIMClass]:
        """Direct (or all, when deep) subclasses of classname; top-level classes for None."""
        base = classname.lower() if classname else None
        direct: dict[str | None, list[pywbem.CIMClass]] = {}
        for c in self.classes.values():
            direct.setdefault(c.superclass.lower() if c.superclass else None, []).append(c)
        out: list[pywbem.CIMClass] = []
        todo = list(direct.get(base, []))
        while todo:
            c = todo.pop(0)
            out.append(c)
            if deep:
                todo.extend(direct.get(c.classname.lower(), []))
        return out

    def is_subclass(self, classname: str, ancestor: str) -> bool:
        name: str | None = classname
        while name:
            if name.lower() == ancestor.lower():
                return True
            c = self.classes.get(name.lower())
            name = c.superclass if c is not None else None
        return False


class Registry:
    def __init__(self, host: str) -> None:
        self.host = host
        self._ns: dict[str, Namespace] = {}
        # (namespace, class) -> (the providers' shared answers, the enumeration made of them)
        self._shared: dict[tuple[str, str], tuple[tuple[Any, ...], Instances]] = {}

    # ------------------------------------------------------------------ set-up
    def add_namespace(self, name: str, classes: Iterable[pywbem.CIMClass],
                      qualifiers: Iterable[pywbem.CIMQualifierDeclaration] | None = None) -> None:
        """Serve ``classes`` in namespace ``name``. Classes are resolved against their superclasses
        (see the module docstring); without ``qualifiers`` the qualifier declarations are derived
        from the qualifiers the classes use."""
        resolved = resolve_classes(classes)
        decls = list(qualifiers) if qualifiers is not None else derive_qualifiers(resolved)
        self._ns[name.strip("/").lower()] = Namespace(
            name.strip("/"), {c.classname.lower(): c for c in resolved},
            qualifiers={q.name.lower(): q for q in decls})

    def add_provider(self, namespace: str, provider: Provider) -> None:
        """Serve ``provider.classnames`` (each declared in the namespace) with ``provider``.
        Every declared method must exist in each class with the declared IN parameters (and an
        OUT parameter Job when it runs as a job), and need the role ``vsms.auth.policy`` gives
        it; a mismatch is a programming error (ValueError at start-up)."""
        ns = self.namespace(namespace)
        for cn in provider.classnames:
            cls = ns.cls(cn)
            for decl in provider.methods.values():
                _check_declaration(cls, decl)
            ns.providers[cn.lower()] = provider

    # ------------------------------------------------------------------ lookup
    def namespaces(self) -> list[str]:
        return [ns.name for ns in self._ns.values()]

    def namespace(self, name: str) -> Namespace:
        ns = self._ns.get(name.strip("/").lower())
        if ns is None:
            raise _err(pywbem.CIM_ERR_INVALID_NAMESPACE, f"namespace {name} does not exist")
        return ns

    def get_class(self, namespace: str, classname: str) -> pywbem.CIMClass:
        return self.namespace(namespace).cls(classname)

    def enumerate_classes(self, namespace: str, classname: str | None = None,
                          deep: bool = False) -> list[pywbem.CIMClass]:
        ns = self.namespace(namespace)
        if classname:
            ns.cls(classname)
        return ns.subclasses(classname, deep)

    def qualifier_declarations(self, namespace: str) -> list[pywbem.CIMQualifierDeclaration]:
        return list(self.namespace(namespace).qualifiers.values())

    def get_qualifier(self, namespace: str, name: str) -> pywbem.CIMQualifierDeclaration:
        q = self.namespace(namespace).qualifiers.get(name.lower())
        if q is None:
            raise _err(pywbem.CIM_ERR_NOT_FOUND,
                       f"qualifier {name} is not declared in namespace {namespace}")
        return q

    # ------------------------------------------------------------------ instances
    def _fix_path(self, ns: Namespace, inst: pywbem.CIMInstance) -> pywbem.CIMInstance:
        if inst.path is None:
            raise _err(pywbem.CIM_ERR_FAILED,
                       f"provider returned a {inst.classname} without a path")
        inst.path.namespace = ns.name
        inst.path.host = self.host
        return inst

    def enumerate_instances(self, namespace: str, classname: str) -> Instances:
        """Instances of classname and of all its subclasses. When every provider involved
        answers with a tuple (its shared, read-only answer, which it gives again while nothing
        it is made from changed: Msvm_ComputerSystem), the answer is a tuple too, and the very
        same one while those are: callers read it and never change it."""
        ns = self.namespace(namespace)
        base = ns.cls(classname)
        found: list[Iterable[pywbem.CIMInstance]] = []
        for c in [base, *ns.subclasses(base.classname, deep=True)]:
            prov = ns.providers.get(c.classname.lower())
            if prov is not None:
                found.append(prov.enumerate(c.classname))
        if found and all(type(f) is tuple for f in found):
            key = (ns.name.lower(), base.classname.lower())
            last = self._shared.get(key)
            if last is not None and len(last[0]) == len(found) and \
                    all(a is b for a, b in zip(last[0], found, strict=True)):
                return last[1]
            shared = tuple(self._fix_path(ns, i) for f in found for i in f)
            self._shared[key] = (tuple(found), shared)
            return shared
        return [self._fix_path(ns, i) for f in found for i in f]

    def get_instance(self, namespace: str, path: pywbem.CIMInstanceName) -> pywbem.CIMInstance:
        ns = self.namespace(namespace)
        cls = ns.cls(path.classname)
        prov = ns.providers.get(cls.classname.lower())
        inst = prov.get(path) if prov is not None else None
        if inst is None:
            raise _err(pywbem.CIM_ERR_NOT_FOUND, f"instance {path} does not exist")
        return self._fix_path(ns, inst)

    # ------------------------------------------------------------------ associations
    def _association_classes(self, ns: Namespace, assoc_class: str | None) -> list[pywbem.CIMClass]:
        out = []
        for c in ns.classes.values():
            if "association" not in {q.lower() for q in c.qualifiers}:
                continue
            if assoc_class and not ns.is_subclass(c.classname, assoc_class):
                continue
            out.append(c)
        return out

    def references(self, namespace: str, target: pywbem.CIMInstanceName,
                   result_class: str | None = None, role: str | None = None
                   ) -> list[pywbem.CIMInstance]:
        """Association instances (of result_class) that refer to target (in role)."""
        ns = self.namespace(namespace)
        out = []
        for ac in self._association_classes(ns, result_class):
            prov = ns.providers.get(ac.classname.lower())
            if prov is None:
                continue
            for inst in prov.references_to(ac.classname, target):
                for pname, prop in inst.properties.items():
                    if prop.type != "reference" or prop.value is None:
                        continue
                    if role and pname.lower() != role.lower():
                        continue
                    if same_path(prop.value, target):
                        out.append(self._fix_path(ns, inst))
                        break
        return out

    def associators(self, namespace: str, target: pywbem.CIMInstanceName,
                    assoc_class: str | None = None, result_class: str | None = None,
                    role: str | None = None, result_role: str | None = None
                    ) -> list[pywbem.CIMInstance]:
        ns = self.namespace(namespace)
        seen: list[pywbem.CIMInstanceName] = []
        out: list[pywbem.CIMInstance] = []
        for assoc in self.references(namespace, target, assoc_class, role):
            for pname, prop in assoc.properties.items():
                ref = prop.value
                if prop.type != "reference" or ref is None or same_path(ref, target):
                    continue
                if result_role and pname.lower() != result_role.lower():
                    continue
                if result_class and not ns.is_subclass(ref.classname, result_class):
                    continue
                if any(same_path(ref, s) for s in seen):
                    continue
                seen.append(ref)
                try:
                    out.append(self.get_instance(namespace, ref))
                except pywbem.CIMError as exc:
                    if exc.status_code != pywbem.CIM_ERR_NOT_FOUND:
                        raise
        return out

    # ------------------------------------------------------------------ methods
    def invoke_method(self, namespace: str, target: CIMTarget, method: str,
                      params: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        ns = self.namespace(namespace)
        cls = ns.cls(target.classname)
        meth = next((m for n, m in cls.methods.items() if n.lower() == method.lower()), None)
        if meth is None:
            raise _err(pywbem.CIM_ERR_METHOD_NOT_FOUND,
                       f"method {method} does not exist in class {cls.classname}")
        prov = ns.providers.get(cls.classname.lower())
        if prov is None:
            raise _err(pywbem.CIM_ERR_NOT_SUPPORTED,
                       f"class {cls.classname} has no method provider")
        if isinstance(target, pywbem.CIMInstanceName):
            self.get_instance(namespace, target)  # CIM_ERR_NOT_FOUND if it does not exist
        checked = self._check_params(cls.classname, meth, params)
        return prov.invoke(target, meth.name, checked)

    @staticmethod
    def _check_params(classname: str, meth: pywbem.CIMMethod,
                      params: Mapping[str, Any]) -> dict[str, Any]:
        declared = {n.lower(): p for n, p in meth.parameters.items()}
        out: dict[str, Any] = {}
        for name, value in params.items():
            p = declared.get(name.lower())
            if p is None:
                raise _err(pywbem.CIM_ERR_INVALID_PARAMETER,
                           f"method {classname}.{meth.name} has no parameter {name}")
            if not _is_input({q.lower(): v.value for q, v in p.qualifiers.items()}):
                raise _err(pywbem.CIM_ERR_INVALID_PARAMETER,
                           f"parameter {p.name} of {classname}.{meth.name} is not an input")
            out[p.name] = value
        return out



def _check_declaration(cls: pywbem.CIMClass, decl: MethodDecl[Any]) -> None:
    where = f"{cls.classname}.{decl.name}"
    meth = cls.methods.get(decl.name)
    if meth is None:
        raise ValueError(f"{where} is declared by a provider but not in the MOF")
    declared = {n: {q.lower(): v.value for q, v in p.qualifiers.items()}
                for n, p in meth.parameters.items()}
    for name in decl.params:
        if name not in declared or not _is_input(declared[name]):
            raise ValueError(f"{where}: {name} is not an IN parameter of the MOF")
    if decl.job and declared.get("Job", {}).get("out") is not True:
        raise ValueError(f"{where} is declared as a job but the MOF has no OUT parameter Job")
    if method_role(cls.classname, decl.name) != decl.role:
        raise ValueError(f"{where} is declared for the {decl.role.label} role but "
                         f"vsms.auth.policy gives it to the "
                         f"{method_role(cls.classname, decl.name).label} role")


def _is_input(quals: Mapping[str, Any]) -> bool:
    """IN defaults to true, unless the parameter is declared OUT only."""
    return quals.get("in") is not False and ("out" not in quals or "in" in quals)
