"""Turn run data into what the pages draw: durations, the timeline, metric rows and plots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from markupsafe import Markup

from services.console import svg
from shared.client.render import spread
from shared.scoring import METRICS


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def seconds(stage: dict[str, Any]) -> float | None:
    """A stage's duration: its recorded seconds, or the time so far while it runs."""
    if stage.get("seconds") is not None:
        return float(stage["seconds"])
    started = _time(stage.get("started"))
    if started is None:
        return None
    return (datetime.now(UTC) - started).total_seconds()


def duration(value: float | None) -> str:
    """Seconds as a person reads them: 0.42 s, 12.3 s, 4 min 05 s."""
    if value is None:
        return ""
    if value < 60:
        return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"
    return f"{int(value // 60)} min {int(value % 60):02d} s"


def shown(stage: dict[str, Any]) -> str:
    """The state a person reads: `cached` for a stage that reused an earlier run's result."""
    cached = stage.get("cached_from") and stage.get("state") == "succeeded"
    return "cached" if cached else str(stage.get("state"))


def timeline(stages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each stage as a bar: where it starts and how wide it is, in percent of the run so far."""
    starts = [_time(s.get("started")) for s in stages]
    known = [t for t in starts if t is not None]
    if not known:
        return [{**s, "left": 0.0, "width": 0.0, "took": "", "shown": shown(s)} for s in stages]
    first = min(known)
    ends = [
        t + timedelta(seconds=seconds(s) or 0.0) if t else None
        for s, t in zip(stages, starts, strict=True)
    ]
    total = max((e - first).total_seconds() for e in ends if e) or 1.0
    bars = []
    for stage, start in zip(stages, starts, strict=True):
        took = seconds(stage)
        left = (start - first).total_seconds() / total * 100 if start else 0.0
        width = max(0.5, (took or 0.0) / total * 100) if start else 0.0
        bars.append(
            {
                **stage,
                "left": round(left, 2),
                "width": round(width, 2),
                "took": duration(took),
                "shown": shown(stage),
            }
        )
    return bars


def metric_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Candidate against champion for each scalar metric, with which side is better."""
    candidate = report.get("metrics") or {}
    champion = report.get("champion_metrics") or {}
    rows = []
    for name, value in candidate.items():
        if not isinstance(value, int | float) or name == "rows":
            continue
        other = champion.get(name)
        better = None
        if isinstance(value, int | float) and isinstance(other, int | float) and name in METRICS:
            higher = METRICS[name].greater_is_better
            better = value > other if higher else value < other
            better = None if value == other else better
        rows.append({"name": name, "candidate": value, "champion": other, "better": better})
    return rows


def confusion(report: dict[str, Any]) -> dict[str, Any] | None:
    """The confusion matrix with each cell's share of its row, for shading."""
    matrix = (report.get("metrics") or {}).get("confusion_matrix")
    if not matrix:
        return None
    rows = []
    for label, counts in zip(matrix["labels"], matrix["matrix"], strict=True):
        total = sum(counts) or 1
        rows.append({"label": label, "cells": [(c, round(c / total, 3)) for c in counts]})
    return {"labels": matrix["labels"], "rows": rows}


def _curve_plots(data: dict[str, Any]) -> dict[str, Markup]:
    found: dict[str, Markup] = {}
    if data.get("roc"):
        series = [{**c, "legend": f"{c['label']} (AUC {c['auc']:.3f})"} for c in data["roc"]]
        found["ROC curve"] = svg.line_chart(
            series,
            title="ROC curve",
            x_label="false positive rate",
            y_label="true positive rate",
            diagonal=True,
        )
    if data.get("pr"):
        series = [{**c, "legend": f"{c['label']} (AP {c['ap']:.3f})"} for c in data["pr"]]
        found["Precision-recall curve"] = svg.line_chart(
            series,
            title="Precision-recall curve",
            x_label="recall",
            y_label="precision",
            diagonal=False,
        )
    return found


def _point_plots(points: dict[str, list[float]]) -> dict[str, Markup]:
    actual, predicted = points["actual"], points["predicted"]
    residuals = [p - a for a, p in zip(actual, predicted, strict=True)]
    return {
        "Predicted vs actual": svg.scatter(
            actual,
            predicted,
            title="Predicted vs actual",
            x_label="actual",
            y_label="predicted",
            guide="identity",
        ),
        "Residuals": svg.scatter(
            predicted,
            residuals,
            title="Residuals",
            x_label="predicted",
            y_label="predicted - actual",
            guide="zero",
        ),
    }


def plots(report: dict[str, Any]) -> dict[str, Markup]:
    """Every plot the report has data for, as inline SVG."""
    data = report.get("plots") or {}
    found = _curve_plots(data)
    if data.get("points"):
        found.update(_point_plots(data["points"]))
    importance = data.get("importance")
    if importance and importance.get("features"):
        items = [(f["name"], f["mean"]) for f in importance["features"]]
        found["Feature importance"] = svg.bars(
            items,
            title="Feature importance",
            unit=f"drop in {importance['scoring']} when the column is shuffled",
        )
    return found


def ranked_trials(trials: list[dict[str, Any]] | None, metric: str | None) -> list[dict[str, Any]]:
    """Trials best first by the spec's metric, failed trials last, each with the spread of its
    fold scores when it was cross-validated."""
    higher = METRICS[metric].greater_is_better if metric in METRICS else True

    def key(trial: dict[str, Any]) -> tuple[bool, float]:
        """Failed trials after the others; the best score first."""
        score = trial.get("score")
        if trial.get("state") != "succeeded" or score is None:
            return True, 0.0
        return False, -score if higher else score

    return [{**trial, "spread": spread(trial)} for trial in sorted(trials or [], key=key)]


def schema_summary(schema: dict[str, Any] | None) -> str:
    """The data checks' column differences in a few words ("the same columns" when none)."""
    schema = schema or {}
    parts = [f"missing {', '.join(schema['missing'])}"] if schema.get("missing") else []
    if schema.get("added"):
        parts.append(f"new {', '.join(schema['added'])}")
    parts += [f"{c['column']} was {c['was']}, now {c['now']}" for c in schema.get("changed", [])]
    return "; ".join(parts) or "the same columns"
