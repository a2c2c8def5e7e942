"""How a provider is written: one class per class family, each extrinsic method declared once.

A provider subclasses :class:`Provider` (or :class:`ServiceProvider`, which holds the
``ServiceContext``, or :class:`SingletonService` for a host's one service instance), names the
classes it serves in ``classnames`` and declares each method it implements with :func:`method`:
the MOF name, the least role that may call it, the IN parameters it reads and whether it answers
with a job. ``Registry.add_provider`` checks every declaration against the MOF and the
authorization table (``vsms.auth.policy``) when the service starts; ``invoke`` runs the declared
method (a ``VsmsError`` becomes its ReturnValue and ErrorDescription) and answers 32770 for a
method the class declares but the provider does not (CIM_ERR_NOT_SUPPORTED when the provider
declares no method at all).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeAlias, TypeVar

import pywbem

from vsms.auth.policy import Role
from vsms.cim import names
from vsms.jobs.context import Work
from vsms.jobs.manager import Reservation
from vsms.model.job import AffectedElement
from vsms.providers.common import (
    Params,
    Result,
    guarded,
    job_started,
    not_supported,
    same_path,
)
from vsms.providers.context import ServiceContext, caller

log = logging.getLogger(__name__)

CIMTarget: TypeAlias = "pywbem.CIMInstanceName | pywbem.CIMClassName"
P = TypeVar("P", bound="Provider")


@dataclass(frozen=True)
class MethodDecl(Generic[P]):
    """One extrinsic method of a provider."""

    name: str  # as the MOF spells it
    role: Role  # the least role that may call it (must agree with vsms.auth.policy)
    params: tuple[str, ...]  # the IN parameters it reads (must be declared IN in the MOF)
    job: bool  # answers 4096 + Job (the MOF must declare an OUT parameter Job)
    run: Callable[[P, CIMTarget, Params], Result]


def method(name: str, role: Role, *, params: tuple[str, ...] = (), job: bool = False
           ) -> Callable[[Callable[[P, CIMTarget, Params], Result]], MethodDecl[P]]:
    """Declare the function below as the provider's implementation of method ``name``."""

    def declare(fn: Callable[[P, CIMTarget, Params], Result]) -> MethodDecl[P]:
        return MethodDecl(name, role, params, job, fn)
    return declare


class Provider:
    """Instances (``enumerate``, ``get``, ``references_to``) and methods of ``classnames``."""

    classnames: tuple[str, ...] = ()
    #: lower-case method name -> declaration, collected from the class body (and its bases)
    methods: ClassVar[Mapping[str, MethodDecl[Any]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        found: dict[str, MethodDecl[Any]] = {}
        for base in reversed(cls.__mro__):  # mixins of methods combine
            found.update({d.name.lower(): d for d in vars(base).values()
                          if isinstance(d, MethodDecl)})
        cls.methods = found

    def enumerate(self, classname: str) -> Iterable[pywbem.CIMInstance]:
        """All instances of ``classname`` (one of ``classnames``), each with ``path`` set."""
        return []

    def get(self, path: pywbem.CIMInstanceName) -> pywbem.CIMInstance | None:
        """The instance at ``path``, or None; by default looked up in ``enumerate``."""
        return next((i for i in self.enumerate(path.classname)
                     if i.path is not None and same_path(i.path, path)), None)

    def references_to(self, classname: str, target: pywbem.CIMInstanceName
                      ) -> Iterable[pywbem.CIMInstance]:
        """Instances of association ``classname`` that may refer to ``target`` (a superset is
        fine: the registry filters); override it so References need not enumerate every VM."""
        return self.enumerate(classname)

    def invoke(self, target: CIMTarget, method: str, params: Params) -> Result:
        """Run a declared method (``params`` already checked against the MOF by the registry)."""
        if not self.methods:
            raise pywbem.CIMError(pywbem.CIM_ERR_NOT_SUPPORTED,
                                  f"class {target.classname} has no method provider")
        decl = self.methods.get(method.lower())
        if decl is None:
            log.info("%s.%s is not supported", target.classname, method)
            return not_supported(target.classname, method)
        run = functools.partial(decl.run, self)
        return guarded(run, f"{target.classname}.{decl.name}")(target, params)


class ServiceProvider(Provider):
    """A provider of the virtualization namespace, built on the ServiceContext."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def start_job(self, name: str, description: str, work: Work, *,
                  affected: Iterable[AffectedElement] = (), reservation: Reservation | None = None,
                  classname: str = names.CONCRETE_JOB, storage_job_type: int = 0,
                  cancellable: bool = True) -> Result:
        """Submit ``work`` as a job owned by the caller; 4096 + Job. The job engine releases
        ``reservation`` when the job ends (or if it cannot start)."""
        rec = self.ctx.jobs.submit(name=name, description=description, work=work,
                                   classname=classname, storage_job_type=storage_job_type,
                                   affected=affected, cancellable=cancellable,
                                   owner=caller.get(), reservation=reservation)
        return job_started(rec)


class SingletonService(ServiceProvider):
    """The host's one instance of a CIM_Service subclass (``classnames[0]``), started and OK."""

    service_name: ClassVar[str]  # the Name key ("vmms", "vhdsvc")
    caption: ClassVar[str]
    description: ClassVar[str]

    def path(self) -> pywbem.CIMInstanceName:
        cn = self.classnames[0]
        return pywbem.CIMInstanceName(cn, keybindings={
            "CreationClassName": cn, "Name": self.service_name,
            "SystemCreationClassName": names.COMPUTER_SYSTEM, "SystemName": self.ctx.hostname,
        }, namespace=names.NAMESPACE)

    def instance(self) -> pywbem.CIMInstance:
        u16 = pywbem.Uint16
        path = self.path()
        props = [pywbem.CIMProperty(k, v, type="string") for k, v in path.keybindings.items()]
        props += [
            pywbem.CIMProperty("Caption", self.caption, type="string"),
            pywbem.CIMProperty("ElementName", self.caption, type="string"),
            pywbem.CIMProperty("Description", self.description, type="string"),
            pywbem.CIMProperty("InstallDate", None, type="datetime"),
            pywbem.CIMProperty("OperationalStatus", [u16(2)], type="uint16"),  # OK
            pywbem.CIMProperty("StatusDescriptions", ["OK"], type="string"),
            pywbem.CIMProperty("Status", "OK", type="string"),
            pywbem.CIMProperty("HealthState", u16(5), type="uint16"),  # OK
            pywbem.CIMProperty("EnabledState", u16(2), type="uint16"),  # Enabled
            pywbem.CIMProperty("OtherEnabledState", None, type="string"),
            pywbem.CIMProperty("RequestedState", u16(12), type="uint16"),  # Not Applicable
            pywbem.CIMProperty("EnabledDefault", u16(2), type="uint16"),
            pywbem.CIMProperty("TimeOfLastStateChange", None, type="datetime"),
            pywbem.CIMProperty("PrimaryOwnerName", None, type="string"),
            pywbem.CIMProperty("PrimaryOwnerContact", None, type="string"),
            pywbem.CIMProperty("StartMode", "Automatic", type="string"),
            pywbem.CIMProperty("Started", True, type="boolean"),
        ]
        return pywbem.CIMInstance(self.classnames[0], properties=props, path=path)

    def enumerate(self, classname: str) -> Iterable[pywbem.CIMInstance]:
        return [self.instance()]


def association(classname: str, refs: Mapping[str, pywbem.CIMInstanceName],
                values: Mapping[str, Any] | None = None, *,
                ref_classes: Mapping[str, str] | None = None,
                namespace: str = names.NAMESPACE) -> pywbem.CIMInstance:
    """An association instance keyed by ``refs`` (REFERENCECLASS: ``ref_classes`` or the class
    of each reference; "" for none), with the other ``values`` (CIMProperty objects or typed
    values)."""
    path = pywbem.CIMInstanceName(classname, keybindings=dict(refs), namespace=namespace)
    inst = pywbem.CIMInstance(classname, path=path)
    for name, ref in refs.items():
        rc = (ref_classes or {}).get(name, ref.classname)
        inst.properties[name] = pywbem.CIMProperty(name, ref, type="reference",
                                                   reference_class=rc or None)
    for name, value in (values or {}).items():
        inst[name] = value
    return inst
