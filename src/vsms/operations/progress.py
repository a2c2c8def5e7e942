"""Turn byte counts of the phases of a job into one honest PercentComplete."""

from __future__ import annotations

from collections.abc import Callable


def offset(report: Callable[[int], None], base: int) -> Callable[[int], None]:
    """A byte callback that adds ``base`` (bytes of earlier files of the same phase)."""
    return lambda n: report(base + n)


class PhaseProgress:
    """A job made of weighted phases; each phase reports bytes done out of its own total.

    ``report`` receives a percentage in [0, 99]; the job engine sets 100 on completion.
    """

    def __init__(self, report: Callable[[float], None], weights: dict[str, float]) -> None:
        self._report = report
        total = sum(w for w in weights.values() if w > 0) or 1.0
        self._start: dict[str, float] = {}
        self._span: dict[str, float] = {}
        at = 0.0
        for name, weight in weights.items():
            span = 99.0 * max(weight, 0.0) / total
            self._start[name] = at
            self._span[name] = span
            at += span

    def phase(self, name: str, total: int) -> Callable[[int], None]:
        """A byte-progress callback for phase ``name`` whose full size is ``total`` bytes."""
        start, span = self._start[name], self._span[name]

        def on_bytes(done: int) -> None:
            frac = 1.0 if total <= 0 else min(max(done / total, 0.0), 1.0)
            self._report(start + span * frac)

        return on_bytes

    def done(self, name: str) -> None:
        self._report(self._start[name] + self._span[name])
