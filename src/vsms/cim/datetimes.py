"""CIM datetime values: timestamps in UTC and intervals.

A timestamp is written ``yyyymmddHHMMSS.mmmmmm+000`` (always UTC here), an interval
``ddddddddHHMMSS.mmmmmm:000`` (5 minutes is ``00000000000500.000000:000``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pywbem

from vsms.errors import IncorrectDataType, InvalidParameter

MAX_INTERVAL = timedelta(days=99999999, hours=23, minutes=59, seconds=59, microseconds=999999)
"""Longest interval a CIM datetime can hold."""


def to_cim(dt: datetime) -> pywbem.CIMDateTime:
    """The CIM timestamp of ``dt``, converted to UTC. A naive ``dt`` is taken to be UTC."""
    aware = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    return pywbem.CIMDateTime(aware)


def interval(td: timedelta) -> pywbem.CIMDateTime:
    """The CIM interval of ``td``; InvalidParameter if it is negative or too long."""
    if td < timedelta(0):
        raise InvalidParameter(f"a CIM interval cannot be negative ({td}); pass a duration >= 0")
    if td > MAX_INTERVAL:
        raise InvalidParameter(f"a CIM interval holds at most 99999999 days, not {td.days}; "
                               f"pass a shorter duration")
    return pywbem.CIMDateTime(td)


def from_cim(value: pywbem.CIMDateTime | str, *,
             what: str = "The datetime value") -> datetime | timedelta:
    """A CIM datetime (object or string) as an aware UTC ``datetime`` or a ``timedelta``.

    Raises IncorrectDataType, naming ``what``, for text that is not a CIM datetime.
    """
    if isinstance(value, str):
        try:
            value = pywbem.CIMDateTime(value.strip())
        except ValueError:
            raise IncorrectDataType(
                f"{what} {value!r} is not a CIM datetime; write a timestamp as "
                f"yyyymmddHHMMSS.mmmmmm+UUU or an interval as ddddddddHHMMSS.mmmmmm:000"
            ) from None
    if not isinstance(value, pywbem.CIMDateTime):
        raise IncorrectDataType(
            f"{what} must be a CIM datetime, not {type(value).__name__}; pass a "
            f"pywbem.CIMDateTime or its string form")
    if value.is_interval:
        td: timedelta = value.timedelta
        return td
    dt: datetime = value.datetime
    return dt.astimezone(UTC)
