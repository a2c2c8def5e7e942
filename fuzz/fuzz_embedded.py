"""Fuzz target: ``vsms.cim.embedded.parse_instance`` on arbitrary text.

Allowed outcomes: a ``pywbem.CIMInstance``, or ``IncorrectDataType``. An accepted instance must
survive a round trip: ``serialize_instance`` writes it and ``parse_instance`` reads back an
equal instance (paths aside). Anything else (another exception, a round trip that changes or
refuses the instance) is a defect.

Run: ``.venv/bin/python -m fuzz.fuzz_embedded -max_total_time=600 NEW_DIR fuzz/corpus/embedded``
"""

from __future__ import annotations

import sys
import warnings

from fuzz.runner import fuzz, instrumented

with instrumented():
    from vsms.cim.embedded import parse_instance, serialize_instance
    from vsms.errors import IncorrectDataType


def test_one_input(data: bytes) -> None:
    text = data.decode("utf-8", "surrogateescape")
    try:
        inst = parse_instance(text, what="Fuzz")
    except IncorrectDataType:
        return
    inst.path = None
    with warnings.catch_warnings():  # pywbem warns about a reference without keys; we allow it
        warnings.simplefilter("ignore")
        text = serialize_instance(inst)
    again = parse_instance(text, what="Round trip")
    again.path = None
    if again != inst:
        raise AssertionError(f"round trip changed the instance:\n{inst!r}\n{again!r}")


def main() -> None:
    fuzz(test_one_input)


if __name__ == "__main__":
    main()
    sys.exit(0)
