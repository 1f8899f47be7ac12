"""The console's plain functions: ULID time prefixes, SVG plots, report rows, spec form."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from ulid import ULID

from services.console import present, specform, svg
from shared.client.listing import prefix_time, time_prefix


def test_time_prefix_matches_ulids() -> None:
    moment = datetime(2026, 11, 26, 6, 0, 0, 123000, tzinfo=UTC)
    run_id = str(ULID.from_datetime(moment))
    ms = int(moment.timestamp() * 1000)
    assert time_prefix(ms) == run_id[:10] and prefix_time(run_id) == ms
    assert time_prefix(ms - 1) < run_id < time_prefix(ms + 1)
    assert prefix_time("not-a-ulid") == 0


def test_plots_escape_what_they_label() -> None:
    picture = svg.bars([("<b>x</b>", 0.5), ("y", 0.25)], title="t & u", unit="drop")
    assert "&lt;b&gt;x&lt;/b&gt;" in picture and "<b>" not in picture
    curve = svg.line_chart(
        [{"x": [0, 1], "y": [0, 1], "legend": "<i>"}],
        title="ROC",
        x_label="fpr",
        y_label="tpr",
        diagonal=True,
    )
    assert curve.count("<polyline") == 1 and "&lt;i&gt;" in curve


def test_tick_labels_of_large_values_stay_clear_of_the_axis_title_and_the_edge() -> None:
    """House prices: y ticks like 482k fit beside the rotated y title; the last x tick ends
    inside the picture."""
    actual = [120_000.0 + 9_000.0 * i for i in range(40)]
    picture = svg.scatter(
        actual,
        [a * 1.1 for a in actual],
        title="Predicted vs actual",
        x_label="actual",
        y_label="predicted",
        guide="identity",
    )
    texts = re.findall(r'<text x="([\d.]+)" y="[\d.]+" text-anchor="(\w+)">([^<]*)</text>', picture)
    ticks = [(float(x), anchor, label) for x, anchor, label in texts if anchor != "middle" or label]
    y_ticks = [(x, label) for x, anchor, label in ticks if anchor == "end" and x < 100]
    assert len(y_ticks) == 5 and all(len(label) <= 6 for _, label in y_ticks), y_ticks
    title_edge = 18  # the rotated y title, centred on x=12 in a 10px font
    assert all(x - svg.CHAR * len(label) > title_edge for x, label in y_ticks), y_ticks
    x_ticks = [(x, a, label) for x, a, label in ticks if not (a == "end" and x < 100)]
    right = max(x + (0 if a == "end" else svg.CHAR * len(label) / 2) for x, a, label in x_ticks)
    assert right <= svg.W, x_ticks


def test_metric_rows_say_which_side_is_better() -> None:
    report = {
        "metrics": {"f1_macro": 0.9, "log_loss": 0.4, "rows": 10, "confusion_matrix": {}},
        "champion_metrics": {"f1_macro": 0.8, "log_loss": 0.3},
    }
    rows = {row["name"]: row["better"] for row in present.metric_rows(report)}
    assert rows == {"f1_macro": True, "log_loss": False}


def test_spec_form_round_trip_and_problems() -> None:
    raw = {"target": "y", "split": {"seed": 7}, "cache": False}
    values = specform.form_values(raw)
    assert values["split.seed"] == "7" and values["split.test"] == ""
    edited = specform.apply_form(raw, {**values, "split.seed": "", "tuning.trials": "3"})
    assert edited == {"target": "y", "cache": False, "tuning": {"trials": 3}}
    assert specform.problems(edited) == {}
    found = specform.problems({"task": "regression", "models": [{"estimator": "svm"}]})
    assert found["models"].startswith("models[0].estimator: unknown regression estimator 'svm'")
    assert specform.problems({"tuning": {"trials": 0}})["tuning.trials"].startswith(
        "tuning.trials: a whole number of trials per candidate from 1 to 1000, or auto, got 0"
    )
