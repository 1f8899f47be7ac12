"""Multi-part datasets' keys and the parts a marker takes, on listings written by hand."""

from __future__ import annotations

from services.watcher.parts import in_dataset, is_marker, is_part, parts_of
from shared import layout
from shared.storage import ObjectInfo

FOLDER = "incoming/churn/day/"


def _item(name: str, size: int = 10) -> ObjectInfo:
    return ObjectInfo(FOLDER + name, f'"{name}"', size)


def test_datasets_keep_their_keys() -> None:
    assert layout.dataset_prefix("churn", "day") == FOLDER
    assert layout.folder_key(FOLDER + "_SUCCESS") == FOLDER
    assert layout.part_key(FOLDER, "part-0.csv") == FOLDER + "part-0.csv"
    assert layout.MARKERS == ("_SUCCESS", "_manifest.json")


def test_which_keys_are_parts_markers_or_drops() -> None:
    assert not in_dataset("incoming/churn/a.csv") and not in_dataset("incoming/a b/x/y.csv")
    assert in_dataset(FOLDER + "part-0.csv") and is_part(FOLDER + "part-0.csv")
    assert is_marker(FOLDER + "_SUCCESS") and not is_part(FOLDER + "_SUCCESS")
    for key in (FOLDER + ".p.crc", FOLDER + "_committed_1", FOLDER + "_temporary/0/p.csv"):
        assert not is_part(key) and not is_marker(key), key
    assert not is_marker(FOLDER + "_temporary/_SUCCESS")


def test_success_takes_every_part_in_name_order() -> None:
    listing = [_item("b.csv"), _item("A.csv"), _item("_SUCCESS", 0), _item("sub/c.csv")]
    parts = parts_of(_item("_SUCCESS", 0), listing)
    assert [p.key for p in parts] == [FOLDER + "A.csv", FOLDER + "b.csv"]
