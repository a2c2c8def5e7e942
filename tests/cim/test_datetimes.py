"""CIM timestamps (always written in UTC) and intervals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import pywbem

from vsms.cim.datetimes import MAX_INTERVAL, from_cim, interval, to_cim
from vsms.errors import IncorrectDataType, InvalidParameter


def test_timestamps_are_written_in_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    value = to_cim(datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=plus_two))
    assert str(value) == "20240102010405.000006+000"
    assert value.minutes_from_utc == 0 and not value.is_interval


def test_naive_timestamps_are_taken_as_utc() -> None:
    assert str(to_cim(datetime(2024, 2, 29, 23, 59, 59))) == "20240229235959.000000+000"


@pytest.mark.parametrize(("td", "text"), [
    (timedelta(minutes=5), "00000000000500.000000:000"),
    (timedelta(0), "00000000000000.000000:000"),
    (timedelta(days=3, hours=4, seconds=7, microseconds=8), "00000003040007.000008:000"),
    (MAX_INTERVAL, "99999999235959.999999:000"),
])
def test_intervals(td: timedelta, text: str) -> None:
    value = interval(td)
    assert str(value) == text and value.is_interval
    assert from_cim(value) == td
    assert from_cim(text) == td


def test_bad_intervals() -> None:
    with pytest.raises(InvalidParameter, match="cannot be negative"):
        interval(timedelta(seconds=-1))
    with pytest.raises(InvalidParameter, match="at most 99999999 days"):
        interval(MAX_INTERVAL + timedelta(microseconds=1))


def test_from_cim_gives_aware_utc_datetimes() -> None:
    when = from_cim("20240102030405.000006+120")
    assert when == datetime(2024, 1, 2, 1, 4, 5, 6, tzinfo=UTC)
    assert isinstance(when, datetime) and when.utcoffset() == timedelta(0)
    original = datetime(2023, 7, 1, 12, 0, tzinfo=UTC)
    assert from_cim(to_cim(original)) == original
    assert from_cim(pywbem.CIMDateTime("20230701120000.000000-060")) == \
        datetime(2023, 7, 1, 13, 0, tzinfo=UTC)


@pytest.mark.parametrize("text", ["2024-01-02T03:04:05", "", "0000000000050.000000:000",
                                  "20241302030405.000000+000"])
def test_from_cim_refuses_bad_text(text: str) -> None:
    with pytest.raises(IncorrectDataType, match=r"TimeoutPeriod .* is not a CIM datetime"):
        from_cim(text, what="TimeoutPeriod")


def test_from_cim_refuses_other_types() -> None:
    with pytest.raises(IncorrectDataType, match="must be a CIM datetime, not int"):
        from_cim(5)
