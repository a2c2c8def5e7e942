"""Typed undo steps: one class per kind, its description and its handler together.

A job records, before each side effect, the step that takes it back (``ctx.add_undo(step)``).
Steps are frozen dataclasses; the journal (SQLite, ``undo_journal``) keeps each as its ``kind``
and its fields as JSON, exactly the rows earlier versions wrote, so a journal left by a crash is
replayed by recovery after an upgrade too. An :class:`UndoBook` knows the step classes of a
service and what they act on (``env``: e.g. the libvirt host and the store) and turns journal
rows back into steps. Every step is idempotent: recovery may replay a step whose side effect
never happened.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Generic, TypeVar

E = TypeVar("E")
S = TypeVar("S", bound="UndoStep[Any]")


class UndoStep(ABC, Generic[E]):
    """One undo record. Subclasses are frozen dataclasses with JSON-able fields."""

    kind: ClassVar[str]
    """The name stored in the journal (never change it: old journals use it)."""

    def args(self) -> dict[str, Any]:
        """The fields as stored in the journal."""
        return dataclasses.asdict(self)  # type: ignore[call-overload, no-any-return]

    @classmethod
    def from_args(cls: type[S], args: Mapping[str, Any]) -> S:
        """The step stored as ``args`` (override to read older forms of the record)."""
        return cls(**args)

    @abstractmethod
    def describe(self) -> str:
        """What undoing does, as a phrase after "could not …"."""

    @abstractmethod
    def undo(self, env: E) -> None:
        """Take the side effect back; doing it twice, or for an effect that never happened,
        is not an error."""


class UndoBook(Generic[E]):
    """The undo step classes a service knows, and the ``env`` they act on."""

    def __init__(self, steps: Iterable[type[UndoStep[E]]], env: E) -> None:
        self.env = env
        self._steps: dict[str, type[UndoStep[E]]] = {}
        for cls in steps:
            if cls.kind in self._steps:
                raise ValueError(f"two undo step classes of kind {cls.kind!r}")
            self._steps[cls.kind] = cls

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(self._steps)

    def knows(self, step: UndoStep[Any]) -> bool:
        return self._steps.get(step.kind) is type(step)

    def load(self, kind: str, args: Mapping[str, Any]) -> UndoStep[E]:
        """The step a journal row stores; LookupError for an unknown kind, TypeError or
        ValueError for arguments that do not fit it."""
        cls = self._steps.get(kind)
        if cls is None:
            raise LookupError(f"no undo step of kind {kind!r}")
        return cls.from_args(args)

    def run(self, step: UndoStep[Any]) -> None:
        step.undo(self.env)
