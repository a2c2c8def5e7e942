"""Compile our MOF into pywbem class objects, once per process.

Each namespace has one top-level MOF file in ``vsms/cim/mof``, named after the last segment
of the namespace (``root/virtualization`` -> ``virtualization.mof``, ``interop`` ->
``interop.mof``); it ``#pragma include``s what it needs (``qualifiers.mof``,
``cim_base.mof``, ...). The compiler writes into a throw-away pywbem_mock repository, which
resolves inheritance: every returned class carries its inherited properties and methods
(``propagated`` set, ``class_origin`` naming the declaring class) and the qualifiers its
superclasses pass down.

Compiling ``root/virtualization`` takes 0.7 s on an idle development machine (3-5 s under
load), so the result is kept in a module-level cache keyed by the namespace, the MOF directory
and the contents of every ``.mof`` file in it (a changed file means a new compile; a failed
compile is not cached). The cached objects are never handed out to be changed:
:func:`load_schema` returns deep copies (the caller owns them), :func:`shared_classes` a
read-only mapping of the cached classes themselves, which its callers must only read (see
docs/contracts.md).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import pywbem
import pywbem_mock  # type: ignore[import-untyped]

from vsms.cim.names import NAMESPACE
from vsms.errors import InvalidParameter, OperationFailed


@dataclass(frozen=True)
class CompiledSchema:
    """What one namespace's MOF defines."""

    namespace: str
    classes: list[pywbem.CIMClass]  # superclasses before subclasses (compile order)
    qualifiers: list[pywbem.CIMQualifierDeclaration]


@dataclass(frozen=True)
class _Cached:
    schema: CompiledSchema  # shared: never handed out itself, only copies or read-only views
    by_name: Mapping[str, pywbem.CIMClass]  # lower-case class name -> shared class


_cache: dict[tuple[str, str, str], _Cached] = {}
_lock = threading.Lock()


def mof_dir() -> Path:
    """The directory holding our MOF files."""
    return Path(__file__).resolve().parent / "mof"


def mof_file(namespace: str) -> Path:
    """The top-level MOF file of ``namespace``; InvalidParameter if there is none."""
    name = namespace.strip("/").rsplit("/", 1)[-1]
    path = mof_dir() / f"{name}.mof"
    if not name or not path.is_file():
        raise InvalidParameter(
            f"no MOF for namespace {namespace!r}: expected {path}; add that file (it may "
            f"#pragma include qualifiers.mof and cim_base.mof) or use another namespace")
    return path


def _digest(directory: Path) -> str:
    """A digest of the names and contents of every MOF file in ``directory`` (what a compile
    may include)."""
    h = hashlib.sha256()
    for path in sorted(directory.glob("*.mof")):
        data = path.read_bytes()
        h.update(f"{path.name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def _compile(path: Path, ns: str) -> CompiledSchema:
    conn = pywbem_mock.FakedWBEMConnection(default_namespace=ns)
    try:
        conn.compile_mof_file(str(path), namespace=ns)
    except pywbem.MOFCompileError as exc:
        raise OperationFailed(
            f"the MOF of namespace {ns} does not compile ({path}): {exc.get_err_msg()}; "
            f"fix the MOF file named in the message") from exc
    except OSError as exc:
        raise OperationFailed(
            f"cannot read the MOF of namespace {ns} ({path}): {exc}; check that the package "
            f"data was installed") from exc
    repo = conn.cimrepository
    classes = list(repo.get_class_store(ns).iter_values(copy=False))
    qualifiers = list(repo.get_qualifier_store(ns).iter_values(copy=False))
    return CompiledSchema(ns, classes, qualifiers)


def _cached(namespace: str) -> _Cached:
    path = mof_file(namespace)
    ns = namespace.strip("/")
    try:
        key = (ns, str(path.parent), _digest(path.parent))
    except OSError as exc:
        raise OperationFailed(
            f"cannot read the MOF of namespace {ns} ({path.parent}): {exc}; check that the "
            f"package data was installed") from exc
    with _lock:  # one compile per key, even when several threads ask at once
        hit = _cache.get(key)
        if hit is None:
            schema = _compile(path, ns)
            hit = _Cached(schema, MappingProxyType(
                {c.classname.lower(): c for c in schema.classes}))
            _cache[key] = hit
        return hit


def _copy_qualifiers(quals: Mapping[str, pywbem.CIMQualifier]
                     ) -> dict[str, pywbem.CIMQualifier]:
    return {n: q.copy() for n, q in quals.items()}


def _copy_property(p: pywbem.CIMProperty | pywbem.CIMParameter
                   ) -> pywbem.CIMProperty | pywbem.CIMParameter:
    out = p.copy()  # pywbem's copy() shares the qualifier objects: copy those too
    out.qualifiers = _copy_qualifiers(p.qualifiers)
    return out


def copy_class(cls: pywbem.CIMClass) -> pywbem.CIMClass:
    """A deep copy of ``cls``: no property, method, parameter or qualifier object shared
    (``CIMClass.copy()`` shares them; ``copy.deepcopy`` is twice as slow)."""
    out = cls.copy()
    out.properties = {n: _copy_property(p) for n, p in cls.properties.items()}
    methods = {}
    for n, m in cls.methods.items():
        m2 = m.copy()
        m2.parameters = {pn: _copy_property(par) for pn, par in m.parameters.items()}
        m2.qualifiers = _copy_qualifiers(m.qualifiers)
        methods[n] = m2
    out.methods = methods
    out.qualifiers = _copy_qualifiers(cls.qualifiers)
    return out


def load_schema(namespace: str = NAMESPACE) -> CompiledSchema:
    """The classes and qualifier declarations of ``namespace``'s MOF, as copies the caller owns
    (compiled once per process and MOF contents; each call copies, ~60 ms for
    ``root/virtualization``).

    Raises InvalidParameter for a namespace without a MOF file and OperationFailed (naming the
    file, line and problem) when the MOF does not compile.
    """
    schema = _cached(namespace).schema
    return CompiledSchema(schema.namespace, [copy_class(c) for c in schema.classes],
                          [q.copy() for q in schema.qualifiers])


def load_classes(namespace: str = NAMESPACE) -> list[pywbem.CIMClass]:
    """The resolved classes of ``namespace``, superclasses first (see :func:`load_schema`)."""
    return load_schema(namespace).classes


def shared_classes(namespace: str = NAMESPACE) -> Mapping[str, pywbem.CIMClass]:
    """The compiled classes of ``namespace`` keyed by lower-case class name, without copying:
    a read-only mapping of the cache's own objects, shared by every caller in the process.
    Read them only (build instances from them); a caller that needs to change a class takes
    :func:`load_schema`'s copies. Errors as :func:`load_schema`."""
    return _cached(namespace).by_name


def changed_in_cache() -> list[str]:
    """The namespaces whose cached classes or qualifier declarations no longer equal a fresh
    compile of their (unchanged) MOF: a caller broke the read-only contract. A check for the
    test suite; entries whose MOF files changed or went away since are skipped."""
    with _lock:
        cached = list(_cache.items())
    changed = []
    for (ns, directory, digest), hit in cached:
        try:
            if _digest(Path(directory)) != digest:
                continue
        except OSError:
            continue
        fresh = _compile(Path(directory) / f"{ns.rsplit('/', 1)[-1]}.mof", ns)
        if hit.schema.classes != fresh.classes or hit.schema.qualifiers != fresh.qualifiers \
                or dict(hit.by_name) != {c.classname.lower(): c for c in hit.schema.classes}:
            changed.append(ns)
    return changed
