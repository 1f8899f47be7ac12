"""Multi-part datasets: the parts a marker in `incoming/<pipeline>/<dataset>/` completes.

The rules (README, "Big data"):

- Any file in a folder below a pipeline's folder is a part of that folder's dataset; it never
  starts a run on its own. Names starting with `.` or `_` are never parts (Hadoop's rule: Spark's
  `.crc` files, `_committed_*`), nor is anything in a subfolder, nor anything under a folder whose
  name starts with `.` or `_` (`_temporary/`).
- `_SUCCESS` (any content: Spark writes it empty, Hadoop's S3A committer writes JSON) completes the
  folder: every part directly in it, in name order.
- `_manifest.json` completes it with the parts it names, in its order: `{"parts": ["a.parquet",
  {"name": "b.parquet", "size": 1234}]}`; parts it does not name are left out. A named part that
  is missing, or whose size differs, fails the run, naming it. When both markers are in the folder
  the manifest is the one that counts.
- Each marker's version starts exactly one run (its key, ETag and time are its drop's); a folder
  without a marker starts nothing and the watcher logs that it waits.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from shared.errors import DataError
from shared.layout import INCOMING, MANIFEST_MARKER, MARKERS, SUCCESS_MARKER, folder_key
from shared.storage import ObjectInfo, check_name
from shared.text import has_hidden, visible

COPY_LIMIT = 5 * 1024**3  # the largest object one S3 CopyObject may copy
MAX_PARTS = 10_000
MAX_MANIFEST_BYTES = 1024**2


def in_dataset(key: str) -> bool:
    """Whether a key is below a folder of a pipeline's folder (a part or marker, never a drop)."""
    segments = key[len(INCOMING) :].split("/")
    if len(segments) < 3:
        return False
    try:
        check_name(segments[0])
    except DataError:
        return False  # no pipeline's: the watcher rejects it as it does any unroutable drop
    return True


def name_of(key: str) -> str:
    """The last segment of a key (a part's name in its folder)."""
    return key.rsplit("/", 1)[-1]


def hidden(name: str) -> bool:
    """Whether a name is hidden by Hadoop's rule (never a part, never a dataset folder)."""
    return name.startswith((".", "_"))


def is_marker(key: str) -> bool:
    """Whether a key in a dataset folder is a marker that starts the folder's run."""
    folders = key[len(INCOMING) :].split("/")[1:-1]
    return name_of(key) in MARKERS and not any(hidden(f) for f in folders)


def is_part(key: str) -> bool:
    """Whether a key in a dataset folder could be a part (not a marker, hidden or folder)."""
    folders = key[len(INCOMING) :].split("/")[1:-1]
    name = name_of(key)
    return bool(name) and not hidden(name) and not any(hidden(f) for f in folders)


def candidates(folder: str, listing: Iterable[ObjectInfo]) -> dict[str, ObjectInfo]:
    """The objects directly in `folder` that can be parts, by name, in name order."""
    found = {
        name_of(item.key): item
        for item in listing
        if folder_key(item.key) == folder and is_part(item.key)
    }
    return dict(sorted(found.items()))


def parts_of(
    marker: ObjectInfo, listing: Iterable[ObjectInfo], manifest: bytes | None = None
) -> list[ObjectInfo]:
    """The parts a marker completes, in order; DataError saying what to fix when it cannot
    start a run (a part missing or of another size, no parts, a part too big to copy)."""
    folder = folder_key(marker.key)
    if has_hidden(marker.key):
        raise DataError(
            f"the folder {visible(folder)} holds control or direction-changing characters in "
            "its name; rename it without them",
            field="dataset",
        )
    present = candidates(folder, listing)
    if name_of(marker.key) == SUCCESS_MARKER:
        parts = list(present.values())
        if not parts:
            raise DataError(
                f"{visible(folder)} holds no parts beside its {SUCCESS_MARKER} marker: upload "
                "the parts first, then the marker",
                field="dataset",
            )
    else:
        parts = _named(marker, present, manifest or b"")
    _check(folder, parts)
    return parts


def _named(marker: ObjectInfo, present: dict[str, ObjectInfo], text: bytes) -> list[ObjectInfo]:
    """The parts a manifest names, checked against what its folder holds."""
    entries = _entries(marker, text)
    folder = folder_key(marker.key)
    missing = [name for name, _ in entries if name not in present]
    if missing:
        shown = ", ".join(visible(name) for name in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise DataError(
            f"{visible(marker.key)} names {len(missing)} part(s) not in {visible(folder)}: "
            f"{shown}{more}; upload them, then upload the manifest again",
            field="dataset",
        )
    for name, size in entries:
        if size is not None and present[name].size != size:
            raise DataError(
                f"part {visible(name)} of {visible(folder)} is {present[name].size} bytes, but "
                f"{MANIFEST_MARKER} says {size}: upload the part again, then the manifest",
                field="dataset",
            )
    return [present[name] for name, _ in entries]


def _entries(marker: ObjectInfo, text: bytes) -> list[tuple[str, int | None]]:
    """The (name, size or None) pairs a manifest lists; DataError when it is malformed."""
    where = visible(marker.key)
    try:
        document: Any = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        message = f"{where} is not JSON ({exc}); write it as {_EXAMPLE}"
        raise DataError(message, field="dataset") from None
    listed = document.get("parts") if isinstance(document, dict) else None
    if not isinstance(listed, list) or not listed:
        raise DataError(f"{where} lists no parts; write it as {_EXAMPLE}", field="dataset")
    entries: list[tuple[str, int | None]] = []
    for entry in listed:
        name, size = (entry, None) if isinstance(entry, str) else _entry(entry)
        if not isinstance(name, str) or "/" in name or not name or hidden(name):
            raise DataError(
                f"{where} lists {visible(str(name))!s}: a part is named by its file name in the "
                "manifest's folder, not starting with '.' or '_'",
                field="dataset",
            )
        if not (size is None or (isinstance(size, int) and size >= 0)):
            raise DataError(f"{where}: the size of {visible(name)} is not a number of bytes")
        entries.append((name, size))
    names = [name for name, _ in entries]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise DataError(f"{where} lists {visible(twice[0])} twice", field="dataset")
    return entries


def _entry(entry: Any) -> tuple[Any, Any]:
    """A manifest entry written as an object: its name and size."""
    if isinstance(entry, dict):
        return entry.get("name"), entry.get("size")
    return entry, None


def _check(folder: str, parts: list[ObjectInfo]) -> None:
    """Refuse what no run could read: too many parts, names with hidden characters, a part
    over S3's single-copy limit."""
    if len(parts) > MAX_PARTS:
        raise DataError(
            f"{visible(folder)} holds {len(parts)} parts; at most {MAX_PARTS}: write fewer, "
            "larger parts",
            field="dataset",
        )
    for part in parts:
        if has_hidden(part.key):
            raise DataError(
                f"the name of part {visible(name_of(part.key))} holds control or "
                "direction-changing characters; rename it without them",
                field="file",
            )
        if part.size > COPY_LIMIT:
            raise DataError(
                f"part {visible(name_of(part.key))} is {part.size / 1024**3:.1f} GiB, over the "
                "5 GiB one S3 copy can take: split it into smaller parts",
                field="file",
            )


_EXAMPLE = '{"parts": ["part-0.parquet", "part-1.parquet"]}'
