"""Newest-first pages of run ids, read off the bucket's key listing without touching every run.

Run ids are ULIDs: their first ten characters encode the creation time in milliseconds, so the
ids created after a moment are the keys listed after that moment's prefix. S3 lists in ascending
order only, so a page of the newest runs is found by listing from a start time that widens (four
times per step) until the window holds a page, and narrows (by halving) if it holds more than one
listing call returns. The listing itself is the index: there is nothing to keep in sync.
"""

from __future__ import annotations

import time
from typing import Any

from shared.layout import RUNS
from shared.storage import Store

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base32, as ULIDs use
LIST_LIMIT = 1000  # one S3 listing call's worth
FIRST_WINDOW_MS = 10 * 60 * 1000


def time_prefix(ms: int) -> str:
    """The ten-character ULID prefix of a millisecond timestamp."""
    chars = []
    for _ in range(10):
        chars.append(ALPHABET[ms & 31])
        ms >>= 5
    return "".join(reversed(chars))


def prefix_time(run_id: str) -> int:
    """The millisecond timestamp a run id was made at (0 when it is not a ULID)."""
    ms = 0
    for char in run_id[:10].upper():
        if char not in ALPHABET:
            return 0
        ms = ms * 32 + ALPHABET.index(char)
    return ms


def ids_between(store: Store, low: str, high: str | None, *, limit: int) -> tuple[list[str], bool]:
    """Run ids from `low` up to, not including, `high`, ascending; False if `limit` cut it short."""
    ids: list[str] = []
    request: dict[str, Any] = {
        "Bucket": store.bucket,
        "Prefix": RUNS,
        "Delimiter": "/",
        "StartAfter": RUNS + low,
    }
    while True:
        page = store.client.list_objects_v2(**request, MaxKeys=min(LIST_LIMIT, limit + 1))
        for item in page.get("CommonPrefixes", []):
            run_id = item["Prefix"][len(RUNS) :].rstrip("/")
            if high is not None and run_id >= high:
                return ids, True
            if run_id < low:
                continue  # a store that ignores StartAfter with a delimiter still works
            ids.append(run_id)
            if len(ids) > limit:
                return ids[:limit], False
        if not page.get("IsTruncated"):
            return ids, True
        request = {k: v for k, v in request.items() if k != "StartAfter"}
        request["ContinuationToken"] = page["NextContinuationToken"]


def newest_ids(store: Store, *, before: str | None, count: int) -> list[str]:
    """Up to `count` run ids older than `before` (or the newest ones), newest first."""
    top = prefix_time(before) if before else int(time.time() * 1000)
    few, many = top, -1  # window starts known to hold too few, and too many, ids
    span = FIRST_WINDOW_MS
    while True:
        start = max(0, top - span) if many < 0 else (few + many) // 2
        ids, complete = ids_between(store, time_prefix(start), before, limit=LIST_LIMIT)
        if complete and (len(ids) >= count or start == 0):
            return ids[::-1][:count]
        if complete:
            few, span = start, span * 4
        else:
            many = start
        if many >= 0 and few - many <= 1:  # over LIST_LIMIT runs in one millisecond
            ids, _ = ids_between(store, time_prefix(many), before, limit=10**9)
            return ids[::-1][:count]
