"""What a command prints: text for people, or one JSON document for scripts (``--output json``).

Results go to stdout, errors and progress to stderr. In JSON mode a failure is also a JSON
document on stdout (``{"ok": false, "error": ...}``) so a script always gets something to parse.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import pywbem


def plain(value: Any) -> Any:
    """A CIM value as JSON-ready data: numbers, strings, booleans, lists, dicts."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return value if not isinstance(value, pywbem.CIMInt | pywbem.CIMFloat) else (
            int(value) if isinstance(value, int) else float(value))
    if isinstance(value, pywbem.CIMDateTime):
        return str(value)
    if isinstance(value, pywbem.CIMInstanceName | pywbem.CIMClassName):
        return value.to_wbem_uri()
    if isinstance(value, pywbem.CIMInstance):
        return {k: plain(p.value) for k, p in value.properties.items()}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return str(value)


class Output:
    """Prints results in the mode the user chose (``text`` or ``json``)."""

    def __init__(self, mode: str = "text", *, stdout: TextIO | None = None,
                 stderr: TextIO | None = None) -> None:
        self.json = mode == "json"
        self.stdout = stdout if stdout is not None else sys.stdout
        self.stderr = stderr if stderr is not None else sys.stderr

    def result(self, text: str | Sequence[str], data: Any) -> None:
        """A successful result: ``text`` lines, or ``data`` as JSON."""
        if self.json:
            self.stdout.write(json.dumps(plain(data), indent=2, sort_keys=True) + "\n")
        else:
            lines = [text] if isinstance(text, str) else list(text)
            for line in lines:
                self.stdout.write(line + "\n")
        self.stdout.flush()

    def table(self, rows: Sequence[Sequence[str]], header: Sequence[str]) -> list[str]:
        """Rows as aligned text lines under ``header``."""
        widths = [len(h) for h in header]
        for row in rows:
            widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        return [fmt.format(*header).rstrip()] + [fmt.format(*row).rstrip() for row in rows]

    def error(self, message: str, data: Mapping[str, Any] | None = None) -> None:
        """A failure: the message on stderr (and a JSON error document in JSON mode)."""
        self.stderr.write(f"vsms: error: {message}\n")
        self.stderr.flush()
        if self.json:
            doc = {"ok": False, "error": message, **plain(dict(data or {}))}
            self.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
            self.stdout.flush()

    def note(self, message: str) -> None:
        """A side remark for people (stderr, so it never mixes with results)."""
        self.stderr.write(message + "\n")
        self.stderr.flush()
