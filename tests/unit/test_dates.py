"""Dates: which columns hold them and in what form, what numbers they become, and how a request
with a date is checked."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import skops.io as sio

from services.ingest.ingestion import Profiler, profile_table
from services.ingest.reading import read_table
from shared.artifacts import dump_model, load_model
from shared.columns import CompiledSignature
from shared.dates import DateParts
from shared.datetext import detect, parse, parts
from shared.errors import RequestError


@pytest.mark.parametrize(
    ("values", "form"),
    [
        (["2024-12-31", "2025-01-01", None], "iso"),
        (["2024-12-31T23:59:59", "2025-01-01 08:00", "2025-01-02"], "iso"),
        (["2024-12-31T23:59:59.123+02:00", "2025-01-01T08:00:00Z"], "iso"),
        (["31/12/2024", "01/01/2025"], "%d/%m/%Y"),  # a day above 12 comes first: day first
        (["12/31/2024", "1/2/2025"], "%m/%d/%Y"),  # ... comes second: month first
        (["01/02/2024", "03/04/2024"], "%m/%d/%Y"),  # either way: month first, as pandas reads
        (["31-12-2024", "01-01-2025"], "%d-%m-%Y"),
        (["31.12.2024 23:59", "01.01.2025 00:00"], "%d.%m.%Y %H:%M"),
        (["2024/12/31", "2025/01/01"], "%Y/%m/%d"),
        ([" 31/12/2024 ", "13/01/2025 10:30:00"], None),  # two forms in one column
        (["red", "2024-12-31"], None),
        (["12", "31"], None),
        (["2024-13-01", "2024-12-01"], None),  # no month 13
        ([], None),
    ],
)
def test_a_column_is_dates_when_its_values_are_in_one_form(
    values: list[str | None], form: str | None
) -> None:
    assert detect(values) == form


def test_a_stray_value_among_many_dates_still_leaves_a_date_column() -> None:
    days = pd.date_range("2020-01-01", periods=400).strftime("%d/%m/%Y").tolist()
    assert detect([*days, "unknown"]) == "%d/%m/%Y"  # 1 in 401
    assert detect([*days[:50], *["unknown"] * 5]) is None  # 1 in 11


def test_dates_become_year_month_weekday_hour_and_days() -> None:
    when = parse(
        ["31/12/2024 13:30", "01/01/1970 00:00", "29/02/2023 10:00", None, ""], "%d/%m/%Y %H:%M"
    )
    got = parts(when, hour=True)
    assert got["year"][:2].tolist() == [2024, 1970]
    assert got["month"][:2].tolist() == [12, 1]
    assert got["day_of_week"][:2].tolist() == [1, 3]  # a Tuesday and a Thursday (Monday is 0)
    assert got["hour"][:2].tolist() == [13, 0]
    assert got["days"][:2].tolist() == [20088 + 13.5 / 24, 0]
    for values in got.values():  # no 29 February in 2023; missing; empty
        assert np.isnan(values[2:]).all()
    assert list(parts(when, hour=False)) == ["year", "month", "day_of_week", "days"]


def test_date_parts_replace_each_date_column_in_place() -> None:
    X = pd.DataFrame(
        {
            "x": [1.0, 2.0, 3.0],
            "day": pd.Series(["31/12/2024", None, "nonsense"], dtype="str"),
            "at": ["2024-01-01T10:00:00+01:00", "2024-01-02 11:30", "2024-01-03"],
        }
    )
    step = DateParts({"day": "%d/%m/%Y", "at": "iso"}).fit(X)
    out = step.transform(X)
    assert (
        list(out.columns)
        == list(step.get_feature_names_out())
        == [
            "x",
            "day__year",
            "day__month",
            "day__day_of_week",
            "day__days",  # no times in `day`: no hour
            "at__year",
            "at__month",
            "at__day_of_week",
            "at__hour",
            "at__days",
        ]
    )
    assert (
        out["day__year"].tolist()[0] == 2024 and out["day__year"].isna().tolist()[1:] == [True] * 2
    )
    assert out["at__hour"].tolist() == [10, 11, 0]  # the time as written; its offset is ignored
    assert out["x"].tolist() == [1.0, 2.0, 3.0]


def test_parquet_timestamps_give_the_same_parts_as_their_iso_text() -> None:
    stamps = pd.to_datetime(["2024-03-31 01:30", None, "1969-07-20 20:17"])
    X = pd.DataFrame({"at": stamps.tz_localize("Europe/Madrid")})
    step = DateParts({"at": "iso"}).fit(X)
    text = pd.DataFrame({"at": [None if pd.isna(s) else s.isoformat() for s in X["at"]]})
    pd.testing.assert_frame_equal(step.transform(X), step.transform(text))
    assert step.transform(X)["at__year"].tolist()[2] == 1969


def test_date_parts_save_with_skops_trusting_only_the_class() -> None:
    X = pd.DataFrame({"day": ["31/12/2024", "01/01/2025"], "x": [1, 2]})
    step = DateParts({"day": "%d/%m/%Y"}).fit(X)
    data = dump_model(step)
    assert sio.get_untrusted_types(data=data) == ["shared.dates.DateParts"]
    pd.testing.assert_frame_equal(load_model(data).transform(X), step.transform(X))


def test_the_profile_shows_date_columns_with_their_form() -> None:
    data = b"day,at,n\n31/12/2024,2024-01-01T10:00,1\n01/01/2025,2024-01-02T11:00,2\n"
    frame = read_table(data, filename="up.csv")
    streamed = Profiler()  # as ingest builds it, batch by batch
    streamed(pa.Table.from_pandas(frame, preserve_index=False))
    profile = streamed.result()
    assert profile == profile_table(frame)
    assert profile["schema"] == {"day": "datetime", "at": "datetime", "n": "integer"}
    assert profile["columns"]["day"]["format"] == "%d/%m/%Y"
    assert profile["columns"]["at"]["format"] == "iso"
    json.dumps(profile, allow_nan=False)


SIGNATURE = [
    {"name": "day", "type": "string", "format": "%d/%m/%Y"},
    {"name": "n", "type": "double"},
]


def test_a_request_sends_dates_as_text_in_the_column_form() -> None:
    checked = CompiledSignature.compile(SIGNATURE).check(
        {"day": ["31/12/2024", None, ""], "n": [1, 2, 3]}
    )
    day = checked["day"]
    assert day.kind == "string" and day.when is not None
    assert day.when[0] == np.datetime64("2024-12-31") and np.isnat(day.when[1:]).all()
    assert day.missing is not None and day.missing.tolist() == [False, True, True]


@pytest.mark.parametrize("bad", ["2024-12-31", "31/13/2024", "tomorrow", 20241231])
def test_a_request_with_a_bad_date_is_refused_naming_the_column(bad: object) -> None:
    with pytest.raises(RequestError) as caught:
        CompiledSignature.compile(SIGNATURE).check({"day": ["31/12/2024", bad], "n": [1, 2]})
    assert caught.value.field == "day" and caught.value.status < 500
    assert str(caught.value).startswith("column 'day' expects a date like 31/12/2024, but row 1")
