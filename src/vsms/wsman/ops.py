"""WS-Transfer Get and WS-Enumeration Enumerate / Pull / Release (MS-WSMV §3.1.4.1, DSP0226
§8–9, DSP0227), on the registry as the caller sees it.

Enumerate takes a snapshot of its result into the shared context store
(:class:`vsms.wbem.contexts.EnumerationContexts`, bounded per user, expiring when idle) and
renders items as they are pulled; with ``wsman:OptimizeEnumeration`` the first
``wsman:MaxElements`` (default 1) come in the EnumerateResponse. ``wsman:EnumerationMode``
EnumerateEPR gives endpoint references, EnumerateObjectAndEPR ``wsman:Item`` pairs. Filters:
WQL (one implementation with CIM-XML ExecQuery: :mod:`vsms.wbem.query`), the DMTF selector filter
and the DMTF association filter (AssociatedInstances / AssociationInstances).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

import pywbem

from vsms.providers.registry import Registry
from vsms.wbem import query
from vsms.wbem.contexts import ContextLimit, EnumerationContexts, UnknownContext
from vsms.wbem.rendered import Rendered
from vsms.wbem.xmltree import Node
from vsms.wsman import encode, soap
from vsms.wsman import names as n
from vsms.wsman.soap import Fault, Request, q
from vsms.wsman.target import epr_path, find_path, instance_path, keys_of, resolve

Row = tuple[pywbem.CIMInstance, Collection[str] | None]  # an instance, the properties to write
# what an enumeration renders: Rows, or instances (all their properties) as the registry gave
# them — a tuple the provider shares between calls stays that very tuple (see BATCHES)
Rows = Sequence[Any]
# WS-Man contexts are kept under one name, not the CIM namespace: a Pull names the resource URI
# of its Enumerate, which need not name a namespace (the association filter's
# http://schemas.dmtf.org/wbem/wscim/1/*); the owner check is the store's
CONTEXTS = "wsman"
_EMPTY = object()  # the one item of an enumeration with no result (its Pull ends it)
MODES = {"enumerateepr": "epr", "enumerateobjectandepr": "objepr"}
# the text of whole first batches made of a shared answer (a tuple the registry gives again
# while nothing changed: Msvm_ComputerSystem), kept as the instances' texts are; few live at
# once (one per class and namespace served that way), so the sweep keeps the table small
BATCHES: Rendered[bytes] = Rendered(floor=4)


def get(registry: Registry, req: Request) -> str:
    ns, cls = resolve(registry, req.resource_uri, req.selectors)
    assert cls is not None
    path = instance_path(registry, ns, cls, req.selectors)
    inst = registry.get_instance(ns, path)
    return encode.write_instance(inst, ns, registry.get_class(ns, inst.classname))


def _child(node: Node | None, ns: str, local: str) -> Node | None:
    if node is None:
        return None
    return next((k for k in node.kids if k.name == q(ns, local)), None)


def _count(node: Node | None, what: str, default: int) -> int:
    if node is None:
        return default
    try:
        value = int(node.text.strip())
    except ValueError:
        value = 0
    if value < 1:
        raise Fault("w:InvalidParameter",
                    f"{what} must be a whole number of at least 1, not {node.text.strip()!r}",
                    soap.WSMAN_INTERNAL, soap.WBEM_E_INVALID_PARAMETER,
                    pywbem.CIM_ERR_INVALID_PARAMETER)
    return value


def _filter_fault(why: str) -> Fault:
    return Fault("w:CannotProcessFilter", why, soap.WSMAN_CANNOT_PROCESS_FILTER,
                 soap.WBEM_E_INVALID_QUERY, pywbem.CIM_ERR_INVALID_QUERY)


def _rows(registry: Registry, req: Request, enum: Node) -> tuple[str, Rows, str]:
    """(namespace, rows, the intrinsic operation it amounts to) of an Enumerate."""
    filt = _child(enum, n.WSMAN, "Filter")
    if filt is None:
        ns, cls = resolve(registry, req.resource_uri, req.selectors)
        assert cls is not None
        return ns, registry.enumerate_instances(ns, cls.classname), "EnumerateInstances"
    dialect = (filt.attr("Dialect") or n.WQL).strip()
    if dialect.lower() == n.WQL.lower():
        ns, _ = resolve(registry, req.resource_uri, req.selectors, wildcard=True)
        text = filt.text.strip()
        if not text:
            raise _filter_fault("the WQL filter is empty; send a query such as "
                                "SELECT * FROM Msvm_ComputerSystem")
        return ns, query.run(registry, ns, text), "ExecQuery"
    if dialect == n.SELECTOR_FILTER:
        ns, cls = resolve(registry, req.resource_uri, req.selectors)
        assert cls is not None
        sset = _child(filt, n.WSMAN, "SelectorSet")
        sels = {s.attr("Name") or "": s for s in (sset.kids if sset is not None else [])}
        if not sels:
            raise _filter_fault("the selector filter holds no wsman:SelectorSet/Selector")
        try:
            path = instance_path(registry, ns, cls, sels)
        except pywbem.CIMError as exc:
            if exc.status_code == pywbem.CIM_ERR_NOT_FOUND:
                return ns, [], "EnumerateInstances"
            raise
        return ns, [(registry.get_instance(ns, path), None)], "EnumerateInstances"
    if dialect == n.ASSOCIATION_FILTER:
        return _associations(registry, req, filt)
    raise _filter_fault(f"filter dialect {dialect} is not supported: use {n.WQL}, "
                        f"{n.SELECTOR_FILTER} or {n.ASSOCIATION_FILTER}")


def _associations(registry: Registry, req: Request, filt: Node) -> tuple[str, list[Row], str]:
    spec = _child(filt, n.CIMBINDING, "AssociatedInstances")
    refs = spec is None
    if spec is None:
        spec = _child(filt, n.CIMBINDING, "AssociationInstances")
    if spec is None:
        raise _filter_fault("the association filter needs b:AssociatedInstances or "
                            "b:AssociationInstances (b = " + n.CIMBINDING + ")")
    obj = _child(spec, n.CIMBINDING, "Object")
    if obj is None:
        raise _filter_fault("the association filter names no b:Object (an endpoint reference)")
    target = epr_path(obj)
    ns, cls = resolve(registry, n.class_uri(target.namespace or "root/virtualization",
                                            target.classname), {})
    assert cls is not None
    target.namespace = ns

    def text(local: str) -> str | None:
        node = _child(spec, n.CIMBINDING, local)
        return node.text.strip() or None if node is not None else None

    keys = {k.lower(): k for k in keys_of(cls)}
    unknown = [k for k in target.keybindings if k.lower() not in keys]
    if unknown:
        raise _filter_fault(f"the association filter's object names {', '.join(unknown)}, "
                            f"not keys of {cls.classname}")
    target = find_path(registry, ns, cls, {keys[k.lower()]: v
                                           for k, v in target.keybindings.items()})
    if refs:
        found = registry.references(ns, target, text("ResultClassName"), text("Role"))
        return ns, [(i, None) for i in found], "References"
    found = registry.associators(ns, target, text("AssociationClassName"),
                                 text("ResultClassName"), text("Role"), text("ResultRole"))
    return ns, [(i, None) for i in found], "Associators"


def renderer(registry: Registry, namespace: str, mode: str) -> Callable[[Any], str]:
    classes: dict[str, pywbem.CIMClass | None] = {}

    def cls_of(name: str) -> pywbem.CIMClass | None:
        low = name.lower()
        if low not in classes:
            try:
                classes[low] = registry.get_class(namespace, name)
            except pywbem.CIMError:
                classes[low] = None
        return classes[low]

    def render(row: Any) -> str:
        if row is _EMPTY:
            return ""
        inst, keep = row if type(row) is tuple else (row, None)
        if mode == "epr":
            return f"{encode.EPR_OPEN}{encode.epr(inst.path, namespace)}</a:EndpointReference>"
        body = encode.instance(inst, namespace, cls_of(inst.classname), keep)
        if mode == "objepr":
            return (f"<w:Item>{body}{encode.EPR_OPEN}{encode.epr(inst.path, namespace)}"
                    f"</a:EndpointReference></w:Item>")
        return body
    return render


def enumerate_(registry: Registry, contexts: EnumerationContexts, req: Request,
               owner: str | None, started: float | None = None) -> tuple[str, soap.Content]:
    """(the intrinsic operation it amounts to, EnumerateResponse content); ``started``
    (time.monotonic()) with the request's OperationTimeout: TimedOut before a context opens."""
    enum = req.body
    assert enum is not None
    mode_node = _child(enum, n.WSMAN, "EnumerationMode")
    mode = "obj"
    if mode_node is not None:
        mode = MODES.get(mode_node.text.strip().lower(), "")
        if not mode:
            raise Fault("w:UnsupportedFeature", f"wsman:EnumerationMode "
                        f"{mode_node.text.strip()!r} is not supported: use EnumerateEPR or "
                        f"EnumerateObjectAndEPR", soap.WSMAN_INTERNAL, soap.WBEM_E_NOT_SUPPORTED,
                        pywbem.CIM_ERR_NOT_SUPPORTED)
    ns, rows, operation = _rows(registry, req, enum)
    if started is not None and req.timeout is not None and \
            time.monotonic() - started > req.timeout:
        raise soap.timed_out("Enumerate", req.timeout)
    optimized = _child(enum, n.WSMAN, "OptimizeEnumeration") is not None
    first = _count(_child(enum, n.WSMAN, "MaxElements"), "wsman:MaxElements", 1) \
        if optimized else 0
    render = renderer(registry, ns, mode)
    if optimized and type(rows) is tuple and rows and first >= len(rows):
        # a shared answer (the registry gives this very tuple again while nothing changed),
        # all of it in this response: its text is written and encoded once
        shared: tuple[Any, ...] = rows
        batch = BATCHES.text(shared, (ns, mode),
                             lambda: "".join(render(r) for r in shared).encode("utf-8"))
        return operation, soap.Spliced((
            "<n:EnumerateResponse><n:EnumerationContext/><w:Items>", batch,
            "</w:Items><w:EndOfSequence/></n:EnumerateResponse>"))
    items: Rows = rows if rows else [_EMPTY]  # never changed: a snapshot as it is
    try:
        text, key = contexts.open(CONTEXTS, f"wsman-{mode}", items, render, first,
                                  contexts.default_timeout, owner)
    except ContextLimit as exc:
        raise soap.from_cim(pywbem.CIM_ERR_SERVER_LIMITS_EXCEEDED, str(exc)) from None
    ctx = f"<n:EnumerationContext>uuid:{key}</n:EnumerationContext>" if key else \
        "<n:EnumerationContext/>"
    if not optimized:
        return operation, f"<n:EnumerateResponse>{ctx}</n:EnumerateResponse>"
    end = "" if key else "<w:EndOfSequence/>"
    return operation, (f"<n:EnumerateResponse>{ctx}<w:Items>{text}</w:Items>{end}"
                       f"</n:EnumerateResponse>")


def _context(body: Node | None) -> str:
    node = _child(body, n.WSEN, "EnumerationContext")
    if node is None or not node.text.strip():
        raise Fault("n:InvalidEnumerationContext", "the request names no "
                    "wsen:EnumerationContext", soap.WSMAN_INVALID_CONTEXT, None,
                    pywbem.CIM_ERR_INVALID_ENUMERATION_CONTEXT)
    text = node.text.strip()
    return text[5:] if text.lower().startswith("uuid:") else text


def _unknown(exc: UnknownContext) -> Fault:
    return Fault("n:InvalidEnumerationContext", f"{exc}; start a new Enumerate",
                 soap.WSMAN_INVALID_CONTEXT, None, pywbem.CIM_ERR_INVALID_ENUMERATION_CONTEXT,
                 sender=False)


def pull(registry: Registry, contexts: EnumerationContexts, req: Request,
         owner: str | None, started: float | None = None) -> str:
    """PullResponse content. With ``wsen:MaxTime`` (counted from ``started``,
    time.monotonic(), when the request was taken up) the items written by then are returned;
    when none could be, wsman:TimedOut, and the context stays as it was (DSP0226). The
    request's OperationTimeout bounds the Pull the same way: items taken from the context are
    always returned, never dropped by a timeout found after they were written."""
    body = req.body
    key = _context(body)
    most = _count(_child(body, n.WSEN, "MaxElements"), "wsen:MaxElements", 1)
    maxtime = _child(body, n.WSEN, "MaxTime")
    base = time.monotonic() if started is None else started
    limits = [base + soap.duration(maxtime.text)] if maxtime is not None else []
    if req.timeout is not None:
        limits.append(base + req.timeout)
    deadline = min(limits) if limits else None
    for mode in ("obj", "epr", "objepr"):
        try:
            items, nxt, count = contexts.pull(key, CONTEXTS, f"wsman-{mode}", most, owner,
                                              deadline)
            if count == 0 and nxt is not None:
                if maxtime is None:
                    raise soap.timed_out("Pull", req.timeout or 0.0)
                raise soap.pull_timed_out(soap.duration(maxtime.text))
            break
        except UnknownContext as exc:
            if exc.yields is None or not exc.yields.startswith("wsman-"):
                raise _unknown(exc) from None
    else:  # pragma: no cover - one of the modes matched
        raise _unknown(UnknownContext(f"enumeration context {key!r} is unknown"))
    ctx = f"<n:EnumerationContext>uuid:{nxt}</n:EnumerationContext>" if nxt else ""
    end = "" if nxt else "<n:EndOfSequence/>"
    return f"<n:PullResponse>{ctx}<n:Items>{items}</n:Items>{end}</n:PullResponse>"


def release(registry: Registry, contexts: EnumerationContexts, req: Request,
            owner: str | None) -> str:
    key = _context(req.body)
    try:
        contexts.close(key, CONTEXTS, owner)
    except UnknownContext as exc:
        raise _unknown(exc) from None
    return ""
