"""Plain-text views of runs for the CLI (JSON output needs none of this)."""

from __future__ import annotations

import json
import statistics
from typing import Any

from shared.text import visible


def run_lines(view: dict[str, Any]) -> list[str]:
    """A run as lines: header, stages, best trials, metrics, gate and model."""
    lines = [f"run {view['run_id']}  pipeline {view['pipeline']}  {view['state']}"]
    if view["error"]:
        lines.append(f"  error: {view['error']}")
    if view.get("duplicate_of"):
        lines.append(
            f"  duplicate of run {view['duplicate_of']} (same data and spec; "
            "submit with --force to train again)"
        )
    if view.get("target"):
        lines.append(target_line(view))
    lines += [f"  warning: {warning}" for warning in view.get("warnings") or []]
    lines += [_stage_line(stage) for stage in view["stages"]]
    if view.get("search"):
        lines.append("  search: " + search_line(view["search"]))
    lines += _trial_lines(view)
    if view.get("metrics"):
        shown = {
            k: v for k, v in view["metrics"].items() if isinstance(v, int | float) and k != "rows"
        }
        lines.append("  test metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in shown.items()))
    if view.get("gate"):
        verdict = "passed" if view["gate"]["passed"] else "not passed"
        lines.append(f"  gate: {verdict} ({view['gate']['reason']})")
    if view.get("model_version"):
        lines.append(f"  model: v{view['model_version']}{_production(view)}")
    return [visible(line) for line in lines]


def run_summary(view: dict[str, Any]) -> str:
    """A run on one line for `cauce runs`: when it started, how long it took, what came of it."""
    created = str(view.get("created") or "")[:19].replace("T", " ")
    seconds = [s["seconds"] for s in view["stages"] if s["seconds"] is not None]
    took = f"{sum(seconds):.1f}s" if seconds else ""
    warned = len(view.get("warnings") or [])
    note = f"  [{warned} data warning{'s' if warned > 1 else ''}]" if warned else ""
    return (
        f"{view['run_id']}  {created:<19}  {view['pipeline'] or '-':<16} {view['state']:<10} "
        f"{took:>8}  {outcome(view)}{note}"
    )


def outcome(view: dict[str, Any]) -> str:
    """What the run came to: its error, the model it made and whether it serves, or its stage."""
    if view["error"]:
        return str(view["error"])
    if view.get("duplicate_of"):
        return f"duplicate of {view['duplicate_of']}: model v{view.get('model_version')}"
    if view.get("model_version"):
        return f"model v{view['model_version']}{_production(view)}"
    if view["state"] == "running":
        running = next((s["stage"] for s in view["stages"] if s["state"] == "running"), None)
        return f"{running} running" if running else ""
    return ""


def target_line(view: dict[str, Any]) -> str:
    """What the run learns to predict, saying which of the target and task were guessed."""
    target = f"target {view['target']}" + (" (guessed)" if view.get("target_guessed") else "")
    task = f"task {view['task']}" + (" (guessed)" if view.get("task_guessed") else "")
    hint = "; set the target with --target or in the spec" if view.get("target_guessed") else ""
    return f"  {target}, {task}{hint}"


def _production(view: dict[str, Any]) -> str:
    if view.get("promoted"):
        return " -> production"
    if view.get("duplicate_of"):
        return f" (trained by run {view['duplicate_of']})"
    if view.get("champion_version"):
        return f" registered, not promoted: production stays on v{view['champion_version']}"
    return " registered, not promoted: production is unchanged"


def _stage_line(stage: dict[str, Any]) -> str:
    seconds = f"{stage['seconds']:.2f}s" if stage["seconds"] is not None else ""
    note = f"  cached from run {stage['cached_from']}" if stage.get("cached_from") else ""
    error = f"  {stage['error']}" if stage["error"] else ""
    return f"  {stage['stage']:<11} {stage['state']:<10} {seconds:>8}{note}{error}"


def _trial_lines(view: dict[str, Any]) -> list[str]:
    top = view.get("top_trials") or []
    if not top:
        best = view.get("best")
        if not best:
            return []
        return [
            f"  best: {best['estimator']} {json.dumps(best['params'])} "
            f"({compared_on(view)} {best['score']:.4f})"
        ]
    lines = [f"  best trials of {view.get('trials')} ({compared_on(view)}):"]
    for trial in top:
        seconds = f"{trial['seconds']:.2f}s" if trial.get("seconds") is not None else ""
        lines.append(
            f"    #{trial['index']:<4} {trial['score']:.4f}{spread(trial)}  {seconds:>7}  "
            f"{trial['estimator']} {json.dumps(trial['params'])}  {trial.get('worker')}"
        )
    blend = blend_line(view)
    return [*lines, f"  {blend}"] if blend else lines


def search_line(search: dict[str, Any]) -> str:
    """The search in one line: trials done, the budget and the time used and left while it runs;
    what was stopped or skipped at the budget once it ended."""
    done, planned = search.get("trials_done"), search.get("trials_planned")
    budget = search.get("budget_seconds")
    within = f"{budget:.0f}s budget" if budget else "no budget"
    if "used_seconds" not in search:
        if search.get("until_budget"):  # its skipped trials are the slots the budget left unused
            ran = (done or 0) - (search.get("skipped") or 0)
            cut = f" ({search['stopped']} stopped at the budget)" if search.get("stopped") else ""
            return f"{ran} trials within the {within}{cut}"
        cuts = [f"{search[k]} {k}" for k in ("stopped", "skipped") if search.get(k)]
        at = f" ({', '.join(cuts)} at the budget)" if cuts else ""
        return f"{done} trials, {within}{at}"
    left = search.get("left_seconds")
    about = f", about {left:.0f}s left" if left is not None else ""
    trials = (
        f"{done} trials done until the budget"
        if search.get("until_budget")
        else f"{done} of {planned} trials done"
    )
    return f"{trials}, {search['used_seconds']:.0f}s of {within} used{about}"


def blend_line(view: dict[str, Any]) -> str | None:
    """`served: a blend of 3 trials ...` when the search serves an ensemble of its trials."""
    best = view.get("best") or {}
    if best.get("estimator") != "ensemble":
        return None
    members = best["params"]["members"]
    parts = ", ".join(f"#{m['trial']} {m['estimator']} {m['weight']:.0%}" for m in members)
    return (
        f"served: a blend of {len(members)} trials ({compared_on(view)} {best['score']:.4f}): "
        + parts
    )


def compared_on(view: dict[str, Any]) -> str:
    """What the trials' scores are: `validation f1_macro`, or `5-fold cross-validated f1_macro`."""
    metric = view.get("metric") or "score"
    selection = view.get("selection") or {}
    if selection.get("method") == "cv":
        return f"{selection['folds']}-fold cross-validated {metric}"
    return f"validation {metric}"


def spread(trial: dict[str, Any]) -> str:
    """` ±0.0123`: the standard deviation of a cross-validated trial's fold scores."""
    folds = trial.get("fold_scores")
    return f" ±{statistics.pstdev(folds):.4f}" if folds else ""
