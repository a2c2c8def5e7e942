"""The shared ``main`` of the harnesses: atheris with our modules instrumented for coverage."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from typing import Any


def _fuzzing() -> bool:
    """True when a harness runs as the main program (``python -m fuzz.fuzz_x``)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return bool(spec is not None and spec.name.startswith("fuzz.fuzz_"))


def instrumented() -> Any:
    """Instrument the vsms modules imported inside this context for coverage, when fuzzing;
    a no-op when a harness is imported (by the tests, to replay the corpus)."""
    if not _fuzzing():
        return contextlib.nullcontext()
    import atheris

    return atheris.instrument_imports(include=["vsms"])


def fuzz(target: Callable[[bytes], None], argv: list[str] | None = None) -> None:
    """Run ``target`` under atheris with libFuzzer's command line (``-runs=N``,
    ``-max_total_time=S``, corpus directories: new inputs go to the first one)."""
    import atheris  # imported here: the targets themselves run without atheris

    args = list(sys.argv if argv is None else argv)
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None:  # libFuzzer runs argv[0] through the shell for -merge and -fork
        args[0] = f"{sys.executable} -m {spec.name}"
    atheris.Setup(args, target)
    atheris.Fuzz()
