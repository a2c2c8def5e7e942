"""The event-kept state table (vsms.virt.livestates) on its own: which reads it trusts."""

from __future__ import annotations

import libvirt
import pytest

from vsms.virt import livestates
from vsms.virt.livestates import LiveStates

RUNNING, SHUTOFF = libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_SHUTOFF
A, B = "AAAAAAAA-0000-0000-0000-000000000001", "BBBBBBBB-0000-0000-0000-000000000002"


def test_an_entry_is_trusted_until_an_event_of_its_domain_or_a_reset() -> None:
    t = LiveStates()
    assert t.valid([A]) == ({}, [A])  # nothing read yet
    t.put(A, SHUTOFF, False, t.begin())
    t.put(B, RUNNING, False, t.begin())
    found, missing = t.valid([A, B])
    assert (found[A].raw, found[B].raw, missing) == (SHUTOFF, RUNNING, [])
    t.mark(A.lower())  # an event of A (GUIDs in any case): A only is read again
    found, missing = t.valid([A, B])
    assert list(found) == [B] and missing == [A]
    t.put(A, RUNNING, False, t.begin())
    assert t.valid([A])[0][A].raw == RUNNING
    t.reset()  # a new connection: nothing is trusted, and older reads are refused
    assert t.valid([A, B]) == ({}, [A, B])


def test_a_read_that_began_before_an_event_or_a_newer_read_never_wins() -> None:
    t = LiveStates()
    old = t.begin()
    t.mark(A)  # the domain changed while that read was under way
    t.put(A, RUNNING, False, old)
    assert t.valid([A]) == ({}, [A])  # what it saw may predate the change
    new = t.begin()
    t.put(A, SHUTOFF, False, new)
    t.put(A, RUNNING, False, old)  # late arrival of the older read: ignored
    assert t.valid([A])[0][A].raw == SHUTOFF
    before_reset = t.begin()
    t.reset()
    t.put(A, RUNNING, False, before_reset)
    assert t.valid([A]) == ({}, [A])


def test_a_listing_forgets_only_domains_gone_before_it_began() -> None:
    t = LiveStates()
    t.put(A, RUNNING, False, t.begin())
    t.put(B, RUNNING, False, t.begin())
    listing = t.begin()
    t.mark(B)  # B appeared again after the listing began
    t.keep_only(set(), listing)
    assert t.valid([A, B]) == ({}, [A, B])
    assert B in t._last_event and A not in t._entries and B not in t._entries


def test_the_event_marks_stay_bounded_and_dropping_one_voids_its_entry(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(livestates, "MARKS", 8)
    t = LiveStates()
    begun = t.begin()
    t.mark(A)  # A changed after that read began...
    t.put(A, RUNNING, False, begun)  # ...so this read of it is void
    t.put(B, RUNNING, False, t.begin())
    for n in range(20):  # other domains' events push A's mark out
        t.mark(f"{n:08d}-0000-0000-0000-000000000000")
    assert len(t._last_event) <= 8
    assert A not in t._last_event
    found, missing = t.valid([A, B])
    assert list(found) == [B] and missing == [A]  # A's void read did not come back to life


def test_the_version_changes_exactly_when_what_valid_answers_may() -> None:
    """inventory() gives its last answer again while this version (and the cache's) stay:
    every change of what ``valid`` answers must move it; reads and events that change
    nothing it answers must not (else a host whose other domains churn never reuses one)."""
    t = LiveStates()
    v = t.version()
    t.put(A, SHUTOFF, False, t.begin())
    assert t.version() != v  # a new entry
    v = t.version()
    t.put(A, SHUTOFF, False, t.begin())  # a newer read that saw the same: nothing to tell
    t.mark(B)  # an event of a domain without an entry (another instance's, say)
    assert t.version() == v
    t.mark(A)  # voids A's entry
    assert t.version() != v and t.valid([A]) == ({}, [A])
    v = t.version()
    t.mark(A)  # already void: valid() answers the same
    assert t.version() == v
    t.put(A, SHUTOFF, False, t.begin())  # valid again, same state: still a change
    assert t.version() != v
    v = t.version()
    t.put(A, SHUTOFF, True, t.begin())  # saved now
    assert t.version() != v
    v = t.version()
    t.keep_only(set(), t.begin())  # A vanished from a listing: forgotten
    assert t.version() != v and t.valid([A]) == ({}, [A])
    t.put(A, RUNNING, False, t.begin())
    v = t.version()
    t.reset()
    assert t.version() != v
