"""Table-driven: every class vsms serves (with a VM defined, so the VM's classes have instances)
is enumerable and gettable over WS-Management with the same property values as over CIM-XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest
import pywbem
from pypsrp.wsman import NAMESPACES, SelectorSet

from tests.wsman.conftest import NS, WsServer
from tests.wsman.test_operations import cimxml, invoke
from vsms.cim import names

pytestmark = pytest.mark.qemu
XSI_NIL = f"{{{NS['xsi']}}}nil"
CIM = "{http://schemas.dmtf.org/wbem/wscim/1/common}"


def wsman_items(ws: WsServer, uri: str) -> list[ET.Element]:
    enum = ET.Element(f"{{{NAMESPACES['wsen']}}}Enumerate")
    ET.SubElement(enum, f"{{{NAMESPACES['wsman']}}}OptimizeEnumeration")
    ET.SubElement(enum, f"{{{NAMESPACES['wsman']}}}MaxElements").text = "32000"
    client = ws.client()
    client.max_envelope_size = 1024 * 1024  # every association of the VM in one reply
    resp = client.enumerate(uri, resource=enum).find("n:EnumerateResponse", NS)
    assert resp is not None and resp.find("w:EndOfSequence", NS) is not None
    items = resp.find("w:Items", NS)
    return list(items) if items is not None else []


def texts(el: ET.Element, ns: str, name: str) -> list[ET.Element]:
    return el.findall(f"{{{ns}}}{name}")


def same_value(p: pywbem.CIMProperty, found: list[ET.Element], where: str) -> None:
    v = p.value
    if v is None or (isinstance(v, list) and not v):
        assert not found or found[0].get(XSI_NIL) == "true" or v == [], where
        return
    values = v if isinstance(v, list) else [v]
    assert len(found) == len(values), (where, values, [f.text for f in found])
    for x, el in zip(values, found, strict=True):
        if isinstance(x, pywbem.CIMInstanceName):
            sels = {s.get("Name"): s.text for s in el.iterfind(
                "a:ReferenceParameters/w:SelectorSet/w:Selector", NS)}
            assert {k: str(val) for k, val in x.keybindings.items()}.items() <= sels.items(), \
                where
        elif isinstance(x, pywbem.CIMDateTime):
            inner = el.find(f"{CIM}Interval" if x.is_interval else f"{CIM}Datetime")
            assert inner is not None and inner.text, where
        elif isinstance(x, bool):
            assert el.text == str(x).lower(), where
        elif isinstance(x, (int, str)):
            assert (el.text or "") == str(x), (where, el.text, x)


def compare(inst: pywbem.CIMInstance, el: ET.Element, where: str) -> None:
    ns = el.tag[1:].split("}")[0]
    assert el.tag.split("}")[1] == inst.classname, where
    for name, p in inst.properties.items():
        same_value(p, texts(el, ns, name), f"{where}.{name}")


def norm(v: Any) -> Any:
    if isinstance(v, pywbem.CIMInstanceName):
        return tuple(sorted((k.lower(), str(x).lower()) for k, x in v.keybindings.items()))
    return str(v).lower()


def key_of(path: pywbem.CIMInstanceName) -> tuple[Any, ...]:
    return tuple(sorted((k.lower(), norm(v)) for k, v in path.keybindings.items()))


def ws_key(el: ET.Element, keynames: list[str]) -> tuple[Any, ...]:
    ns = el.tag[1:].split("}")[0]
    out = []
    for k in keynames:
        child = el.find(f"{{{ns}}}{k}")
        assert child is not None, k
        if child.find("a:ReferenceParameters", NS) is not None:
            value: Any = tuple(sorted(
                ((s.get("Name") or "").lower(), (s.text or "").lower())
                for s in child.iterfind("a:ReferenceParameters/w:SelectorSet/w:Selector", NS)
                if s.get("Name") != "__cimnamespace"))
        else:
            value = (child.text or "").lower()
        out.append((k.lower(), value))
    return tuple(sorted(out))


def test_every_class_over_both_protocols(ws: WsServer) -> None:
    gsd = pywbem.CIMInstance(names.VSGSD,
                             properties={"ElementName": f"every-{ws.served.root.name}"})
    invoke(ws, "DefineVirtualSystem", [("SystemSettingData", gsd.tocimxmlstr())])
    conn = cimxml(ws)
    checked = 0
    for namespace in ("root/virtualization", "interop"):
        for cls in conn.EnumerateClassNames(namespace=namespace, DeepInheritance=True):
            uri = f"http://schemas.microsoft.com/wbem/wsman/1/wmi/{namespace}/{cls}"
            want = [i for i in conn.EnumerateInstances(cls, namespace=namespace)
                    if i.classname.lower() == cls.lower()]
            got = [e for e in wsman_items(ws, uri) if e.tag.split("}")[1].lower() == cls.lower()]
            assert len(got) == len(want), cls
            if not want:
                continue
            keynames = list(want[0].path.keybindings)
            by_key = {ws_key(el, keynames): el for el in got}
            assert len(by_key) == len(got), cls
            for inst in want:
                compare(inst, by_key[key_of(inst.path)], f"{namespace}:{cls}")
            # Get of the first by its keys (references as EPR selectors are not needed here)
            first = want[0]
            if any(isinstance(v, pywbem.CIMInstanceName)
                   for v in first.path.keybindings.values()):
                continue
            sel = SelectorSet()
            for k, v in first.path.keybindings.items():
                sel.add_option(k, str(v).lower() if isinstance(v, bool) else str(v))
            body = ws.client().get(uri, selector_set=sel)
            compare(first, body[0], f"Get {namespace}:{cls}")
            checked += 1
    assert checked >= 10
