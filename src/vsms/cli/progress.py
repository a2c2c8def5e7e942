"""Job progress on stderr: a live bar on a terminal, plain lines otherwise.

Progress never goes to stdout, so ``--output json`` stays machine-readable. On a terminal the
bar is redrawn in place; elsewhere one line is printed each time the percentage or the job's
status text changes.
"""

from __future__ import annotations

import shutil
import sys
from typing import TextIO

_BAR = 30


class JobProgress:
    """Shows the PercentComplete and JobStatus of one job as it runs."""

    def __init__(self, label: str, *, stream: TextIO | None = None,
                 live: bool | None = None, quiet: bool = False) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.quiet = quiet
        self._last: tuple[int, str] | None = None
        self._drawn = False

    def update(self, percent: int, status: str = "") -> None:
        """Show ``percent`` (0..100) and the job's status text, if it changed."""
        percent = max(0, min(100, int(percent)))
        if self.quiet or self._last == (percent, status):
            return
        self._last = (percent, status)
        if self.live:
            filled = _BAR * percent // 100
            bar = "#" * filled + "-" * (_BAR - filled)
            line = f"{self.label} [{bar}] {percent:3d}%  {status}"
            width = max(20, shutil.get_terminal_size((100, 24)).columns - 1)
            self.stream.write("\r\x1b[K" + line[:width])
            self._drawn = True
        else:
            self.stream.write(f"{self.label}: {percent}%{'  ' + status if status else ''}\n")
        self.stream.flush()

    def close(self) -> None:
        """End the bar's line (a terminal bar is left showing its last state)."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
