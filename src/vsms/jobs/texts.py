"""The wording of job outcomes: ErrorDescription fragments and summaries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def undescribed(kind: str, args: Mapping[str, Any]) -> str:
    """A journal row that is not (or no longer) a known undo step, as a phrase after
    "could not …"."""
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
