"""Fuzz target: ``vsms.wbem.protocol.CimXmlHandler.handle`` on arbitrary request bodies.

The handler serves the real ``root/virtualization`` and ``interop`` schemas. Providers without
side effects stand in for the live ones: each served class has one instance (keys filled in),
and every extrinsic method parses its embedded-instance parameters with ``as_instance`` (as the
real providers do) and returns 0. The CIMMethod/CIMObject headers are taken from the body when
it decodes, so that fuzzed bodies reach the dispatcher.

Allowed outcomes: a ``Reply`` whose status is not 500 (500 means an exception escaped the
decoder or the dispatcher); a 200 reply must be a well-formed CIM-XML ``MESSAGE``.

Run: ``.venv/bin/python -m fuzz.fuzz_cimxml -max_total_time=600 NEW_DIR fuzz/corpus/cimxml``
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import pywbem

from fuzz.runner import fuzz, instrumented

with instrumented():
    from vsms.cim import names
    from vsms.cim.schema import load_schema
    from vsms.providers.base import Provider
    from vsms.providers.common import as_instance, guarded
    from vsms.providers.interop import install_interop
    from vsms.providers.registry import Registry
    from vsms.wbem.decode import IMethodCall, ProtocolError, message
    from vsms.wbem.protocol import CimXmlHandler, Reply
    from vsms.wbem.xmltree import XmlError, parse

HOST = "fuzzhost"
SERVED = (names.VSMS, names.IMAGE_SERVICE, names.COMPUTER_SYSTEM, names.CONCRETE_JOB,
          names.VSSD, names.RASD)


class StaticProvider(Provider):
    """One instance per class, keys filled from the class; methods only parse their input."""

    classnames = SERVED

    def __init__(self, registry: Registry) -> None:
        self._instances: dict[str, pywbem.CIMInstance] = {}
        for cn in SERVED:
            cls = registry.get_class(names.NAMESPACE, cn)
            keys = {n: cn if n.endswith("CreationClassName") else f"{cn}-key"
                    for n, p in cls.properties.items() if "key" in
                    {q.lower() for q in p.qualifiers}}
            path = pywbem.CIMInstanceName(cn, keybindings=keys, namespace=names.NAMESPACE,
                                          host=HOST)
            self._instances[cn.lower()] = pywbem.CIMInstance(
                cn, properties={**keys, "ElementName": f"fuzz {cn}"}, path=path)

    def enumerate(self, classname: str) -> Iterable[pywbem.CIMInstance]:
        return [self._instances[classname.lower()]]

    def invoke(self, target: Any, method: str,
               params: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        def parse_all(_target: Any, values: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
            for name, value in values.items():
                items = value if isinstance(value, list) else [value]
                for item in items:
                    if isinstance(item, str) and item.lstrip().startswith("<"):
                        as_instance(item, name)
            return 0, {}

        return guarded(parse_all)(target, params)


@functools.cache
def handler() -> CimXmlHandler:
    """The handler, built once per process (compiling the MOF takes about a second)."""
    logging.disable(logging.CRITICAL)  # the handler logs every internal error it answers
    registry = Registry(HOST)
    schema = load_schema(names.NAMESPACE)
    registry.add_namespace(names.NAMESPACE, schema.classes, schema.qualifiers)
    registry.add_provider(names.NAMESPACE, StaticProvider(registry))
    install_interop(registry)
    return CimXmlHandler(registry, HOST)


def headers_for(body: bytes) -> dict[str, str]:
    """CIM headers that match the body when it decodes, fixed ones when it does not."""
    headers = {"content-type": 'application/xml; charset="utf-8"',
               "cimoperation": "MethodCall", "cimprotocolversion": "1.0",
               "cimmethod": "EnumerateInstances", "cimobject": names.NAMESPACE}
    try:
        call = message(parse(body)).call
    except (XmlError, ProtocolError):
        return headers
    headers["cimmethod"] = call.name
    if isinstance(call, IMethodCall):
        headers["cimobject"] = call.namespace
    else:
        target = getattr(call, "target", None)
        if target is not None:
            headers["cimobject"] = f"{target.namespace}:{target.classname}"
    return headers


def check_reply(reply: Reply) -> None:
    if not isinstance(reply, Reply):
        raise AssertionError(f"handle returned {type(reply).__name__}, not a Reply")
    if reply.status == 500:
        raise AssertionError(f"internal error (HTTP 500): {reply.detail}")
    if reply.status == 200:
        root = parse(reply.body)
        if root.name != "CIM" or [k.name for k in root.kids] != ["MESSAGE"]:
            raise AssertionError("a 200 reply is not a CIM-XML MESSAGE")


def test_one_input(data: bytes) -> None:
    check_reply(handler().handle("POST", headers_for(data), data))


def main() -> None:
    handler()
    fuzz(test_one_input)


if __name__ == "__main__":
    main()
    sys.exit(0)
