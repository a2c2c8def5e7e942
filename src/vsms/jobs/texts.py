"""The wording of job outcomes: ErrorDescription fragments and summaries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def describe(kind: str, args: Mapping[str, Any]) -> str:
    """What undoing ``kind`` with ``args`` does, as a phrase after "could not …"."""
    if kind in ("remove_file", "remove_tree"):
        if "parent" in args:
            return f"remove {str(args['parent']).rstrip('/')}/{args.get('name', '?')}"
        return f"remove {args.get('path', '?')}"
    if kind == "undefine":
        return f"undefine virtual machine {args.get('guid', '?')}"
    if kind == "redefine":
        return "restore the previous definition of the virtual machine"
    if kind == "unmark_consumed":
        return f"clear the import mark of {args.get('directory', '?')}"
    details = ", ".join(f"{k}={v!r}" for k, v in sorted(args.items()))
    return f"undo {kind} ({details})" if details else f"undo {kind}"


def steps(count: int) -> str:
    """"3 undo steps", or a phrase saying there was nothing to undo."""
    if count == 0:
        return "there was nothing to undo"
    return f"{count} undo step{'s' if count != 1 else ''}"


def with_problems(text: str, problems: Sequence[str]) -> str:
    """``text`` followed by the failed undo steps, if any."""
    if not problems:
        return text
    return f"{text} (rollback incomplete: {'; '.join(problems)})"


def one_line(text: str, limit: int = 120) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
