"""The error hierarchy every process shares: data errors fail a run, transient errors retry."""

from __future__ import annotations


class CauceError(Exception):
    """Base class of every error cauce raises on purpose."""


class DataError(CauceError):
    """The input cannot be used; the message tells a person what is wrong and how to fix it."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class SpecError(DataError):
    """A pipeline spec field is invalid; `field` names it."""


class RequestError(CauceError):
    """A malformed prediction request; `field` names the offending part, `status` the HTTP code."""

    def __init__(self, message: str, *, field: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


class NotFound(CauceError):
    """A run, model, version or alias that does not exist."""


class Conflict(CauceError):
    """A conditional write lost a race; the caller may re-read and try again."""


class TransientError(CauceError):
    """The store or broker is unreachable for now; the task retries with backoff."""


def plain(value: object) -> object:
    """A numpy scalar as the Python value it holds, so messages show 1 rather than np.int64(1)."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value
