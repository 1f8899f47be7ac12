"""Dates written as text: the forms cauce reads, which form a column is in, and the numbers a
date becomes. One parser serves training (shared.dates.DateParts), request checks and the ONNX
fast path, so a date is read the same way everywhere; it needs numpy only.

A form is "iso" (2024-12-31, 2024-12-31T23:59:59.5+02:00, with T or a space) or a pattern of
%Y %m %d %H %M %S and literal characters ("%d/%m/%Y %H:%M"). A time zone offset is read and
ignored: the parts are those of the wall-clock time as written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from functools import cache
from typing import Any

import numpy as np

ISO = "iso"
PARTS = ("year", "month", "day_of_week", "hour", "days")  # hour only for columns with times
SEPARATOR = "__"  # a part's column is <column>__<part>
TOLERANCE = 0.01  # the share of a column's values that may fail its form and it still is dates
_DATES = ["%Y/%m/%d", "%Y.%m.%d"] + [
    # Month first before day first: values that read both ways (no day above 12) are read
    # month first, as pandas does; any day above 12 rules the other out.
    f"%{a}{sep}%{b}{sep}%Y"
    for sep in "/-."
    for a, b in (("m", "d"), ("d", "m"))
]
FORMATS: tuple[str, ...] = (
    ISO,
    *(f"{day}{time}" for day in _DATES for time in ("", " %H:%M", " %H:%M:%S")),
)
_TOKENS = {
    "%Y": r"(?P<Y>\d{4})",
    "%m": r"(?P<m>0?[1-9]|1[0-2])",
    "%d": r"(?P<d>0?[1-9]|[12]\d|3[01])",
    "%H": r"(?P<H>[01]?\d|2[0-3])",
    "%M": r"(?P<M>[0-5]\d)",
    "%S": r"(?P<S>[0-5]\d)",
}
_ISO = (
    r"(?P<Y>\d{4})-(?P<m>0[1-9]|1[0-2])-(?P<d>0[1-9]|[12]\d|3[01])"
    r"(?:[T ](?P<H>[01]\d|2[0-3]):(?P<M>[0-5]\d)(?::(?P<S>[0-5]\d)(?:[.,](?P<f>\d{1,9}))?)?"
    r"(?:Z|[+-]\d{2}(?::?\d{2})?)?)?"
)
_EPOCH = np.datetime64("1970-01-01T00:00:00", "us")
_DAY_US = 86_400_000_000
_ORDINAL = date(1970, 1, 1).toordinal()
_NAT = int(np.datetime64("NaT", "us").view(np.int64))


@cache
def pattern(form: str) -> re.Pattern[str]:
    """The regular expression a value of `form` matches whole; ValueError for an unknown token."""
    if form == ISO:
        return re.compile(_ISO)
    pieces = re.split(r"(%.)", form)
    unknown = [p for p in pieces if p.startswith("%") and p not in _TOKENS]
    if unknown or not {"%Y", "%m", "%d"} <= set(pieces):
        raise ValueError(f"date format {form!r}: use {ISO!r} or %Y, %m, %d (and %H, %M, %S)")
    return re.compile("".join(_TOKENS.get(p, re.escape(p)) for p in pieces))


def example(form: str) -> str:
    """A date written in `form`, for messages: 2024-12-31 or 31/12/2024 23:59."""
    if form == ISO:
        return "2024-12-31 or 2024-12-31T23:59:59"
    return datetime(2024, 12, 31, 23, 59, 58).strftime(form)


def _micros(text: str, form: str) -> int:
    """Microseconds since 1970 of a date in `form`, or _NAT if it is not one."""
    match = pattern(form).fullmatch(text.strip())
    if match is None:
        return _NAT
    found = match.groupdict()
    try:
        day = date(int(found["Y"]), int(found["m"]), int(found["d"])).toordinal() - _ORDINAL
    except ValueError:  # 31 April, 29 February of a common year
        return _NAT
    hour, minute, second = (int(found.get(k) or 0) for k in "HMS")
    fraction = found.get("f")
    micros = int(fraction[:6].ljust(6, "0")) if fraction else 0
    return (day * 86_400 + hour * 3_600 + minute * 60 + second) * 1_000_000 + micros


def as_text(value: Any) -> str | None:
    """A cell as date text: text as it is, a date or timestamp in ISO form, a gap as None."""
    if isinstance(value, str):
        return value
    if isinstance(value, date) and value == value:  # NaT is a datetime unequal to itself
        if isinstance(value, datetime) and value.tzinfo is not None:
            value = value.replace(tzinfo=None)  # its wall-clock time, as text with an offset
        return value.isoformat()
    return None


def parse(values: Sequence[Any], form: str) -> np.ndarray:
    """The values as datetime64[us]: NaT where a value is missing or not a date in `form`.

    Each distinct value is read once (dates repeat: a year of orders has 365 of them)."""
    seen: dict[Any, int] = {}
    out: list[int] = []
    for value in values:
        if value not in seen:
            text = as_text(value)
            seen[value] = _NAT if text is None else _micros(text, form)
        out.append(seen[value])
    return np.array(out, dtype=np.int64).view("datetime64[us]")


def has_times(when: np.ndarray) -> bool:
    """Whether any date carries a time of day other than midnight."""
    present = when[~np.isnat(when)]
    return bool(len(present) and (present != present.astype("datetime64[D]")).any())


def parts(when: np.ndarray, *, hour: bool) -> dict[str, np.ndarray]:
    """Year, month, day of week (Monday 0), hour (if asked) and days since 1970-01-01 as float64,
    NaN where a date is missing."""
    missing = np.isnat(when)
    safe = np.where(missing, _EPOCH, when).astype("datetime64[us]")
    days = safe.astype("datetime64[D]").astype(np.int64)
    found = {
        "year": safe.astype("datetime64[Y]").astype(np.int64) + 1970,
        "month": safe.astype("datetime64[M]").astype(np.int64) % 12 + 1,
        "day_of_week": (days + 3) % 7,  # 1970-01-01 was a Thursday
        "hour": (safe - safe.astype("datetime64[D]")).astype(np.int64) // 3_600_000_000,
        "days": (safe - _EPOCH).astype(np.int64) / _DAY_US,
    }
    return {
        name: np.where(missing, np.nan, found[name].astype(np.float64))
        for name in PARTS
        if hour or name != "hour"
    }


def part_names(column: str, *, hour: bool) -> list[str]:
    """The columns a date column becomes: <column>__year, __month, __day_of_week, ..."""
    return [f"{column}{SEPARATOR}{name}" for name in PARTS if hour or name != "hour"]


class FormTally:
    """Which date forms a text column's values fit, fed value counts batch by batch."""

    def __init__(self) -> None:
        self.seen = 0
        self.misses = dict.fromkeys(FORMATS, 0)

    def add(self, counts: Mapping[str, int]) -> None:
        """Count the distinct values (with how often each occurs) that miss each live form;
        a form that misses more than TOLERANCE of the values so far is given up."""
        self.seen += sum(counts.values())
        for text, count in counts.items():
            if not self.misses:
                return
            stripped = text.strip()
            for form in list(self.misses):
                if pattern(form).fullmatch(stripped) is None:
                    self.misses[form] += count
                    if self.misses[form] > TOLERANCE * self.seen:
                        del self.misses[form]

    def form(self) -> str | None:
        """The first form (in FORMATS order) that (nearly) every value fits, else None."""
        return next(iter(self.misses), None) if self.seen else None


def detect(values: Iterable[Any]) -> str | None:
    """The date form of a column of text, or None if it is not (nearly) all dates in one form."""
    tally = FormTally()
    counts: dict[str, int] = {}
    for value in values:
        if isinstance(value, str) and value.strip():
            counts[value] = counts.get(value, 0) + 1
    tally.add(counts)
    return tally.form()
