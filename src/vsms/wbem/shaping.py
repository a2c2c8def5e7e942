"""What a response shows of a class or an instance: the DSP0200 flags, applied.

* Classes: ``LocalOnly`` drops inherited properties and methods, ``PropertyList`` keeps only the
  named properties, ``IncludeQualifiers``/``IncludeClassOrigin`` are passed to the writer.
* Instances: ``PropertyList`` keeps the named properties; ``DeepInheritance=false`` keeps only
  the properties of the class named in the request; ``LocalOnly=true`` (deprecated in DSP0200,
  honoured when a client sends it; its absence counts as false) keeps the properties that class
  defines itself; ``IncludeClassOrigin`` writes CLASSORIGIN taken from the class definition.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import pywbem

from vsms.providers.registry import Registry
from vsms.wbem.encode import Frames


def _is_local(item: pywbem.CIMProperty | pywbem.CIMMethod, classname: str) -> bool:
    if item.propagated is not None:
        return not item.propagated
    return item.class_origin is None or item.class_origin.lower() == classname.lower()


def class_view(cls: pywbem.CIMClass, local_only: bool,
               property_list: list[str] | None) -> pywbem.CIMClass:
    """``cls`` as GetClass/EnumerateClasses return it (a copy when something is dropped)."""
    if not local_only and property_list is None:
        return cls
    out = cls.copy()
    wanted = None if property_list is None else {p.lower() for p in property_list}
    out.properties = {n: p for n, p in cls.properties.items()
                      if (wanted is None or n.lower() in wanted)
                      and (not local_only or _is_local(p, cls.classname))}
    if local_only:
        out.methods = {n: m for n, m in cls.methods.items() if _is_local(m, cls.classname)}
    return out


class InstanceShape:
    """Per request: which properties to write and which CLASSORIGIN, per instance class."""

    def __init__(self, registry: Registry, namespace: str, *,
                 property_list: list[str] | None = None, class_origin: bool = False,
                 local_only: bool = False, deep: bool = True,
                 requested: str | None = None, qualifiers: bool = False) -> None:
        self.registry = registry
        self.namespace = namespace
        self.wanted = None if property_list is None else {p.lower() for p in property_list}
        self.class_origin = class_origin
        self.local_only = local_only
        self.deep = deep
        self.requested = requested
        self.qualifiers = qualifiers
        self._cache: dict[str, tuple[Collection[str] | None, Mapping[str, str] | bool]] = {}
        self.frames: Frames = {}  # property tags for the writer, kept for this response

    def _cls(self, classname: str) -> pywbem.CIMClass | None:
        try:
            return self.registry.get_class(self.namespace, classname)
        except pywbem.CIMError:
            return None

    def of(self, classname: str) -> tuple[Collection[str] | None, Mapping[str, str] | bool]:
        """(keep, origins) for instances of ``classname``, as :func:`encode.instance` takes."""
        key = classname.lower()
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        keep: set[str] | None = None if self.wanted is None else set(self.wanted)
        base_name = self.requested or classname
        base = None
        if not self.deep or self.local_only:
            base = self._cls(base_name)
        if base is not None and not self.deep:
            names = {n.lower() for n in base.properties}
            keep = names if keep is None else keep & names
        if base is not None and self.local_only:
            local = {n.lower() for n, p in base.properties.items() if _is_local(p, base_name)}
            keep = local if keep is None else keep & local
        origins: Mapping[str, str] | bool = False
        if self.class_origin:
            cls = self._cls(classname)
            origins = ({n.lower(): p.class_origin for n, p in cls.properties.items()
                        if p.class_origin} if cls is not None else True)
        out = (keep, origins)
        self._cache[key] = out
        return out
