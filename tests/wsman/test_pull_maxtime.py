"""A Pull's wsen:MaxTime on the enumeration store: the items written before the deadline are
returned and the rest stays in the context; none in time leaves the context as it was."""

from __future__ import annotations

import time

from vsms.wbem.contexts import EnumerationContexts

STEP = 0.2  # seconds to write one item (injected slowness)


def slow(item: int) -> str:
    time.sleep(STEP)
    return f"<i>{item}</i>"


def test_max_time_returns_what_was_written_and_keeps_the_rest() -> None:
    store = EnumerationContexts()
    first, key = store.open("ns", "wsman-obj", list(range(6)), slow, 0, 60.0, "u")
    assert first == "" and key is not None
    # a deadline already passed: nothing written, nothing taken
    assert store.pull(key, "ns", "wsman-obj", 10, "u", time.monotonic() - 1) == ("", key, 0)
    # room for one or two items of the six asked for: those, and the context goes on
    text, nxt, count = store.pull(key, "ns", "wsman-obj", 6, "u", time.monotonic() + 1.5 * STEP)
    assert 1 <= count <= 2 and nxt == key
    assert text == "".join(f"<i>{i}</i>" for i in range(count))
    # the rest, in order, then the end
    text, nxt, rest = store.pull(key, "ns", "wsman-obj", 10, "u", time.monotonic() + 60)
    assert text == "".join(f"<i>{i}</i>" for i in range(count, 6)) and nxt is None
    assert count + rest == 6 and len(store) == 0
