"""Embedded instances: pywbem and WMI-style text in, typed CIMInstance out; hostile text refused."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import pywbem

from vsms.cim import names
from vsms.cim.embedded import MAX_TEXT, parse_instance, serialize_instance
from vsms.cim.enums import ReturnCode
from vsms.errors import IncorrectDataType

VM_PATH = pywbem.CIMInstanceName(
    names.COMPUTER_SYSTEM, namespace=names.NAMESPACE,
    keybindings={"CreationClassName": names.COMPUTER_SYSTEM,
                 "Name": "24C0F23E-90C0-47D3-B074-5A2B33181C46"})


def rich_instance() -> pywbem.CIMInstance:
    """One property of every CIM type, arrays with nulls, nulls, a reference, nested instances."""
    inner = pywbem.CIMInstance(names.VHD_INFO, properties={
        "Type": pywbem.Uint16(3), "ParentPath": "", "InUse": False})
    props = [
        pywbem.CIMProperty("U8", pywbem.Uint8(255)), pywbem.CIMProperty("S8", pywbem.Sint8(-128)),
        pywbem.CIMProperty("U16", pywbem.Uint16(32768)),
        pywbem.CIMProperty("S16", pywbem.Sint16(-2)),
        pywbem.CIMProperty("U32", pywbem.Uint32(4096)),
        pywbem.CIMProperty("S32", pywbem.Sint32(-70000)),
        pywbem.CIMProperty("U64", pywbem.Uint64(1 << 40)),
        pywbem.CIMProperty("S64", pywbem.Sint64(-(1 << 40))),
        pywbem.CIMProperty("R32", pywbem.Real32(1.5)),
        pywbem.CIMProperty("R64", pywbem.Real64(-2.25e10)),
        pywbem.CIMProperty("Flag", True), pywbem.CIMProperty("Off", False),
        pywbem.CIMProperty("C", pywbem.Char16("x")),
        pywbem.CIMProperty("When", pywbem.CIMDateTime("20240229235959.123456+000")),
        pywbem.CIMProperty("Delay", pywbem.CIMDateTime("00000000000500.000000:000")),
        pywbem.CIMProperty("Text", ' a <b> & "c" \'d\'\n  ünïcødé  '),
        pywbem.CIMProperty("Empty", ""),
        pywbem.CIMProperty("Nothing", None, type="uint32"),
        pywbem.CIMProperty("Paths", ["C:\\a.vhd", None, "/b.vhd"], type="string"),
        pywbem.CIMProperty("Boot", [pywbem.Uint16(2), pywbem.Uint16(0)], type="uint16"),
        pywbem.CIMProperty("NoArray", [], type="string"),
        pywbem.CIMProperty("NullArray", None, type="boolean", is_array=True),
        pywbem.CIMProperty("System", VM_PATH),
        pywbem.CIMProperty("NoRef", None, type="reference", reference_class="CIM_System"),
        pywbem.CIMProperty("Info", inner),
        pywbem.CIMProperty("Infos", [inner, inner], type="string", embedded_object="instance"),
    ]
    return pywbem.CIMInstance(names.RASD, properties=props)


def bad(text: object, match: str, what: str = "ResourceSettingData") -> str:
    with pytest.raises(IncorrectDataType) as exc:
        parse_instance(text, what=what)  # type: ignore[arg-type]
    message = str(exc.value)
    assert message.startswith(f"{what} is not a CIM-XML INSTANCE: "), message
    assert match in message, message
    assert exc.value.code == ReturnCode.INCORRECT_DATA_TYPE
    return message


# ------------------------------------------------------------------------------ round trips

def test_round_trip_of_every_type() -> None:
    inst = rich_instance()
    back = parse_instance(serialize_instance(inst))
    assert back == inst
    assert back.path is None


def test_values_carry_their_declared_types() -> None:
    back = parse_instance(serialize_instance(rich_instance()))
    assert type(back["U16"]) is pywbem.Uint16 and back["U16"] == 32768
    assert type(back["S64"]) is pywbem.Sint64 and type(back["R32"]) is pywbem.Real32
    assert back["Flag"] is True and back["Off"] is False
    assert back["When"].is_interval is False and back["Delay"].is_interval is True
    assert back.properties["Nothing"].type == "uint32" and back["Nothing"] is None
    assert back["Paths"] == ["C:\\a.vhd", None, "/b.vhd"]
    assert all(type(v) is pywbem.Uint16 for v in back["Boot"])
    assert back["NoArray"] == [] and back.properties["NullArray"].is_array
    assert back["System"] == VM_PATH and back["NoRef"] is None
    assert isinstance(back["Info"], pywbem.CIMInstance) and back["Info"]["Type"] == 3
    assert back.properties["Infos"].embedded_object == "instance"


def test_serialize_writes_the_instance_element_as_pywbem_does() -> None:
    inst = rich_instance()
    inst.path = pywbem.CIMInstanceName(names.RASD, {"InstanceID": "Microsoft:X"})
    text = serialize_instance(inst)
    assert text.startswith(f'<INSTANCE CLASSNAME="{names.RASD}">')
    assert text == inst.tocimxmlstr(ignore_path=True)


@pytest.mark.parametrize(("namespace", "wrapper"), [(None, "<VALUE.NAMEDINSTANCE>"),
                                                    (names.NAMESPACE,
                                                     "<VALUE.OBJECTWITHLOCALPATH>")])
def test_instance_with_a_path_keeps_it(namespace: str | None, wrapper: str) -> None:
    path = VM_PATH.copy()
    path.namespace = namespace
    inst = pywbem.CIMInstance(names.COMPUTER_SYSTEM, properties={
        "CreationClassName": names.COMPUTER_SYSTEM, "Name": VM_PATH["Name"],
        "EnabledState": pywbem.Uint16(3)}, path=path)
    text = inst.tocimxmlstr()  # pywbem wraps an instance that has a path
    assert text.startswith(wrapper)
    back = parse_instance(text)
    assert back.path == path
    assert back == inst


def test_pretty_printed_text_and_wrappers() -> None:
    inst = rich_instance()
    pretty = inst.tocimxmlstr(indent=2)
    assert parse_instance(pretty) == inst
    assert parse_instance(f"\n\t <![CDATA[{pretty}]]> \n") == inst
    assert parse_instance(f"<VALUE.OBJECT>{pretty}</VALUE.OBJECT>") == inst
    assert parse_instance(f'<?xml version="1.0" encoding="utf-16"?>\n{pretty}') == inst


def test_instance_path_wrappers() -> None:
    text = ('<VALUE.OBJECTWITHPATH><INSTANCEPATH><NAMESPACEPATH><HOST>hv1</HOST>'
            '<LOCALNAMESPACEPATH><NAMESPACE NAME="root"/><NAMESPACE NAME="virtualization"/>'
            '</LOCALNAMESPACEPATH></NAMESPACEPATH><INSTANCENAME CLASSNAME="Msvm_ConcreteJob">'
            '<KEYBINDING NAME="InstanceID"><KEYVALUE VALUETYPE="string">J1</KEYVALUE>'
            '</KEYBINDING></INSTANCENAME></INSTANCEPATH>'
            '<INSTANCE CLASSNAME="Msvm_ConcreteJob"><PROPERTY NAME="JobState" TYPE="uint16">'
            '<VALUE>7</VALUE></PROPERTY></INSTANCE></VALUE.OBJECTWITHPATH>')
    back = parse_instance(text)
    assert back.path == pywbem.CIMInstanceName("Msvm_ConcreteJob", {"InstanceID": "J1"},
                                               namespace="root/virtualization", host="hv1")
    assert back["JobState"] == 7


# ------------------------------------------------------------------------------ WMI style

WMI_GSD = """
<INSTANCE CLASSNAME="Msvm_VirtualSystemGlobalSettingData" xml:lang="en-US">
  <QUALIFIER NAME="dynamic" PROPAGATED="true" TYPE="boolean" TOINSTANCE="true">
    <VALUE>TRUE</VALUE></QUALIFIER>
  <PROPERTY NAME="__CLASS" CLASSORIGIN="___SYSTEM" TYPE="string">
    <VALUE>Msvm_VirtualSystemGlobalSettingData</VALUE></PROPERTY>
  <PROPERTY NAME="ElementName" CLASSORIGIN="CIM_ManagedElement" PROPAGATED="true" TYPE="string">
    <QUALIFIER NAME="CIMTYPE" PROPAGATED="true" TYPE="string" TOINSTANCE="true">
      <VALUE>string</VALUE></QUALIFIER>
    <VALUE>web &amp; db</VALUE></PROPERTY>
  <PROPERTY NAME="AutomaticStartupAction" CLASSORIGIN="Msvm_VirtualSystemGlobalSettingData"
            TYPE="uint16"><VALUE> 2 </VALUE></PROPERTY>
  <PROPERTY NAME="AllowFullSCSICommandSet" TYPE="boolean"><VALUE>true</VALUE></PROPERTY>
  <PROPERTY NAME="AutomaticStartupActionDelay" TYPE="datetime">
    <VALUE>00000000000030.000000:000</VALUE></PROPERTY>
  <PROPERTY NAME="ScopeOfResidence" TYPE="string"></PROPERTY>
  <PROPERTY.ARRAY NAME="BootOrder" CLASSORIGIN="Msvm_VirtualSystemSettingData" TYPE="uint16"
                  ARRAYSIZE="4">
    <VALUE.ARRAY><VALUE>1</VALUE><VALUE>2</VALUE><VALUE>3</VALUE><VALUE>0</VALUE></VALUE.ARRAY>
  </PROPERTY.ARRAY>
  <PROPERTY NAME="DebugPort" TYPE="uint32"><VALUE>0x10</VALUE></PROPERTY>
</INSTANCE>
"""


def test_wmi_dtd20_text_with_extra_attributes_and_qualifiers() -> None:
    inst = parse_instance(WMI_GSD)
    assert inst.classname == names.VSGSD
    assert inst["ElementName"] == "web & db"
    assert inst["AutomaticStartupAction"] == 2 and type(inst["AutomaticStartupAction"]) is \
        pywbem.Uint16
    assert inst["AllowFullSCSICommandSet"] is True
    assert inst["AutomaticStartupActionDelay"].timedelta.total_seconds() == 30
    assert inst["ScopeOfResidence"] is None
    assert inst["BootOrder"] == [1, 2, 3, 0]
    assert inst["DebugPort"] == 16
    assert inst["__CLASS"] == names.VSGSD  # system properties are kept, not interpreted


def test_embedded_instance_marked_by_a_qualifier() -> None:
    escaped = ('&lt;INSTANCE CLASSNAME="Msvm_VirtualHardDiskInfo"&gt;&lt;PROPERTY NAME="Type" '
               'TYPE="uint16"&gt;&lt;VALUE&gt;2&lt;/VALUE&gt;&lt;/PROPERTY&gt;&lt;/INSTANCE&gt;')
    text = (f'<INSTANCE CLASSNAME="X"><PROPERTY NAME="Info" TYPE="string">'
            f'<QUALIFIER NAME="EmbeddedInstance" TYPE="string"><VALUE>Msvm_VirtualHardDiskInfo'
            f'</VALUE></QUALIFIER><VALUE>{escaped}</VALUE></PROPERTY></INSTANCE>')
    info = parse_instance(text)["Info"]
    assert isinstance(info, pywbem.CIMInstance) and info["Type"] == 2


def test_reference_given_as_a_path_string() -> None:
    text = ('<INSTANCE CLASSNAME="X"><PROPERTY NAME="SnapshotVirtualSystem" TYPE="reference">'
            '<VALUE>/root/virtualization:Msvm_VirtualSystemSettingData.InstanceID="Microsoft:1"'
            '</VALUE></PROPERTY></INSTANCE>')
    ref = parse_instance(text)["SnapshotVirtualSystem"]
    assert ref.classname == names.VSSD and ref["InstanceID"] == "Microsoft:1"


# ------------------------------------------------------------------------------ refusals

@pytest.mark.parametrize(("text", "match"), [
    ("<FOO/>", "unexpected element <FOO> at line 1"),
    ("\n\n<INSTANCES/>", "unexpected element <INSTANCES> at line 3"),
    ("hello", "malformed XML"),
    ("", "the text is empty"),
    ("  \n ", "the text is empty"),
    ("<![CDATA[  ]]>", "the text is empty"),
    ('<INSTANCE CLASSNAME="X">', "malformed XML: no element found"),
    ("<INSTANCE/>", "<INSTANCE> at line 1 has no CLASSNAME"),
    ('<INSTANCE CLASSNAME="X"/><INSTANCE CLASSNAME="Y"/>', "junk after document element"),
    ('<INSTANCE CLASSNAME="X"><PROPERTY TYPE="string"/></INSTANCE>', "has no NAME"),
    ('<INSTANCE CLASSNAME="X"><FOO/></INSTANCE>', "unexpected element <FOO> at line 1 in "
                                                   "INSTANCE X"),
    ('<INSTANCE CLASSNAME="X"><PROPERTY NAME="A" TYPE="uint16"><VALUE>x1</VALUE></PROPERTY>'
     '</INSTANCE>', "property A (uint16) has value 'x1', which is not an integer"),
    ('<INSTANCE CLASSNAME="X"><PROPERTY NAME="A" TYPE="uint8"><VALUE>256</VALUE></PROPERTY>'
     '</INSTANCE>', "property A (uint8) has value '256', which is out of range"),
    ('<INSTANCE CLASSNAME="X"><PROPERTY NAME="A" TYPE="sint8"><VALUE>-129</VALUE></PROPERTY>'
     '</INSTANCE>', "out of range"),
    ('<INSTANCE CLASSNAME="X"><PROPERTY NAME="B" TYPE="boolean"><VALUE>yes</VALUE></PROPERTY>'
     '</INSTANCE>', "property B (boolean) has value 'yes'; use TRUE or FALSE"),
    ('<INSTANCE CLASSNAME="X"><PROPERTY NAME="D" TYPE="datetime"><VALUE>2024-01-01</VALUE>'
     '</PROPERTY></INSTANCE>', "property D (datetime) has value '2024-01-01'"),
    ('<INSTANCE CLASSNAME="X"><PROPERTY NAME="R" TYPE="real64"><VALUE>1,5</VALUE></PROPERTY>'
     '</INSTANCE>', "property R (real64) has value '1,5', which is not a number"),
    ('<INSTANCE CLASSNAME="X"><PROPERTY NAME="C" TYPE="char16"><VALUE>ab</VALUE></PROPERTY>'
     '</INSTANCE>', "not one character"),
    ('<INSTANCE CLASSNAME="X"><PROPERTY NAME="A" TYPE="uint128"><VALUE>1</VALUE></PROPERTY>'
     '</INSTANCE>', "property A has the unknown TYPE 'uint128'"),
    ('<INSTANCE CLASSNAME="X"><PROPERTY NAME="A" TYPE="string"><VALUE>1</VALUE><VALUE>2</VALUE>'
     '</PROPERTY></INSTANCE>', "has more than one value"),
    ('<INSTANCE CLASSNAME="X"><PROPERTY NAME="A" TYPE="string"/><PROPERTY NAME="a" '
     'TYPE="string"/></INSTANCE>', "property a appears twice in INSTANCE X"),
    ('<INSTANCE CLASSNAME="X"><PROPERTY NAME="R" TYPE="reference"><VALUE>not a path</VALUE>'
     '</PROPERTY></INSTANCE>', "reference property R has value 'not a path'"),
    ('<INSTANCE CLASSNAME="X"><PROPERTY.ARRAY NAME="A" TYPE="uint16"><VALUE.ARRAY>'
     '<VALUE>1</VALUE><VALUE>-1</VALUE></VALUE.ARRAY></PROPERTY.ARRAY></INSTANCE>',
     "property A (uint16) has value '-1', which is out of range"),
    ('<INSTANCE CLASSNAME="X"><PROPERTY NAME="E" TYPE="string" EmbeddedObject="instance">'
     '<VALUE>&lt;FOO/&gt;</VALUE></PROPERTY></INSTANCE>',
     "property E holds a bad embedded instance (unexpected element <FOO>"),
    ('<INSTANCE CLASSNAME="X"><PROPERTY NAME="E" TYPE="uint8" EmbeddedObject="instance">'
     '</PROPERTY></INSTANCE>', "is an embedded object but has TYPE 'uint8'"),
    ('<VALUE.OBJECT><CLASS NAME="X"/></VALUE.OBJECT>', "unexpected element <CLASS> at line 1 "
                                                       "in <VALUE.OBJECT>"),
    ('<VALUE.OBJECT><INSTANCE CLASSNAME="X"/><INSTANCE CLASSNAME="X"/></VALUE.OBJECT>',
     "unexpected element <INSTANCE>"),
    ("<VALUE.NAMEDINSTANCE></VALUE.NAMEDINSTANCE>", "no INSTANCE inside"),
    ('<VALUE.NAMEDINSTANCE><INSTANCENAME CLASSNAME="X"/><INSTANCENAME CLASSNAME="X"/>'
     '<INSTANCE CLASSNAME="X"/></VALUE.NAMEDINSTANCE>', "more than one instance path"),
    ('<INSTANCE CLASSNAME="X"><PROPERTY NAME="P" TYPE="string"><VALUE>\ud800</VALUE>'
     '</PROPERTY></INSTANCE>', "not valid Unicode"),
    ('<INSTANCE CLASSNAME="X"><PROPERTY NAME="P" TYPE="string"><VALUE>\x00</VALUE>'
     '</PROPERTY></INSTANCE>', "malformed XML"),
    ('<INSTANCE CLASSNAME="X"><PROPERTY.REFERENCE NAME="R"><VALUE.REFERENCE><CLASSNAME '
     'NAME="Y"/></VALUE.REFERENCE></PROPERTY.REFERENCE></INSTANCE>',
     "unexpected element <CLASSNAME>"),
])
def test_malformed_text_is_refused(text: str, match: str) -> None:
    bad(text, match)


def test_not_a_string() -> None:
    bad(b"<INSTANCE CLASSNAME='X'/>", "expected a string, got bytes")
    bad(None, "expected a string, got NoneType")


def test_default_name_in_messages() -> None:
    with pytest.raises(IncorrectDataType, match=r"^The embedded instance is not a CIM-XML "
                                                r"INSTANCE: .*send one CIM-XML INSTANCE"):
        parse_instance("<FOO/>")


def test_doctype_and_entity_expansion_are_refused_quickly() -> None:
    laughs = ['<!DOCTYPE INSTANCE [<!ENTITY a0 "lol">']
    laughs += [f'<!ENTITY a{i} "{("&a" + str(i - 1) + ";") * 10}">' for i in range(1, 10)]
    laughs += [']><INSTANCE CLASSNAME="X"><PROPERTY NAME="P" TYPE="string"><VALUE>&a9;</VALUE>'
               '</PROPERTY></INSTANCE>']
    started = time.perf_counter()
    bad("".join(laughs), "DOCTYPE declarations are refused")
    assert time.perf_counter() - started < 1.0


def test_external_entities_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    text = (f'<!DOCTYPE INSTANCE SYSTEM "file://{secret}"><INSTANCE CLASSNAME="X"/>')
    msg = bad(text, "DOCTYPE declarations are refused")
    text = (f'<!DOCTYPE x [<!ENTITY e SYSTEM "file://{secret}">]><INSTANCE CLASSNAME="X">'
            f'<PROPERTY NAME="P" TYPE="string"><VALUE>&e;</VALUE></PROPERTY></INSTANCE>')
    msg += bad(text, "refused")
    assert "top secret" not in msg
    bad('<INSTANCE CLASSNAME="X"><PROPERTY NAME="P" TYPE="string"><VALUE>&e;</VALUE>'
        '</PROPERTY></INSTANCE>', "undefined entity")


def test_size_limit() -> None:
    filler = "x" * MAX_TEXT
    bad(f'<INSTANCE CLASSNAME="X"><PROPERTY NAME="P" TYPE="string"><VALUE>{filler}</VALUE>'
        f'</PROPERTY></INSTANCE>', f"larger than {MAX_TEXT} bytes")
    # multi-byte characters count as bytes
    bad("<INSTANCE CLASSNAME='X'/>" + "é" * (MAX_TEXT // 2 + 1), "larger than")
    ok = "x" * (MAX_TEXT // 2)
    inst = parse_instance(f'<INSTANCE CLASSNAME="X"><PROPERTY NAME="P" TYPE="string">'
                          f'<VALUE>{ok}</VALUE></PROPERTY></INSTANCE>')
    assert len(inst["P"]) == len(ok)


def test_depth_limit() -> None:
    deep = "<VALUE.OBJECT>" + "<A>" * 40 + "</A>" * 40 + "</VALUE.OBJECT>"
    bad(deep, "nested deeper than 32 levels")


def test_embedding_depth_limit() -> None:
    inst = pywbem.CIMInstance("L0", properties={"V": "leaf"})
    for level in range(1, 7):
        inst = pywbem.CIMInstance(f"L{level}", properties={"Inner": inst})
    bad(serialize_instance(inst), "embedded deeper than 4 levels")
    ok = pywbem.CIMInstance("L0", properties={"V": "leaf"})
    for level in range(1, 5):
        ok = pywbem.CIMInstance(f"L{level}", properties={"Inner": ok})
    assert parse_instance(serialize_instance(ok)) == ok
