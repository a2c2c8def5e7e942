"""Compile our MOF into pywbem class objects.

Each namespace has one top-level MOF file in ``vsms/cim/mof``, named after the last segment
of the namespace (``root/virtualization`` -> ``virtualization.mof``, ``interop`` ->
``interop.mof``); it ``#pragma include``s what it needs (``qualifiers.mof``,
``cim_base.mof``, ...). The compiler writes into a throw-away pywbem_mock repository, which
resolves inheritance: every returned class carries its inherited properties and methods
(``propagated`` set, ``class_origin`` naming the declaring class) and the qualifiers its
superclasses pass down.

Nothing is cached here; the caller compiles once per process and keeps the result (about
0.3 s for ``root/virtualization`` on the development machine).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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


def load_schema(namespace: str = NAMESPACE) -> CompiledSchema:
    """Compile the MOF of ``namespace`` and return its classes and qualifier declarations.

    Raises InvalidParameter for a namespace without a MOF file and OperationFailed (naming the
    file, line and problem) when the MOF does not compile.
    """
    path = mof_file(namespace)
    ns = namespace.strip("/")
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


def load_classes(namespace: str = NAMESPACE) -> list[pywbem.CIMClass]:
    """The resolved classes of ``namespace``, superclasses first (see :func:`load_schema`)."""
    return load_schema(namespace).classes
