"""The fast writer against pywbem's own serialisation, through pywbem's tuple parser."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pywbem
from pywbem._tupleparse import TupleParser
from pywbem._tupletree import xml_to_tupletree_sax

from tests.wbem.model import compile_model
from vsms.wbem import encode
from vsms.wbem.classxml import cim_class, qualifier_declaration


def parsed(xml: str) -> Any:
    return TupleParser().parse_any(xml_to_tupletree_sax(xml, "test"))


def strip_values(obj: object) -> object:
    """The tuple parser gives (name, attrs, value) tuples for some wrappers: keep the value."""
    return obj[2] if isinstance(obj, tuple) and len(obj) == 3 else obj


def sample_instance(path: pywbem.CIMInstanceName | None) -> pywbem.CIMInstance:
    inner = pywbem.CIMInstance("X_Inner", properties={"A": "in <side> & \"quoted\""})
    ref = pywbem.CIMInstanceName("X_Other", {"K": "v1", "N": pywbem.Uint32(7)},
                                 namespace="root/x", host="h1")
    inst = pywbem.CIMInstance("X_Sample", path=path)
    props = [
        pywbem.CIMProperty("S", "plain"),
        pywbem.CIMProperty("Special", "a&b <c> \"d\" 'e' \n\ttab ünïcödé €"),
        pywbem.CIMProperty("Empty", ""),
        pywbem.CIMProperty("Null", None, type="string"),
        pywbem.CIMProperty("NullArray", None, type="uint16", is_array=True),
        pywbem.CIMProperty("B", True),
        pywbem.CIMProperty("BF", False),
        pywbem.CIMProperty("U8", pywbem.Uint8(255)),
        pywbem.CIMProperty("S8", pywbem.Sint8(-128)),
        pywbem.CIMProperty("U16", pywbem.Uint16(65535)),
        pywbem.CIMProperty("S16", pywbem.Sint16(-5)),
        pywbem.CIMProperty("U32", pywbem.Uint32(4096)),
        pywbem.CIMProperty("S32", pywbem.Sint32(-2**31)),
        pywbem.CIMProperty("U64", pywbem.Uint64(2**64 - 1)),
        pywbem.CIMProperty("S64", pywbem.Sint64(-2**63)),
        pywbem.CIMProperty("R32", pywbem.Real32(1.1)),
        pywbem.CIMProperty("R64", pywbem.Real64(1e-300)),
        pywbem.CIMProperty("R64Int", pywbem.Real64(3.0)),
        pywbem.CIMProperty("C16", pywbem.Char16("x")),
        pywbem.CIMProperty("When", pywbem.CIMDateTime("20240229235959.123456-300")),
        pywbem.CIMProperty("Span", pywbem.CIMDateTime(timedelta(days=2, seconds=61))),
        pywbem.CIMProperty("Arr", ["a", None, "c&d"], type="string"),
        pywbem.CIMProperty("EmptyArr", [], type="uint32"),
        pywbem.CIMProperty("NumArr", [pywbem.Uint16(1), pywbem.Uint16(2)]),
        pywbem.CIMProperty("Ref", ref),
        pywbem.CIMProperty("LocalRef", pywbem.CIMInstanceName("X_L", {"K": 1}, namespace="a/b")),
        pywbem.CIMProperty("NullRef", None, type="reference", reference_class="X_Other"),
        pywbem.CIMProperty("Emb", inner, embedded_object="instance"),
        pywbem.CIMProperty("EmbArr", [inner, inner], embedded_object="instance"),
        pywbem.CIMProperty("Origin", "o", class_origin="X_Base", propagated=True),
    ]
    for p in props:
        inst.properties[p.name] = p
    inst.qualifiers["Description"] = pywbem.CIMQualifier("Description", "inst qual")
    return inst


def keyed_path(**kw: object) -> pywbem.CIMInstanceName:
    keys = {"Name": "n&<>\"1", "Num": pywbem.Uint16(3), "Flag": True,
            "When": pywbem.CIMDateTime("20240101000000.000000+000"), "Letter": pywbem.Char16("z"),
            "Ref": pywbem.CIMInstanceName("X_R", {"Id": "r"}, namespace="root/x")}
    return pywbem.CIMInstanceName("X_Sample", keys, **kw)


def test_instance_forms_parse_like_pywbem() -> None:
    cases = [
        (sample_instance(None), lambda i: encode.instance(i)),
        (sample_instance(keyed_path()),
         lambda i: encode.named_instance(i, encode.instance(i))),
        (sample_instance(keyed_path(namespace="root/x", host="myhost")),
         lambda i: encode.instance_with_path(i, encode.instance(i), "myhost", "root/x")),
    ]
    for inst, write in cases:
        ours = write(inst)
        theirs = inst.tocimxmlstr()
        assert strip_values(parsed(ours)) == strip_values(parsed(theirs))
        assert parsed(ours) == parsed(theirs)


def test_carriage_return_survives() -> None:
    """pywbem writes a raw CR, which XML parsers turn into LF; ours keeps it."""
    inst = pywbem.CIMInstance("X", properties={"T": "line1\r\nline2"})
    assert parsed(encode.instance(inst)).properties["T"].value == "line1\r\nline2"


def test_paths_and_values_parse_like_pywbem() -> None:
    path = keyed_path(namespace="root/x", host="myhost")
    for p in (path, keyed_path(namespace="root/x"), keyed_path()):
        assert parsed(encode.any_path(p)) == parsed(p.tocimxmlstr())
    cpath = pywbem.CIMClassName("X_C", namespace="root/x", host="h")
    assert parsed(encode.any_path(cpath)) == parsed(cpath.tocimxmlstr())
    for v in ["s<&>", True, pywbem.Uint64(5), [pywbem.Sint8(-1), None], path]:
        assert parsed(encode.value(v)) == parsed(pywbem.tocimxmlstr(v))


def test_classes_and_qualifier_declarations_parse_like_pywbem() -> None:
    classes, quals = compile_model()
    for cls in classes:
        assert parsed(cim_class(cls)) == parsed(cls.tocimxmlstr()), cls.classname
    for q in quals:  # pywbem's parser refuses pywbem's own SCOPE ANY="…": compare with q
        ours = parsed(qualifier_declaration(q))
        want = {k: bool(v) or bool(q.scopes.get("ANY")) for k, v in q.scopes.items()
                if k != "ANY"}
        assert {k: bool(v) for k, v in ours.scopes.items()} == want, q.name
        def flavors(d: pywbem.CIMQualifierDeclaration) -> tuple[bool, bool, bool]:
            return (d.overridable is not False, d.tosubclass is not False, bool(d.translatable))

        assert (ours.name, ours.type, ours.value, ours.is_array, flavors(ours)) == (
            q.name, q.type, q.value, q.is_array, flavors(q))


def test_no_self_closing_tags_anywhere() -> None:
    classes, quals = compile_model()
    inst = sample_instance(keyed_path(namespace="root/x", host="h"))
    out = "".join([encode.instance_with_path(inst, encode.instance(inst), "h", "root/x"),
                   *(cim_class(c) for c in classes), *(qualifier_declaration(q) for q in quals),
                   encode.paramvalue("EnumerationContext", None, None)])
    assert "/>" not in out
    assert re.search(r"<[A-Z.]+[^>]*/>", out) is None


def test_property_filter_and_class_origin() -> None:
    inst = sample_instance(None)
    out = parsed(encode.instance(inst, keep={"s", "origin"}, origins=False, quals=False))
    assert list(out.properties) == ["S", "Origin"]
    assert out.properties["Origin"].class_origin is None
    assert not out.qualifiers
    out = parsed(encode.instance(inst, keep={"s"}, origins={"s": "X_Base"}))
    assert out.properties["S"].class_origin == "X_Base"


def cs_instance(i: int) -> pywbem.CIMInstance:
    """An Msvm_ComputerSystem-like instance (the issue's benchmark object)."""
    name = f"{i:08X}-1234-4321-ABCD-0123456789AB"
    path = pywbem.CIMInstanceName("Msvm_ComputerSystem", {
        "CreationClassName": "Msvm_ComputerSystem", "Name": name},
        namespace="root/virtualization", host="HOST")
    inst = pywbem.CIMInstance("Msvm_ComputerSystem", path=path)
    when = pywbem.CIMDateTime("20240102030405.000000+000")
    values = {
        "CreationClassName": "Msvm_ComputerSystem", "Name": name, "ElementName": f"vm {i}",
        "Caption": "Virtual Machine", "Description": "Microsoft Virtual Machine",
        "EnabledState": pywbem.Uint16(2), "RequestedState": pywbem.Uint16(12),
        "HealthState": pywbem.Uint16(5), "EnabledDefault": pywbem.Uint16(2),
        "OperationalStatus": [pywbem.Uint16(2)], "StatusDescriptions": ["Operating normally"],
        "InstallDate": when, "TimeOfLastStateChange": when,
        "OnTimeInMilliseconds": pywbem.Uint64(123456), "ProcessID": pywbem.Uint32(4242),
        "Dedicated": [pywbem.Uint16(0)], "ResetCapability": pywbem.Uint16(1),
    }
    for k, v in values.items():
        inst[k] = v
    for k in ("Status", "NameFormat", "PrimaryOwnerName", "PrimaryOwnerContact",
              "OtherEnabledState"):
        inst[k] = pywbem.CIMProperty(k, None, type="string")
    return inst


def test_fast_property_reader_matches_pywbem() -> None:
    """The slot reader must see what pywbem's public properties show (guards pywbem upgrades)."""
    p = pywbem.CIMProperty("P", [pywbem.Uint8(1)], class_origin="C", propagated=True,
                           qualifiers={"Q": pywbem.CIMQualifier("Q", "v")})
    fields = encode.PROPERTY_FIELDS(p)
    public = tuple(getattr(p, f) for f in encode._FIELDS)
    assert fields[:7] == public[:7] and fields[8:] == public[8:]
    assert dict(fields[7] or {}) == dict(public[7])
