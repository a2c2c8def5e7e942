"""One table over every class vsms serves, in every namespace: each class with instances is
enumerable and each instance gettable over WS-Man, with the property values CIM-XML gives."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest
import pywbem
from pypsrp.wsman import SelectorSet

from tests.wsman.conftest import WsServer
from tests.wsman.test_operations import enumerate_all
from tests.wsman_clients.conftest import WMI

pytestmark = pytest.mark.qemu
XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
#: values that change between two reads of the same instance
VOLATILE = {"freephysicalmemory", "freevirtualmemory", "numberofprocesses",
            "currentclockspeed", "ontimeinmilliseconds", "percentcomplete"}


def cimxml(ws: WsServer) -> pywbem.WBEMConnection:
    s = ws.served
    return pywbem.WBEMConnection(s.url, (s.user, s.password), timeout=120)


def as_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def compare(inst: pywbem.CIMInstance, el: ET.Element) -> int:
    """Assert that the WS-Man element carries the CIM-XML instance's values; how many
    properties were compared."""
    ns = el.tag[1:].split("}")[0]
    assert ns.endswith("/" + inst.classname), (ns, inst.classname)
    compared = 0
    for prop in inst.properties.values():
        if prop.type in ("datetime", "reference") or prop.embedded_object or \
                prop.name.lower() in VOLATILE:
            continue
        found = el.findall(f"{{{ns}}}{prop.name}")
        if prop.value is None:
            assert not found or found[0].get(XSI_NIL) == "true", (inst.classname, prop.name)
        elif prop.is_array:
            assert [f.text or "" for f in found] == [as_text(v) for v in prop.value], \
                (inst.classname, prop.name)
        else:
            assert len(found) == 1 and (found[0].text or "") == as_text(prop.value), \
                (inst.classname, prop.name, [f.text for f in found], prop.value)
        compared += 1
    return compared


def same_keys(path: pywbem.CIMInstanceName, el: ET.Element) -> bool:
    """Does the WS-Man element carry the keys of ``path``? A plain key is its own element; a
    reference key (an association's) is an EPR whose selectors hold the referenced keys."""
    ns = el.tag[1:].split("}")[0]
    for k, v in path.keybindings.items():
        if isinstance(v, pywbem.CIMInstanceName):
            ref = el.find(f"{{{ns}}}{k}")
            if ref is None:
                return False
            selectors = {(s.get("Name") or "").lower(): (s.text or "")
                         for s in ref.iter() if s.tag.endswith("}Selector")}
            if any(selectors.get(rk.lower()) != as_text(rv)
                   for rk, rv in v.keybindings.items()
                   if not isinstance(rv, pywbem.CIMInstanceName)):
                return False
        elif (el.findtext(f"{{{ns}}}{k}") or "") != as_text(v):
            return False
    return True


def test_every_class_both_protocols(ws: WsServer) -> None:
    conn = cimxml(ws)
    spaces = sorted(i["Name"] for i in conn.EnumerateInstances("CIM_Namespace",
                                                               namespace="interop"))
    assert {"interop", "root/cimv2", "root/virtualization"} <= set(spaces)
    client = ws.client()
    seen: dict[str, int] = {}
    for ns in spaces:
        for cn in conn.EnumerateClassNames(namespace=ns, DeepInheritance=True):
            # the instances of this very class (a superclass enumeration returns its
            # subclasses' instances, each compared under its own class)
            insts = [i for i in conn.EnumerateInstances(cn, namespace=ns)
                     if i.classname.lower() == cn.lower()]
            uri = f"{WMI}{ns}/{cn}"
            items = [e for e in enumerate_all(ws, uri, max_elements=50)
                     if e.tag.endswith("}" + cn)]
            assert len(items) == len(insts), (ns, cn, len(items), len(insts))
            for inst in insts:
                keys = {k: as_text(v) for k, v in inst.path.keybindings.items()}
                match = [e for e in items if same_keys(inst.path, e)]
                assert match, (ns, cn, keys)
                compare(inst, match[0])
                sel = SelectorSet()
                for k, v in inst.path.keybindings.items():
                    if isinstance(v, pywbem.CIMInstanceName):
                        break  # association keys are EPRs: gettable is checked by enumeration
                    sel.add_option(k, as_text(v))
                else:
                    body = client.get(uri, selector_set=sel)  # pypsrp: the SOAP Body
                    assert body.tag.endswith("}Body") and len(body) == 1, ET.tostring(body)
                    compare(inst, body[0])
            seen[f"{ns}:{cn}"] = len(insts)
    served = {k for k, n in seen.items() if n}
    assert {"root/cimv2:Win32_ComputerSystem", "root/cimv2:Win32_Processor",
            "root/virtualization:Msvm_ComputerSystem",
            "root/virtualization:Msvm_VirtualSystemManagementService",
            "interop:CIM_Namespace"} <= served
    assert seen["root/cimv2:CIM_DataFile"] == 0
