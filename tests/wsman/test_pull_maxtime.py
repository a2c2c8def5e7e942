"""A Pull's wsen:MaxTime on the enumeration store: the items written before the deadline are
returned and the rest stays in the context; none in time leaves the context as it was."""

from __future__ import annotations

import time

import pytest

from vsms.wbem import xmltree
from vsms.wbem.contexts import EnumerationContexts
from vsms.wsman import names, ops
from vsms.wsman.soap import Fault, Request

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


def pull_request(key: str, *, most: int, max_time: str | None, timeout: float | None) -> Request:
    """A parsed wsen:Pull for ``key`` (as the handler gives it to ops.pull)."""
    extra = f"<n:MaxTime>{max_time}</n:MaxTime>" if max_time else ""
    body = xmltree.parse(
        f'<n:Pull xmlns:n="{names.WSEN}"><n:EnumerationContext>uuid:{key}'
        f"</n:EnumerationContext><n:MaxElements>{most}</n:MaxElements>{extra}</n:Pull>"
        .encode(), namespaces=True)
    return Request(names.PULL, "uuid:1", None, timeout=timeout, body=body)


def test_operation_timeout_never_drops_the_items_a_pull_took() -> None:
    """A Pull slower than its OperationTimeout returns what it wrote by then and leaves the
    rest in the context (before, the handler found the timeout after the items had been taken
    from the context, answered TimedOut, and those items were lost)."""
    store = EnumerationContexts()
    _, key = store.open(ops.CONTEXTS, "wsman-obj", list(range(6)), slow, 0, 60.0, "u")
    assert key is not None
    seen: list[str] = []
    started = time.monotonic()
    text = ops.pull(None, store, pull_request(key, most=6, max_time=None,  # type: ignore[arg-type]
                                              timeout=1.5 * STEP), "u", started)
    assert "<n:EndOfSequence/>" not in text and f"uuid:{key}" in text
    seen += [f"<i>{i}</i>" for i in range(6) if f"<i>{i}</i>" in text]
    assert 1 <= len(seen) <= 2
    # an OperationTimeout already spent: a TimedOut fault, and nothing is taken
    with pytest.raises(Fault) as caught:
        ops.pull(None, store, pull_request(key, most=6, max_time=None,  # type: ignore[arg-type]
                                           timeout=0.0), "u", time.monotonic() - 1)
    assert caught.value.subcode == "w:TimedOut"
    text = ops.pull(None, store, pull_request(key, most=10, max_time="PT60S",  # type: ignore[arg-type]
                                              timeout=60.0), "u", time.monotonic())
    assert "<n:EndOfSequence/>" in text
    seen += [f"<i>{i}</i>" for i in range(6) if f"<i>{i}</i>" in text]
    assert seen == [f"<i>{i}</i>" for i in range(6)]
