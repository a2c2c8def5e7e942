"""The enumeration-context store: per-user and global caps, idle expiry, owners kept apart."""

from __future__ import annotations

import pytest

from vsms.errors import InvalidParameter
from vsms.wbem.contexts import ContextLimit, EnumerationContexts, UnknownContext

ITEMS = list(range(10))
NS = "root/virtualization"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _open(store: EnumerationContexts, owner: str | None, timeout: float = 60.0) -> str:
    _, key = store.open(NS, "k", ITEMS, str, 1, timeout, owner=owner)
    assert key is not None
    return key


def test_one_user_cannot_take_everyones_contexts() -> None:
    store = EnumerationContexts(max_open=8, max_per_owner=3)
    for _ in range(3):
        _open(store, "reader")
    with pytest.raises(ContextLimit, match="'reader' has 3 open enumerations, the limit per"):
        _open(store, "reader")
    admin = _open(store, "admin")  # another user still gets one
    assert store.pull(admin, NS, "k", 100, owner="admin")[1] is None  # read to the end
    assert store.owned("reader") == 3 and store.owned("admin") == 0


def test_global_cap_still_holds() -> None:
    store = EnumerationContexts(max_open=4, max_per_owner=3)
    for user in ("a", "a", "a", "b"):
        _open(store, user)
    with pytest.raises(ContextLimit, match="4 enumerations are open, the limit of this server"):
        _open(store, "c")


def test_idle_contexts_expire_and_free_the_users_share() -> None:
    clock = Clock()
    store = EnumerationContexts(max_open=8, max_per_owner=2, clock=clock)
    old = _open(store, "reader", timeout=10)
    _open(store, "reader", timeout=100)
    clock.now = 11
    fresh = _open(store, "reader")  # the idle one expired, its place is free again
    with pytest.raises(UnknownContext):
        store.pull(old, NS, "k", 1, owner="reader")
    clock.now = 60
    assert store.pull(fresh, NS, "k", 1, owner="reader")[1] == fresh  # a pull renews it
    clock.now = 115
    assert store.pull(fresh, NS, "k", 1, owner="reader")[1] == fresh


def test_another_users_context_is_not_found() -> None:
    store = EnumerationContexts(max_open=8, max_per_owner=2)
    key = _open(store, "alice")
    with pytest.raises(UnknownContext, match="does not exist"):
        store.pull(key, NS, "k", 1, owner="bob")
    with pytest.raises(UnknownContext):
        store.close(key, NS, owner="bob")
    store.close(key, NS, owner="alice")
    assert len(store) == 0


def test_per_user_cap_must_stay_below_the_global_one() -> None:
    with pytest.raises(InvalidParameter, match="pull_max_per_user"):
        EnumerationContexts(max_open=32, max_per_owner=32)
