"""Ground truth on its own: the feedback body's rows and errors, a dropped CSV file read, and the
live scores of logged answers against labels."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.serve.feedback import parse_feedback
from services.watcher.truth import csv_labels, live_scores, split_metrics, text
from shared.errors import RequestError

IRIS = {"task": "classification", "classes": ["setosa", "versicolor", "virginica"]}


def test_a_body_names_rows_one_by_one_or_labels_every_row() -> None:
    body = {
        "feedback": [
            {"request_id": "a", "label": "setosa"},
            {"request_id": "b", "row": 2, "label": "virginica"},
            {"request_id": "c", "labels": ["setosa", "versicolor"]},
        ]
    }
    assert parse_feedback(body, task="classification") == [
        {"request_id": "a", "row": 0, "label": "setosa"},
        {"request_id": "b", "row": 2, "label": "virginica"},
        {"request_id": "c", "row": 0, "label": "setosa"},
        {"request_id": "c", "row": 1, "label": "versicolor"},
    ]


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"request_id": "a", "label": "x", "labels": ["x"]}, "feedback[0].label"),
        ({"request_id": "a", "row": 1, "labels": ["x"]}, "feedback[0].row"),
        ({"request_id": "a", "row": True, "label": "x"}, "feedback[0].row"),
        ({"request_id": "", "label": "x"}, "feedback[0].request_id"),
        ({"request_id": "a", "label": ""}, "feedback[0].label"),
        ({"request_id": "a", "labels": "x"}, "feedback[0].labels"),
        ("a", "feedback[0]"),
    ],
)
def test_a_wrong_entry_is_named(item: object, field: str) -> None:
    with pytest.raises(RequestError) as raised:
        parse_feedback({"feedback": [item]}, task="classification")
    assert raised.value.field == field and raised.value.status == 400


def test_a_regression_label_must_be_a_number() -> None:
    assert parse_feedback({"feedback": [{"request_id": "a", "label": 3.5}]}, task="regression")
    with pytest.raises(RequestError) as raised:
        parse_feedback({"feedback": [{"request_id": "a", "label": "3.5"}]}, task="regression")
    assert raised.value.field == "feedback[0].label"
    assert "must be the true value, a number" in str(raised.value)


def test_a_dropped_csv_takes_row_0_when_it_has_no_row_column() -> None:
    when = datetime(2026, 11, 28, 12, tzinfo=UTC)
    frame = csv_labels(b"request_id,label\nr1,yes\nr2,\nr3,no\n", when)
    assert frame[["request_id", "row", "label"]].values.tolist() == [
        ["r1", 0, "yes"],
        ["r3", 0, "no"],
    ]
    assert (frame["time"] == when).all()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"id,label\nr1,yes\n", "no column request_id"),
        (b"request_id,row,label\nr1,-1,yes\n", "row must be a row index"),
        (b"request_id,row,label\nr1,first,yes\n", "'first'"),
    ],
)
def test_a_csv_that_cannot_be_read_says_why(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        csv_labels(data, datetime.now(UTC))


def test_classes_match_whatever_form_they_came_in() -> None:
    assert [text(v) for v in (1, 1.0, "1", True)] == ["1", "1", "1", "True"]
    record = {"task": "classification", "classes": [0, 1]}
    scores, _ = live_scores(record, ["1", "0", "1", "1"], [1, 0, 0, 1])
    assert scores["accuracy"] == 0.75 and scores["rows"] == 4


def test_probability_metrics_are_not_available_and_an_unknown_class_is_a_miss() -> None:
    scores, unavailable = live_scores(IRIS, ["setosa", "Setosa"], ["setosa", "setosa"])
    assert scores["accuracy"] == 0.5
    assert scores["roc_auc"] is None and scores["log_loss"] is None
    assert set(unavailable) == {"roc_auc", "log_loss"}


def test_regression_scores_the_rows_whose_label_is_a_number() -> None:
    record = {"task": "regression", "metrics": {"rmse": 2.0, "mae": 1.0, "r2": 0.5}}
    scores, unavailable = live_scores(record, ["3", 5.0, "n/a"], [4.0, 5.0, 1.0])
    assert scores["rows"] == 2 and scores["mae"] == 0.5 and unavailable == {}
    assert split_metrics(record) == {"rmse": 2.0, "mae": 1.0, "r2": 0.5}
    one, _ = live_scores(record, [3.0], [4.0])
    assert one["r2"] is None and one["rmse"] == 1.0
