"""The CLI's plain-text views of runs: what `cauce runs` and `cauce run` print."""

from __future__ import annotations

from typing import Any

from shared.client.render import run_lines, run_summary
from shared.pipeline import STAGES


def view(**fields: Any) -> dict[str, Any]:
    """A run's view as `describe_run` gives it: every stage succeeded in 1.25 s unless told."""
    stages = [
        {"stage": s, "state": "succeeded", "seconds": 1.25, "error": None, "attempts": 1}
        for s in STAGES
    ]
    base = {
        "run_id": "01RUN",
        "pipeline": "houses",
        "state": "succeeded",
        "error": None,
        "created": "2026-11-27T18:02:03.456789+00:00",
        "stages": stages,
        "duplicate_of": None,
    }
    return {**base, **fields}


def test_runs_shows_when_how_long_and_what_came_of_it() -> None:
    line = run_summary(view(model_version=3, promoted=True))
    assert line.startswith("01RUN  2026-11-27 18:02:03  houses")
    assert "6.2s" in line and line.endswith("model v3 -> production")

    kept = run_summary(view(model_version=4, promoted=False, champion_version=3))
    assert kept.endswith("model v4 registered, not promoted: production stays on v3")

    failed = view(state="failed", error="ingest: column 'price' is empty")
    assert run_summary(failed).endswith("ingest: column 'price' is empty")


def test_a_duplicate_run_says_whose_model_it_is_not_how_many_stages_ran() -> None:
    stages = [
        {"stage": s, "state": "skipped", "seconds": None, "error": None, "attempts": 0}
        for s in STAGES
    ]
    stages[0] |= {"state": "succeeded", "seconds": 0.08}
    line = run_summary(view(stages=stages, duplicate_of="01EARLIER", model_version=2))
    assert line.endswith("duplicate of 01EARLIER: model v2")
    assert "stages" not in line


def test_a_running_run_names_the_stage_at_work() -> None:
    stages = [
        {"stage": s, "state": "queued", "seconds": None, "error": None, "attempts": 0}
        for s in STAGES
    ]
    stages[0] |= {"state": "succeeded", "seconds": 0.5}
    stages[1] |= {"state": "running"}
    assert run_summary(view(state="running", stages=stages)).endswith("preprocess running")


def test_trials_name_the_metric_they_were_chosen_by() -> None:
    trial = {"index": 2, "score": 0.91, "seconds": 1.5, "estimator": "ridge", "params": {}}
    lines = run_lines(view(metric="r2", trials=4, top_trials=[trial]))
    assert "  best trials of 4 (validation r2):" in lines


def test_a_blend_names_its_trials_and_their_weights() -> None:
    members = [
        {"trial": 4, "estimator": "hist_gradient_boosting", "params": {}, "weight": 0.52},
        {"trial": 0, "estimator": "logistic_regression", "params": {"C": 3.0}, "weight": 0.48},
    ]
    best = {"estimator": "ensemble", "params": {"members": members}, "score": 0.98021}
    trial = {"index": 4, "score": 0.975, "seconds": 1.5, "estimator": "hist_gradient_boosting"}
    lines = run_lines(
        view(
            metric="accuracy",
            trials=12,
            selection={"method": "cv", "folds": 5},
            best=best,
            top_trials=[{**trial, "params": {}}],
        )
    )
    assert (
        "  served: a blend of 2 trials (5-fold cross-validated accuracy 0.9802): "
        "#4 hist_gradient_boosting 52%, #0 logistic_regression 48%"
    ) in lines
    ridge = {"estimator": "ridge", "params": {}, "score": 0.5}
    single = run_lines(view(metric="r2", trials=4, best=ridge))
    assert not [line for line in single if "blend" in line]


def test_the_data_checks_warnings_show_on_the_run_and_in_the_list() -> None:
    warning = "column 'tenure' is missing from this drop but the production model (v3) was trained"
    shown = view(model_version=4, promoted=True, warnings=[warning])
    assert f"  warning: {warning}" in run_lines(shown)
    assert run_summary(shown).endswith("model v4 -> production  [1 data warning]")
    assert run_summary(view(model_version=4, promoted=True, warnings=[])).endswith("production")
