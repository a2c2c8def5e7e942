"""What a WS-Management request addresses: the namespace and class of its resource URI, and the
instance its selectors pick (MS-WSMV §3.1.4.1.1–2).

Selector names and values are case-insensitive; ``__cimnamespace`` names the namespace (required
meaning for the DMTF URI form, checked against the URI for the Microsoft form). Selectors that do
not name every key (a singleton service picked by its class names only, as WMI clients do) are
matched against the class's instances: exactly one must match.
"""

from __future__ import annotations

from typing import Any

import pywbem

from vsms.providers.registry import Registry
from vsms.wbem.decode import convert_scalar
from vsms.wbem.xmltree import Node
from vsms.wsman import names as n
from vsms.wsman import soap
from vsms.wsman.soap import Fault, q


def unreachable(why: str, namespace_missing: bool = False) -> Fault:
    return Fault("a:DestinationUnreachable", why, soap.WSMAN_INVALID_RESOURCE_URI,
                 soap.WSMAN_INVALID_RESOURCE_URI if namespace_missing else
                 soap.WBEM_E_INVALID_CLASS,
                 pywbem.CIM_ERR_INVALID_NAMESPACE if namespace_missing else
                 pywbem.CIM_ERR_INVALID_CLASS)


def bad_selectors(why: str) -> Fault:
    return Fault("w:InvalidSelectors", why, soap.WSMAN_INVALID_SELECTORS,
                 soap.WBEM_E_INVALID_PARAMETER, pywbem.CIM_ERR_INVALID_PARAMETER)


def resolve(registry: Registry, uri: str | None, selectors: dict[str, Node],
            wildcard: bool = False) -> tuple[str, pywbem.CIMClass | None]:
    """(namespace as served, class) of a resource URI; class None for ``*`` (``wildcard``
    allowed: a WQL query over the namespace)."""
    if not uri:
        raise Fault("a:DestinationUnreachable", "the request has no wsman:ResourceURI header; "
                    "send the class's resource URI, e.g. " + n.class_uri(
                        "root/virtualization", "Msvm_ComputerSystem"),
                    soap.WSMAN_INVALID_RESOURCE_URI)
    res = n.resource(uri)
    if res is None:
        raise unreachable(f"resource URI {uri} is not served here: use "
                          f"{n.WMI_PREFIX}<namespace>/<class> or {n.DMTF_PREFIX}<class>")
    given = next((s.text.strip() for k, s in selectors.items()
                  if k.lower() == n.CIMNAMESPACE), None)
    ns_name = res.namespace if res.namespace is not None else given
    if ns_name is None:
        ns_name = "root/virtualization" if res.classname.lower().startswith("msvm_") \
            else "root/cimv2"
    elif given is not None and given.strip("/").lower() != ns_name.strip("/").lower():
        raise bad_selectors(f"selector __cimnamespace {given!r} contradicts the namespace "
                            f"{ns_name} of the resource URI")
    try:
        ns = registry.namespace(ns_name)
    except pywbem.CIMError:
        raise unreachable(f"namespace {ns_name} does not exist (invalid namespace); this "
                          f"server serves {', '.join(registry.namespaces())}",
                          namespace_missing=True) from None
    if res.classname == "*":
        if not wildcard:
            raise unreachable(f"resource URI {uri} names no class; only an Enumerate with a "
                              f"WQL filter may use '*'")
        return ns.name, None
    cls = ns.classes.get(res.classname.lower())
    if cls is None or (res.dmtf and not res.classname.lower().startswith("cim_")):
        raise unreachable(f"class {res.classname} does not exist in namespace {ns.name}")
    return ns.name, cls


def _typed(cls: pywbem.CIMClass, prop: str, node: Node) -> Any:
    decl = cls.properties[prop]
    if decl.type == "reference":
        ref = next((k for k in node.kids if k.name == q(n.WSA, "EndpointReference")), None)
        if ref is None:
            raise bad_selectors(f"selector {prop} must hold an a:EndpointReference")
        return epr_path(ref)
    try:
        return convert_scalar(node.text.strip(), decl.type)
    except ValueError as exc:
        raise bad_selectors(f"selector {prop}: {exc}") from None


def keys_of(cls: pywbem.CIMClass) -> list[str]:
    return [p.name for p in cls.properties.values()
            if any(k.lower() == "key" and v.value for k, v in p.qualifiers.items())]


def instance_path(registry: Registry, namespace: str, cls: pywbem.CIMClass,
                  selectors: dict[str, Node]) -> pywbem.CIMInstanceName:
    """The path of the one instance the selectors pick (DestinationUnreachable when none)."""
    keys = {k.lower(): k for k in keys_of(cls)}
    given: dict[str, Any] = {}
    for name, node in selectors.items():
        if name.lower() == n.CIMNAMESPACE:
            continue
        key = keys.get(name.lower())
        if key is None:
            raise bad_selectors(f"{name} is not a key of {cls.classname} (its keys: "
                                f"{', '.join(keys.values()) or 'none'})")
        given[key] = _typed(cls, key, node)
    if not given:
        raise bad_selectors(f"no selectors: name the {cls.classname} by its keys "
                            f"({', '.join(keys.values())})")
    path = pywbem.CIMInstanceName(cls.classname, given, namespace=namespace)
    if len(given) == len(keys):
        try:
            return registry.get_instance(namespace, path).path
        except pywbem.CIMError as exc:
            if exc.status_code != pywbem.CIM_ERR_NOT_FOUND:
                raise
    found = [i.path for i in registry.enumerate_instances(namespace, cls.classname)
             if all(_same(i.path.keybindings.get(k), v) for k, v in given.items())]
    if len(found) > 1:
        raise bad_selectors(f"the selectors match {len(found)} instances of {cls.classname}; "
                            f"give every key ({', '.join(keys.values())})")
    if not found:
        raise pywbem.CIMError(pywbem.CIM_ERR_NOT_FOUND,
                              f"no {cls.classname} in {namespace} has "
                              + ", ".join(f"{k}={v}" for k, v in given.items()))
    return found[0]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    if isinstance(a, pywbem.CIMInstanceName) and isinstance(b, pywbem.CIMInstanceName):
        return a.classname.lower() == b.classname.lower() and all(
            _same(a.keybindings.get(k), v) for k, v in b.keybindings.items())
    return bool(a == b)


def epr_path(node: Node, default_ns: str | None = None) -> pywbem.CIMInstanceName:
    """An endpoint reference (its Address/ReferenceParameters, or a node holding them) as a
    path; the namespace from ``__cimnamespace`` or the resource URI."""
    params = next((k for k in node.kids if k.name == q(n.WSA, "ReferenceParameters")), node)
    uri = next((k.text.strip() for k in params.kids if k.name == q(n.WSMAN, "ResourceURI")),
               None)
    sset = next((k for k in params.kids if k.name == q(n.WSMAN, "SelectorSet")), None)
    res = n.resource(uri) if uri else None
    if res is None or res.classname == "*":
        raise Fault("w:InvalidParameter", f"an endpoint reference names resource URI {uri!r}, "
                    f"not a class", soap.WSMAN_INTERNAL, soap.WBEM_E_INVALID_PARAMETER,
                    pywbem.CIM_ERR_INVALID_PARAMETER)
    keys: dict[str, Any] = {}
    ns = res.namespace or default_ns
    for s in sset.kids if sset is not None else []:
        name = s.attr("Name") or ""
        if name.lower() == n.CIMNAMESPACE:
            ns = s.text.strip()
            continue
        inner = next((k for k in s.kids if k.name == q(n.WSA, "EndpointReference")), None)
        keys[name] = epr_path(inner, ns) if inner is not None else s.text.strip()
    return pywbem.CIMInstanceName(res.classname, keys, namespace=ns)
