"""Request parsing: safety of the XML reader, and the request shapes real clients send."""

from __future__ import annotations

import pytest
import pywbem

from vsms.wbem.decode import (
    IMethodCall,
    MethodCall,
    ProtocolError,
    convert_scalar,
    message,
    parse_embedded,
)
from vsms.wbem.xmltree import XmlError, parse

# what sblim wbemcli sends for `cm` (no TYPE on KEYVALUE, no PARAMTYPE, INSTANCEPATH reference)
WBEMCLI_CM = b"""<?xml version="1.0" encoding="utf-8" ?>
<CIM CIMVERSION="2.0" DTDVERSION="2.0">
<MESSAGE ID="4711" PROTOCOLVERSION="1.0"><SIMPLEREQ><METHODCALL NAME="DestroySystem">
<LOCALINSTANCEPATH><LOCALNAMESPACEPATH><NAMESPACE NAME="root"/><NAMESPACE NAME="test"/>
</LOCALNAMESPACEPATH><INSTANCENAME CLASSNAME="TST_Service">
<KEYBINDING NAME="Name"><KEYVALUE VALUETYPE="string">svc</KEYVALUE></KEYBINDING>
<KEYBINDING NAME="Count"><KEYVALUE VALUETYPE="numeric">12</KEYVALUE></KEYBINDING>
</INSTANCENAME></LOCALINSTANCEPATH>
<PARAMVALUE NAME="AffectedSystem"><VALUE.REFERENCE><INSTANCEPATH><NAMESPACEPATH>
<HOST>localhost</HOST><LOCALNAMESPACEPATH><NAMESPACE NAME="root"/><NAMESPACE NAME="test"/>
</LOCALNAMESPACEPATH></NAMESPACEPATH><INSTANCENAME CLASSNAME="TST_System">
<KEYBINDING NAME="Name"><KEYVALUE VALUETYPE="string">vm1</KEYVALUE></KEYBINDING>
</INSTANCENAME></INSTANCEPATH></VALUE.REFERENCE></PARAMVALUE>
<PARAMVALUE NAME="Counts"><VALUE.ARRAY><VALUE>1</VALUE><VALUE.NULL/></VALUE.ARRAY></PARAMVALUE>
<PARAMVALUE NAME="Nothing"/>
</METHODCALL></SIMPLEREQ></MESSAGE></CIM>"""


def test_wbemcli_method_call() -> None:
    msg = message(parse(WBEMCLI_CM))
    assert msg.id == "4711"
    call = msg.call
    assert isinstance(call, MethodCall)
    assert call.name == "DestroySystem" and call.namespace == "root/test"
    assert call.target == pywbem.CIMInstanceName(
        "TST_Service", {"Name": "svc", "Count": 12}, namespace="root/test")
    ref, arr, null = call.params
    assert (ref.name, ref.kind, ref.paramtype) == ("AffectedSystem", "ref", None)
    assert ref.value.host == "localhost" and ref.value.keybindings["name"] == "vm1"
    assert (arr.kind, arr.value) == ("array", ["1", None])
    assert (null.kind, null.value) == ("null", None)


def test_intrinsic_call_parameters() -> None:
    body = b"""<CIM CIMVERSION="2.0" DTDVERSION="2.0"><MESSAGE ID="1001" PROTOCOLVERSION="1.0">
    <SIMPLEREQ><IMETHODCALL NAME="GetInstance"><LOCALNAMESPACEPATH><NAMESPACE NAME="root"/>
    <NAMESPACE NAME="test"/></LOCALNAMESPACEPATH>
    <IPARAMVALUE NAME="InstanceName"><INSTANCENAME CLASSNAME="C"><KEYBINDING NAME="K">
    <KEYVALUE VALUETYPE="boolean" TYPE="boolean">TRUE</KEYVALUE></KEYBINDING></INSTANCENAME>
    </IPARAMVALUE><IPARAMVALUE NAME="PropertyList"><VALUE.ARRAY><VALUE>A</VALUE></VALUE.ARRAY>
    </IPARAMVALUE><IPARAMVALUE NAME="LocalOnly"><VALUE>FALSE</VALUE></IPARAMVALUE>
    </IMETHODCALL></SIMPLEREQ></MESSAGE></CIM>"""
    call = message(parse(body)).call
    assert isinstance(call, IMethodCall)
    assert call.params["instancename"][1] == ("ref", pywbem.CIMInstanceName("C", {"K": True}))
    assert call.params["propertylist"][1] == ("array", ["A"])
    assert call.params["localonly"][1] == ("value", "FALSE")


@pytest.mark.parametrize("body, status, header", [
    (b'<CIM CIMVERSION="3.0" DTDVERSION="2.0"><MESSAGE ID="1" PROTOCOLVERSION="1.0"></MESSAGE>'
     b"</CIM>", 501, "unsupported-cim-version"),
    (b'<CIM CIMVERSION="2.0" DTDVERSION="9.1"><MESSAGE ID="1" PROTOCOLVERSION="1.0"></MESSAGE>'
     b"</CIM>", 501, "unsupported-dtd-version"),
    (b'<CIM CIMVERSION="2.0" DTDVERSION="2.0"><MESSAGE ID="1" PROTOCOLVERSION="2.0"><SIMPLEREQ>'
     b"</SIMPLEREQ></MESSAGE></CIM>", 501, "unsupported-protocol-version"),
    (b'<CIM CIMVERSION="2.0" DTDVERSION="2.0"><MESSAGE ID="1" PROTOCOLVERSION="1.0"><MULTIREQ>'
     b"</MULTIREQ></MESSAGE></CIM>", 501, "multiple-requests-unsupported"),
    (b"<FOO/>", 400, "request-not-valid"),
    (b'<CIM CIMVERSION="2.0" DTDVERSION="2.0"><MESSAGE ID="1" PROTOCOLVERSION="1.0"><SIMPLEREQ>'
     b'<IMETHODCALL NAME="GetClass"><IPARAMVALUE NAME="ClassName"/></IMETHODCALL></SIMPLEREQ>'
     b"</MESSAGE></CIM>", 400, "request-not-valid"),
])
def test_invalid_messages(body: bytes, status: int, header: str) -> None:
    with pytest.raises(ProtocolError) as info:
        message(parse(body))
    assert (info.value.status, info.value.cimerror) == (status, header)


@pytest.mark.parametrize("body, why", [
    (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
     b"<CIM>&lol2;</CIM>", "DOCTYPE"),
    (b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><CIM>&e;</CIM>', "DOCTYPE"),
    (b"<CIM>&undefined;</CIM>", "not well-formed"),
    (b"<CIM><MESSAGE></CIM>", "not well-formed"),
    (b"", "not well-formed"),
    (b"<a>" * 100 + b"</a>" * 100, "deeper"),
])
def test_hostile_or_broken_xml_is_refused(body: bytes, why: str) -> None:
    with pytest.raises(XmlError, match=why):
        parse(body)


def test_cdata_and_entities_of_xml_itself_are_fine() -> None:
    root = parse(b"<V><![CDATA[<a&b>]]> &amp; &#65;</V>")
    assert root.text == "<a&b> & A"


def test_convert_scalar() -> None:
    assert convert_scalar(" true ", "boolean") is True
    assert convert_scalar("0x1F", "uint8") == 31
    assert convert_scalar("-5", "sint16") == -5
    assert convert_scalar("1.5", "real32") == 1.5
    assert convert_scalar("x", "char16") == "x"
    assert str(convert_scalar("20240101000000.000000+000", "datetime")).startswith("2024")
    for text, cimtype in [("yes", "boolean"), ("256", "uint8"), ("-1", "uint32"), ("1.5", "uint8"),
                          ("ab", "char16"), ("soon", "datetime"), ("x", "real64")]:
        with pytest.raises(ValueError):
            convert_scalar(text, cimtype)


def test_embedded_instance_text() -> None:
    inner = pywbem.CIMInstance("X_In", properties={"N": pywbem.Uint32(3)})
    outer = pywbem.CIMInstance("X_Out", properties={
        "S": "a<b", "Flags": [True, False],
        "E": pywbem.CIMProperty("E", inner, embedded_object="instance")})
    got = parse_embedded(outer.tocimxmlstr())
    assert got.classname == "X_Out"
    assert got["S"] == "a<b" and got["Flags"] == [True, False]
    assert got["E"].classname == "X_In" and got["E"]["N"] == 3
    with pytest.raises(ProtocolError):
        parse_embedded("<INSTANCE CLASSNAME='X'><FOO/></INSTANCE>")
