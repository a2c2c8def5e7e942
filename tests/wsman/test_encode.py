"""The WS-CIM encoding (DSP0230, MS-WSMV §2.2.5, §3.1.4.1.26) of instances, values and EPRs, and
the resource URIs: parsed back with ElementTree and checked value by value."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pywbem

from tests.wsman.conftest import NS, text
from vsms.wsman import encode
from vsms.wsman import names as n

CIM = "http://schemas.dmtf.org/wbem/wscim/1/common"


def cls() -> pywbem.CIMClass:
    props = [pywbem.CIMProperty("Id", None, type="string",
                                qualifiers={"Key": pywbem.CIMQualifier("Key", True)}),
             pywbem.CIMProperty("Flag", None, type="boolean"),
             pywbem.CIMProperty("When", None, type="datetime"),
             pywbem.CIMProperty("Took", None, type="datetime"),
             pywbem.CIMProperty("Tags", None, type="string", is_array=True),
             pywbem.CIMProperty("NoTags", None, type="string", is_array=True),
             pywbem.CIMProperty("Text", None, type="string"),
             pywbem.CIMProperty("Peer", None, type="reference", reference_class="T_X")]
    return pywbem.CIMClass("T_X", properties={p.name: p for p in props})


def parse(xml: str) -> ET.Element:
    return ET.fromstring(f'<r xmlns:a="{n.WSA}" xmlns:w="{n.WSMAN}" xmlns:xsi="{n.XSI}" '
                         f'xmlns:cim="{CIM}">{xml}</r>')[0]


def test_instance_encoding() -> None:
    when = datetime(2014, 4, 3, 14, 45, 50, 468750, tzinfo=UTC)
    peer = pywbem.CIMInstanceName("T_X", {"Id": "other"}, namespace="root/test")
    inst = pywbem.CIMInstance("T_X", properties={
        "Text": "a<b&c", "Id": "one", "Flag": False, "When": pywbem.CIMDateTime(when),
        "Took": pywbem.CIMDateTime(timedelta(minutes=1, seconds=40)), "Tags": ["x", "y"],
        "NoTags": pywbem.CIMProperty("NoTags", None, type="string", is_array=True),
        "Peer": peer})
    el = parse(encode.instance(inst, "root/test", cls()))
    uri = n.class_uri("root/test", "T_X")
    assert uri == "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/test/T_X"
    assert el.tag == f"{{{uri}}}T_X" and el.get(f"{{{n.XSI}}}type") == "p:T_X_Type"
    # MOF order, not the instance's order; arrays repeated; a NULL array once, nil
    assert [c.tag.split("}")[1] for c in el] == [
        "Id", "Flag", "When", "Took", "Tags", "Tags", "NoTags", "Text", "Peer"]
    p = f"{{{uri}}}"
    assert text(el.find(f"{p}Flag")) == "false"
    assert text(el.find(f"{p}When/{{{CIM}}}Datetime")) == "2014-04-03T14:45:50.468750+00:00"
    assert text(el.find(f"{p}Took/{{{CIM}}}Interval")) == "P0DT0H1M40S"
    assert [t.text for t in el.findall(f"{p}Tags")] == ["x", "y"]
    assert el.find(f"{p}NoTags").get(f"{{{n.XSI}}}nil") == "true"  # type: ignore[union-attr]
    assert text(el.find(f"{p}Text")) == "a<b&c"
    ref = el.find(f"{p}Peer")
    assert ref is not None
    assert text(ref.find("a:Address", NS)) == n.ANONYMOUS
    assert text(ref.find("a:ReferenceParameters/w:ResourceURI", NS)) == uri
    assert {s.get("Name"): s.text for s in ref.iterfind(
        "a:ReferenceParameters/w:SelectorSet/w:Selector", NS)} == {
        "Id": "other", "__cimnamespace": "root/test"}


def test_a_missing_property_is_nil_and_a_where_list_is_kept() -> None:
    inst = pywbem.CIMInstance("T_X", properties={"Id": "one"})
    el = parse(encode.instance(inst, "root/test", cls()))
    assert len(el) == 8
    assert el[1].get(f"{{{n.XSI}}}nil") == "true"
    el = parse(encode.instance(inst, "root/test", cls(), keep={"id"}))
    assert [c.tag.split("}")[1] for c in el] == ["Id"]


def test_nested_embedded_instance() -> None:
    emb = pywbem.CIMInstance("Msvm_SummaryInformation",
                             properties={"Name": "vm", "x": pywbem.Uint16(3)},
                             path=pywbem.CIMInstanceName("Msvm_SummaryInformation",
                                                         namespace="root/virtualization"))
    xml = encode.value_xml("<p:SummaryInformation>", "</p:SummaryInformation>", [emb])
    el = parse(f'<x xmlns:p="urn:m">{xml}</x>')[0]
    assert el.tag == "{urn:m}SummaryInformation"
    own = n.class_uri("root/virtualization", "Msvm_SummaryInformation")
    assert el.get(f"{{{n.XSI}}}type") == "q:Msvm_SummaryInformation_Type"
    assert text(el.find(f"{{{own}}}Name")) == "vm"


def test_resource_uris() -> None:
    assert n.resource(n.WMI_PREFIX + "root/virtualization/Msvm_ComputerSystem") == \
        n.Resource("root/virtualization", "Msvm_ComputerSystem")
    assert n.resource("wmi/root/virtualization/*") == n.Resource("root/virtualization", "*")
    assert n.resource(n.DMTF_PREFIX + "CIM_ComputerSystem") == \
        n.Resource(None, "CIM_ComputerSystem", dmtf=True)
    assert n.resource("http://example.org/x") is None
    assert n.resource("http://schemas.dell.com/wbem/wscim/1/cim-schema/2/Msvm_X") == \
        n.Resource(None, "Msvm_X")


def test_invoke_input_arrays_refs_nil_and_cdata() -> None:
    from vsms.wbem.xmltree import parse as parse_xml
    from vsms.wsman.invoke import read_call
    uri = n.class_uri("root/virtualization", "Msvm_VirtualSystemManagementService")
    body = (f'<p:M_INPUT xmlns:p="{uri}" xmlns:a="{n.WSA}" xmlns:w="{n.WSMAN}" '
            f'xmlns:xsi="{n.XSI}"><p:List>a</p:List><p:List>b</p:List>'
            f'<p:Emb><![CDATA[<INSTANCE CLASSNAME="X"></INSTANCE>]]></p:Emb>'
            f'<p:Gone xsi:nil="true"/>'
            f"<p:Ref><a:Address>{n.ANONYMOUS}</a:Address><a:ReferenceParameters>"
            f"<w:ResourceURI>{n.class_uri('root/virtualization', 'Msvm_ComputerSystem')}"
            f'</w:ResourceURI><w:SelectorSet><w:Selector Name="Name">G</w:Selector>'
            f"</w:SelectorSet></a:ReferenceParameters></p:Ref></p:M_INPUT>")
    call = read_call(parse_xml(body.encode(), namespaces=True), uri, "M", "root/virtualization",
                     pywbem.CIMClassName("Msvm_VirtualSystemManagementService"))
    got = {p.name: (p.kind, p.value) for p in call.params}
    assert got["List"] == ("array", ["a", "b"])
    assert got["Emb"] == ("value", '<INSTANCE CLASSNAME="X"></INSTANCE>')
    assert got["Gone"] == ("null", None)
    kind, ref = got["Ref"]
    assert kind == "ref" and ref.classname == "Msvm_ComputerSystem"
    assert ref.keybindings["Name"] == "G" and ref.namespace == "root/virtualization"


def test_epr_parts_are_well_formed_on_their_own() -> None:
    """Clients such as wslinvoke copy an EPR's parts as text into their next request."""
    import re
    path = pywbem.CIMInstanceName("T_X", {"Id": "a&b"}, namespace="root/test")
    xml = encode.epr(path)
    for part in re.findall(r"<a:Address.*?</a:Address>|<w:SelectorSet.*?</w:SelectorSet>|"
                           r"<a:ReferenceParameters.*?</a:ReferenceParameters>", xml):
        ET.fromstring(part)  # no unbound prefix
    sels = ET.fromstring(re.findall(r"<w:SelectorSet.*?</w:SelectorSet>", xml)[0])
    assert [s.text for s in sels] == ["a&b", "root/test"]
