"""The real ingest stage (real SeaweedFS and Valkey) on streamed input: a table in several parts,
a part that does not match, and a CSV whose checks drop rows and columns."""

from __future__ import annotations

import hashlib
import io
import shutil
import tempfile

import numpy as np
import pandas as pd
import pytest

from services.ingest.ingestion import profile_table, validate_table
from services.ingest.reading import read_table
from services.ingest.tasks import ingest, quarantine
from shared.config import Settings
from shared.layout import input_key, quarantine_key, stage_key
from shared.messages import RunStage
from shared.runs import create_run, describe_run, read_status
from shared.stage import StageRunner
from shared.storage import Store
from tests.e2e import test_bad_input as bad_input
from tests.integration.stage_support import FakeTask

RUN = "01JSTREAMRUN00000000000000"


def _ingest(settings: Settings, store: Store, source: dict, spec: str | None = None) -> dict:
    create_run(store, run_id=RUN, pipeline="churn", source=source, spec_text=spec)
    runner = StageRunner(
        stage="ingest", store=store, settings=settings, work=ingest, on_failure=quarantine
    )
    runner(FakeTask(), RunStage(run_id=RUN, pipeline="churn"))
    return describe_run(store, RUN)


def _part(rows: range) -> bytes:
    return b"x,kind,label\n" + b"".join(
        f"{i},{'a' if i % 2 else 'b'},{'yes' if i % 3 else 'no'}\n".encode() for i in rows
    )


def test_a_dataset_in_parts_is_read_in_order_as_one_table(settings: Settings, store: Store) -> None:
    buffer = io.BytesIO()
    pd.DataFrame({"x": [60.5, 61.5], "kind": ["c", "c"], "label": ["no", "yes"]}).to_parquet(buffer)
    parts = {"part-0.csv": _part(range(30)), "part-1.csv": _part(range(30, 60))}
    parts["part-2.parquet"] = buffer.getvalue()
    keys = []
    for name, data in parts.items():
        keys.append(input_key(RUN, name))
        store.put_bytes(keys[-1], data)
    run = _ingest(settings, store, {"key": "incoming/churn/sales/", "inputs": keys})
    assert run["state"] != "failed", run
    table = store.get_frame(stage_key(RUN, "ingest", "data.parquet"))
    assert table["x"].tolist() == [*range(60), 60.5, 61.5]
    assert table["kind"].iloc[-1] == "c"
    digests = "\n".join(hashlib.sha256(data).hexdigest() for data in parts.values())
    result = read_status(store, RUN, "ingest") or {}
    assert result["sha256"] == hashlib.sha256(digests.encode()).hexdigest()
    assert result["rows"] == 62
    assert store.get_json(stage_key(RUN, "ingest", "profile.json"))["rows"] == 62


def test_a_part_with_other_columns_fails_naming_it_and_every_part_is_quarantined(
    settings: Settings, store: Store
) -> None:
    keys = [input_key(RUN, "part-0.csv"), input_key(RUN, "part-1.csv")]
    store.put_bytes(keys[0], _part(range(30)))
    store.put_bytes(keys[1], b"x,colour,label\n1,red,yes\n")
    run = _ingest(settings, store, {"key": "incoming/churn/sales/", "inputs": keys})
    assert run["state"] == "failed"
    error = next(stage["error"] for stage in run["stages"] if stage["stage"] == "ingest")
    assert "part 2" in error and "part-1.csv" in error
    assert "lacks 'kind'" in error and "'colour'" in error
    for name in ("part-0.csv", "part-1.csv", "reason.json"):
        assert store.exists(quarantine_key("churn", RUN, name)), name


def test_rows_without_a_label_and_empty_columns_go_as_before(
    settings: Settings, store: Store
) -> None:
    # Ints that turn into floats late, an empty column, unlabelled rows, labels as 1.0 / 0.0.
    lines = ["n,f,empty,label"]
    lines += [f"{i},{i},,{float(i % 2)}" for i in range(3000)]
    lines += ["3000,0.5,,", "3001,7,,1.0"]
    data = ("\n".join(lines) + "\n").encode()
    store.put_bytes(input_key(RUN, "big.csv"), data)
    run = _ingest(
        settings,
        store,
        {"key": "incoming/churn/big.csv", "input": input_key(RUN, "big.csv")},
        spec="target: label\n",
    )
    assert run["state"] != "failed", run
    expected = validate_table(
        read_table(data, filename="big.csv"), target="label", task="classification"
    )
    table = store.get_frame(stage_key(RUN, "ingest", "data.parquet"))
    pd.testing.assert_frame_equal(table, expected)
    assert "empty" not in table.columns and table["label"].dtype == np.int64
    profile = store.get_json(stage_key(RUN, "ingest", "profile.json"))
    old = profile_table(expected)
    assert profile["schema"] == old["schema"] and profile["rows"] == old["rows"] == 3001
    assert profile["columns"]["label"] == old["columns"]["label"]


@pytest.mark.parametrize(("pipeline", "spec", "content", "reason"), bad_input.CASES)
def test_the_end_to_end_bad_files_fail_ingest_with_the_same_reasons(
    settings: Settings, store: Store, pipeline: str, spec: str | None, content: bytes, reason: str
) -> None:
    settings = settings.model_copy(update={"max_upload_bytes": bad_input.LIMIT})
    store.put_bytes(input_key(RUN, "data.csv"), content)
    source = {"key": f"incoming/{pipeline}/data.csv", "input": input_key(RUN, "data.csv")}
    run = _ingest(settings, store, source, spec=spec)
    error = next(stage["error"] for stage in run["stages"] if stage["stage"] == "ingest")
    assert error is not None and reason.lower() in error.lower(), error


@pytest.mark.parametrize("name", list(bad_input.WORKS))
def test_the_end_to_end_good_files_pass_ingest(settings: Settings, store: Store, name: str) -> None:
    store.put_bytes(input_key(RUN, "data.csv"), bad_input.WORKS[name])
    source = {"key": f"incoming/works-{name}/data.csv", "input": input_key(RUN, "data.csv")}
    run = _ingest(settings, store, source, spec="target: diagnosis\n")
    assert run["state"] != "failed", run
    table = store.get_frame(stage_key(RUN, "ingest", "data.parquet"))
    assert len(table) == len(bad_input.FRAME) and table["mean_area"].dtype == np.float64


def test_a_file_larger_than_the_free_disk_fails_before_it_is_downloaded(
    settings: Settings, store: Store
) -> None:
    free = shutil.disk_usage(tempfile.gettempdir()).free
    settings = settings.model_copy(update={"disk_reserve_bytes": free + 2**30})
    store.put_bytes(input_key(RUN, "data.csv"), _part(range(30)))
    source = {"key": "incoming/churn/data.csv", "input": input_key(RUN, "data.csv")}
    run = _ingest(settings, store, source)
    error = next(stage["error"] for stage in run["stages"] if stage["stage"] == "ingest")
    assert "'incoming/churn/data.csv' needs" in error and "bytes" in error
    assert "in the temporary directory" in error and tempfile.gettempdir() in error
    assert "free" in error and "TMPDIR" in error
    assert store.exists(quarantine_key("churn", RUN, "data.csv"))
