"""Connection admission and the request-body budget, without sockets (the server tests and
tests/security/test_outside_attack.py drive them over real connections)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from vsms.errors import InvalidParameter
from vsms.wbem.admission import Admission, BodyBudget, Conn, HeapTrim


class Closed:
    def __init__(self) -> None:
        self.closed: list[str] = []

    def closer(self, name: str) -> Callable[[], None]:
        return lambda: self.closed.append(name)


def test_per_source_limit() -> None:
    adm = Admission(max_connections=10, max_per_source=2)
    c = Closed()
    assert isinstance(adm.admit("10.0.0.1", c.closer("a")), Conn)
    assert isinstance(adm.admit("10.0.0.1", c.closer("b")), Conn)
    why = adm.admit("10.0.0.1", c.closer("c"))
    assert why == ("too many connections from 10.0.0.1 (limit 2 per address); close idle ones "
                   "or retry later")
    assert isinstance(adm.admit("10.0.0.2", c.closer("d")), Conn)
    assert c.closed == []


def test_oldest_idle_unauthenticated_is_evicted_and_logged_in_ones_are_kept() -> None:
    adm = Admission(max_connections=4, max_per_source=10, max_unauthenticated=2)
    c = Closed()
    kept = adm.admit("s", c.closer("kept"))
    assert isinstance(kept, Conn)
    adm.authenticated(kept)
    busy = adm.admit("s", c.closer("busy"))
    assert isinstance(busy, Conn)
    busy.waiting = False  # its request is being read or authenticated: not evicted
    idle = adm.admit("s", c.closer("idle"))
    assert isinstance(idle, Conn)
    newcomer = adm.admit("s", c.closer("new"))
    assert isinstance(newcomer, Conn)
    assert c.closed == ["idle"] and idle.evicted and adm.evictions == 1
    assert (len(adm), adm.unauthenticated, adm.from_source("s")) == (3, 2, 3)
    newcomer.waiting = False
    assert adm.admit("s", c.closer("x")) == "too many connections (limit 4); retry later"
    adm.release(idle)  # the evicted connection's own clean-up: nothing counted twice
    adm.release(busy)
    assert (len(adm), adm.unauthenticated) == (2, 1)


def test_admission_limits_are_checked() -> None:
    with pytest.raises(InvalidParameter, match="max_unauthenticated_connections"):
        Admission(max_connections=4, max_unauthenticated=5)


def test_body_budget() -> None:
    budget = BodyBudget(100)
    assert budget.take(60) and budget.take(40)
    assert not budget.take(1)
    budget.give(60)
    assert budget.take(50) and not budget.take(11)
    budget.give(40)
    budget.give(50)
    assert (budget.used, budget.peak) == (0, 100)


def test_heap_trim_after_a_burst() -> None:
    trim = HeapTrim(bytes_after=100, closes_after=3)
    assert not trim.due()
    trim.passed(60)
    trim.closed()
    trim.closed()
    assert not trim.due()
    trim.passed(40)
    assert trim.due() and not trim.due()  # once per burst
    for _ in range(3):
        trim.closed()
    assert trim.due() and trim.trims == 2
