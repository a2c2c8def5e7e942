"""The undo of an in-place import's directory mark clears only that import's own mark."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vsms.operations.undo import undo_handlers
from vsms.store.db import Store
from vsms.virt.host import VirtHost

WINNER = "0B5C34C1-4C0A-4C3B-9E43-6C2B2F0D7A11"
LOSER = "5E3F1D2A-7B6C-4D8E-9F01-A2B3C4D5E6F7"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "db.sqlite3")
    yield s
    s.close()


def test_unmark_only_clears_its_own_mark(store: Store, tmp_path: Path) -> None:
    host = VirtHost("test:///default")
    try:
        book = undo_handlers(host, store)

        def unmark(args: dict[str, str]) -> None:
            book.run(book.load("unmark_consumed", args))

        directory = str(tmp_path)
        store.mark_consumed(directory, WINNER)
        unmark({"directory": directory, "guid": LOSER})  # the loser of a race rolls back
        assert store.consumed(directory) == WINNER
        unmark({"directory": directory, "guid": WINNER.lower()})
        assert store.consumed(directory) is None
        unmark({"directory": directory, "guid": WINNER})  # idempotent
        store.mark_consumed(directory, WINNER)
        unmark({"directory": directory})  # a record written before the guid was recorded
        assert store.consumed(directory) is None
    finally:
        host.close()
