"""Hostile XML in config.xml and the .exp file is refused before any expansion or I/O (the
reason names the declaration or the limit, not a product of expanding it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.exportdir.conftest import GUID, Export
from vsms.errors import IncorrectDataType, ValidationFailed
from vsms.exportdir import safexml
from vsms.exportdir.layout import CONFIG, VMS_DIR
from vsms.exportdir.reader import read_export

EXP = f"{VMS_DIR}/{GUID}.exp"

LAUGHS = ('<?xml version="1.0"?>\n<!DOCTYPE lolz [\n<!ENTITY lol "lol">\n'
          + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">\n'
                    for i in range(1, 10))
          + ']>\n<vsms-export format="1">&lol9;</vsms-export>\n')
EXTERNAL = ('<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n'
            '<CIM CIMVERSION="2.0">&e;</CIM>\n')
EXTERNAL_DTD = '<!DOCTYPE CIM SYSTEM "http://192.0.2.1/cim.dtd"><CIM CIMVERSION="2.0"/>'
UNDECLARED = '<CIM CIMVERSION="2.0">&e;</CIM>'


def refused(export: Export, rel: str, data: bytes) -> list[str]:
    (export.path / rel).write_bytes(data)
    export.rehash()
    with pytest.raises(ValidationFailed) as info:
        read_export(export.path)
    return info.value.problems


def only(problems: list[str], rel: str, reason: str) -> None:
    name = rel if rel == CONFIG else repr(rel)
    assert any(p.startswith(f"{name} is refused because {reason}") for p in problems), problems


@pytest.mark.parametrize("rel", [CONFIG, EXP])
def test_billion_laughs(export: Export, rel: str) -> None:
    only(refused(export, rel, LAUGHS.encode()), rel, "it contains a document type declaration")


@pytest.mark.parametrize("rel", [CONFIG, EXP])
def test_external_entity(export: Export, rel: str) -> None:
    problems = refused(export, rel, EXTERNAL.encode())
    only(problems, rel, "it contains a document type declaration")
    assert not any("root:" in p for p in problems)


def test_external_dtd(export: Export) -> None:
    only(refused(export, EXP, EXTERNAL_DTD.encode()), EXP, "it contains a document type")


def test_undeclared_entity(export: Export) -> None:
    only(refused(export, EXP, UNDECLARED.encode()), EXP,
         "it is not well-formed XML (undefined entity")


def test_huge_config(export: Export) -> None:
    big = b"<vsms-export>" + b" " * (2 << 20) + b"</vsms-export>"
    problems = refused(export, CONFIG, big)
    assert any(p.startswith(f"'{CONFIG}' is {len(big)} bytes long, more than the limit of "
                            f"{1 << 20} bytes") for p in problems), problems


def test_huge_exp(export: Export) -> None:
    big = b'<CIM CIMVERSION="2.0">' + b"<!-- x -->" * (500 << 10) + b"</CIM>"
    problems = refused(export, EXP, big)
    assert any(p.startswith(f"'{EXP}' is {len(big)} bytes long") for p in problems), problems


@pytest.mark.parametrize("rel", [CONFIG, EXP])
def test_deep_nesting(export: Export, rel: str) -> None:
    deep = b"<a>" * 50_000 + b"</a>" * 50_000
    only(refused(export, rel, deep), rel, "its elements are nested more than 32 deep")


def test_too_many_elements(export: Export) -> None:
    many = b"<vsms-export>" + b"<a/>" * 150_000 + b"</vsms-export>"
    only(refused(export, CONFIG, many), CONFIG, "it has more than 100000 elements")


def test_parse_xml_limits_directly() -> None:
    with pytest.raises(IncorrectDataType, match="more than the limit of 10"):
        safexml.parse_xml(b"<a>0123456789</a>", max_bytes=10, max_depth=4, max_elements=4)
    tree = safexml.parse_xml(b"<a x='1'>t<b/>u&amp;</a>", max_bytes=100, max_depth=4,
                             max_elements=4)
    assert tree == ("a", {"x": "1"}, ["t", ("b", {}, []), "u&"])


def test_nothing_outside_is_read(export: Export, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    data = (f'<!DOCTYPE x [<!ENTITY e SYSTEM "{secret.as_uri()}">]>'
            '<vsms-export format="1"><source-host>&e;</source-host></vsms-export>')
    problems = refused(export, CONFIG, data.encode())
    assert not any("TOPSECRET" in p for p in problems)
