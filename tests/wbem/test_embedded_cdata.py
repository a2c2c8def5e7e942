"""Large embedded objects are written as CDATA sections (vsms.wbem.encode.embedded_text),
which pywbem reads back to the very same values; small ones (what sblim wbemcli reads) and
text DSP0201 forbids in CDATA are escaped."""

from __future__ import annotations

from typing import Any

import pywbem
from pywbem._tupleparse import TupleParser
from pywbem._tupletree import xml_to_tupletree_sax

from vsms.wbem import encode


def parsed(xml: str) -> Any:
    return TupleParser().parse_any(xml_to_tupletree_sax(xml, "test"))


def same(a: Any, b: pywbem.CIMInstance) -> bool:
    """The same class and property values (pywbem reads PROPAGATED as false, not None)."""
    return (isinstance(a, pywbem.CIMInstance) and a.classname == b.classname
            and dict(a.items()) == dict(b.items()))


def holder(value: object, embedded: str = "instance") -> pywbem.CIMInstance:
    return pywbem.CIMInstance("Holder", properties={"Inner": pywbem.CIMProperty(
        "Inner", value, type="string", embedded_object=embedded)})


def summary(pixels: int) -> pywbem.CIMInstance:
    return pywbem.CIMInstance("Msvm_SummaryInformation", properties={
        "Name": "A & <B> ]] > x", "Notes": "line\r\nnext",
        "ThumbnailImage": pywbem.CIMProperty(
            "ThumbnailImage", [pywbem.Uint8(i % 256) for i in range(pixels * 2)], type="uint8")})


def test_a_large_embedded_instance_is_one_cdata_section_and_reads_back_the_same() -> None:
    inner = summary(48 * 48)
    text = encode.write_instance(holder(inner))
    assert text.count("<![CDATA[") == 1 and "&lt;INSTANCE" not in text
    back = parsed(text)["Inner"]
    assert same(back, inner)  # the values (the CR, the markup characters, the bytes) intact
    small = summary(4 * 3)
    text = encode.write_instance(holder(small))
    assert "<![CDATA[" not in text and "&lt;INSTANCE" in text
    assert same(parsed(text)["Inner"], small)
    # as a method's output parameter, in an array
    out = encode.paramvalue("SummaryInformation", [inner, small], "string", "instance")
    assert out.count("<![CDATA[") == 1
    got = parsed(out)[2]
    assert len(got) == 2 and same(got[0], inner) and same(got[1], small)


def test_text_dsp0201_forbids_in_cdata_is_escaped() -> None:
    inner = summary(48 * 48)
    # an object holding a large embedded object: its text holds "]]>", so it is escaped
    outer = holder(holder(inner))
    text = encode.write_instance(outer)
    assert not text.startswith("<![CDATA[") and text.count("&lt;![CDATA[") == 1
    assert same(parsed(text)["Inner"]["Inner"], inner)
    # CIM-XML text given as a string, with "]]>" or a CR: escaped, and read back exactly
    pad = "<QUALIFIER></QUALIFIER>" * (encode.CDATA_FROM // 20)
    for given in (f"<INSTANCE>{pad}<VALUE><![CDATA[a]]></VALUE></INSTANCE>",
                  f"<INSTANCE>{pad}<VALUE>x</VALUE>\r</INSTANCE>"):
        assert encode.embedded_text(given) == encode.esc(given)
    plain = f"<INSTANCE>{pad}</INSTANCE>"
    assert encode.embedded_text(plain) == f"<![CDATA[{plain}]]>"
    assert encode.embedded_text("") == ""
