"""Tuning across train workers, step caching and duplicate drops, driven as a user would."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import requests

from tests.datasets import big_frame, cancer_frame, diabetes_frame
from tests.e2e.conftest import Stack
from tests.e2e.helpers import run_for, wait_run

SLOW_SEARCH = """target: progression
models:
  - estimator: random_forest
    search: {n_estimators: [600, 800, 1000], max_depth: [4, 8, null], min_samples_leaf: [1, 5]}
tuning: {trials: 10, parallelism: 2, sampler: tpe, budget_seconds: 900, ensemble: off}
"""


def _running_trial(stack: Stack, run_id: str, timeout: float = 60) -> tuple[int, int]:
    """(trial index, worker pid) of a trial that is being fitted right now."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for item in stack.store.list_objects(f"runs/{run_id}/train/trials/"):
            index = item.key.rsplit("/", 1)[-1].split(".")[0]
            if item.key.endswith(".heartbeat") and not stack.store.exists(
                item.key.replace(".heartbeat", ".json")
            ):
                worker = stack.store.get_json(item.key)["worker"]
                return int(index), int(worker.rsplit(":", 1)[1])
        time.sleep(0.1)
    raise AssertionError("no trial was seen running")


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _asked(stack: Stack, run_id: str, index: int, timeout: float = 30) -> dict:
    """The point TPE trial `index` was given as it started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stack.store.exists(f"runs/{run_id}/train/trials/{index:05d}.params"):
            return stack.store.get_json(f"runs/{run_id}/train/trials/{index:05d}.params")
        time.sleep(0.05)
    raise AssertionError(f"trial {index} was given no point")


def test_a_tpe_search_spreads_over_workers_and_survives_a_killed_one(stack: Stack) -> None:
    stack.store.put_bytes("pipelines/tuned.yaml", SLOW_SEARCH.encode())
    stack.store.put_bytes("incoming/tuned/d.csv", diabetes_frame().to_csv(index=False).encode())
    run_id = run_for(stack.store, "incoming/tuned/d.csv")
    index, child = _running_trial(stack, run_id)
    point = _asked(stack, run_id, index)
    worker = _parent(child)  # the Celery worker whose pool child fits the trial
    os.killpg(os.getpgid(worker), signal.SIGKILL)  # the whole worker, as `docker kill` would
    assert stack.store.exists(f"runs/{run_id}/train/trials/{index:05d}.json") is False
    assert worker in [int(p.read_text()) for p in (stack.home / "pids").glob("train-*.pid")]

    run = wait_run(stack.store, run_id, timeout=240)
    assert run["state"] == "succeeded", run["error"]
    trials = stack.store.get_json(f"runs/{run_id}/train/trials.json")
    assert [t["index"] for t in trials] == list(range(10))
    assert all(t["state"] == "succeeded" for t in trials)
    # 442 rows and a choice to make: each trial is cross-validated over the 353 training and
    # validation rows, and records its five folds' scores.
    assert all(len(t["fold_scores"]) == 5 for t in trials)
    assert run["selection"] == {"method": "cv", "folds": 5}
    assert trials[index]["attempts"] >= 2  # the killed trial ran again, elsewhere or restarted
    assert trials[index]["params"] == point["params"]  # on the point it was first given
    # Every trial fitted the point asked for it as it started, from the results before it.
    plan = stack.store.get_json(f"runs/{run_id}/train/plan.json")
    assert plan["sampler"] == "tpe" and all(t["params"] is None for t in plan["trials"])
    for t in trials:
        assert t["params"] == _asked(stack, run_id, t["index"], timeout=0.1)["params"]
        assert set(t["params"]) == {"n_estimators", "max_depth", "min_samples_leaf"}
    assert len({t["worker"] for t in trials}) >= 2
    assert run["trials"] == 10 and len(run["top_trials"]) == 5
    scores = [t["score"] for t in run["top_trials"]]
    assert scores == sorted(scores)  # rmse: lower is better, best first

    shown = stack.cli("run", run_id).stdout
    assert "best trials of 10 (5-fold cross-validated rmse)" in shown and "random_forest" in shown
    page = requests.get(f"{stack.settings.console_url}/runs/{run_id}", timeout=10).text
    assert "5-fold cross-validated rmse" in page and "5 folds: " in page  # each fold on hover
    selections = [
        line
        for log in (stack.home / "logs").glob("train-*.log")
        for line in log.read_text().splitlines()
        if run_id in line and "selection ran" in line
    ]
    assert len(selections) == 1, selections
    # `ensemble: off`: the best trial alone is served, and no trial kept its predictions.
    assert run["best"]["estimator"] == "random_forest"
    kept = stack.store.list_objects(f"runs/{run_id}/train/trials/")
    assert not [item.key for item in kept if item.key.endswith(".predictions")]


def test_identical_stages_are_reused_and_recomputed_when_their_artifacts_are_gone(
    stack: Stack, tmp_path: Path
) -> None:
    data = tmp_path / "cancer.csv"
    # Rows in an order no other test uses: the first run must find nothing cached yet.
    cancer_frame().sample(frac=1, random_state=1234).to_csv(data, index=False)

    def submit(*flags: str) -> dict:
        args = ["submit", str(data), "-p", "cached", "--target", "diagnosis", "--wait", "--json"]
        return json.loads(stack.cli(*args, *flags).stdout)

    def cached(run: dict) -> dict[str, str | None]:
        return {s["stage"]: s["cached_from"] for s in run["stages"]}

    first = submit()
    second = submit("--force")
    assert cached(first) == dict.fromkeys(("ingest", "preprocess", "train", "evaluate", "deploy"))
    assert cached(second)["preprocess"] == first["run_id"]
    assert cached(second)["train"] == first["run_id"]
    assert second["best"] == first["best"] and second["state"] == "succeeded"
    assert second["top_trials"] == first["top_trials"]  # the trials were not run again

    stack.store.delete(f"runs/{first['run_id']}/train/model.skops")
    stack.store.delete(f"runs/{second['run_id']}/train/model.skops")
    third = submit("--force")
    assert cached(third)["preprocess"] == first["run_id"] and cached(third)["train"] is None

    fourth = submit("--force", "--no-cache")
    assert set(cached(fourth).values()) == {None}
    assert "cached from run" in stack.cli("run", second["run_id"]).stdout


def test_the_same_content_again_is_a_duplicate_unless_forced(stack: Stack) -> None:
    body = cancer_frame().to_csv(index=False).encode()
    stack.store.put_bytes("pipelines/dupes.yaml", b"target: diagnosis\n")
    stack.store.put_bytes("incoming/dupes/monday.csv", body)
    first = wait_run(stack.store, run_for(stack.store, "incoming/dupes/monday.csv"))
    stack.store.put_bytes("incoming/dupes/tuesday.csv", body)  # same bytes, another name
    again = wait_run(stack.store, run_for(stack.store, "incoming/dupes/tuesday.csv"))
    assert first["state"] == again["state"] == "succeeded"
    assert again["duplicate_of"] == first["run_id"]
    assert again["model_version"] == first["model_version"] == 1
    assert [s["state"] for s in again["stages"]] == ["succeeded"] + ["skipped"] * 4
    assert [m["version"] for m in stack.cli_json("models", "dupes")] == [1]
    shown = stack.cli("run", again["run_id"]).stdout
    assert f"duplicate of run {first['run_id']}" in shown


# A quick boosting model first, then a forest far too big for the budget, then more of each.
BUDGETED = """target: progression
models:
  - estimator: hist_gradient_boosting
    search: {learning_rate: [0.1, 0.2, 0.3]}
  - estimator: random_forest
    search: {n_estimators: [20000], max_depth: [null, 12, 6]}
tuning: {trials: 3, parallelism: 1, sampler: grid, budget_seconds: 12}
"""


def test_a_search_cut_by_its_budget_stops_a_trial_skips_the_rest_and_deploys_its_best(
    stack: Stack,
) -> None:
    stack.store.put_bytes("pipelines/budget.yaml", BUDGETED.encode())
    stack.store.put_bytes("incoming/budget/d.csv", diabetes_frame().to_csv(index=False).encode())
    run_id = run_for(stack.store, "incoming/budget/d.csv")
    index, _ = _running_trial(stack, run_id)
    while index == 0:  # the first trial is quick; follow the search to the forest's
        time.sleep(0.2)
        index, _ = _running_trial(stack, run_id)
    shown = stack.cli("run", run_id).stdout
    assert "of 6 trials done" in shown and "s of 12s budget used" in shown, shown

    run = wait_run(stack.store, run_id, timeout=240)
    assert run["state"] == "succeeded", run["error"]
    trials = stack.store.get_json(f"runs/{run_id}/train/trials.json")
    states = [t["state"] for t in trials]
    # Turns: boosting, forest, boosting, forest...; the first forest reaches the budget.
    assert [t["estimator"] for t in trials][:2] == ["hist_gradient_boosting", "random_forest"]
    assert states[:2] == ["succeeded", "stopped"], trials
    assert "time limit" in trials[1]["error"]
    assert trials[1]["seconds"] < 14
    assert set(states[2:]) <= {"skipped", "stopped", "succeeded"} and "skipped" in states
    assert run["search"]["stopped"] >= 1 and run["search"]["skipped"] >= 1
    assert run["best"]["estimator"] == "hist_gradient_boosting"
    assert run["model_version"] == 1
    train = next(s for s in run["stages"] if s["stage"] == "train")
    assert train["seconds"] < 12 + 10  # the budget, and the refit and hand-offs
    shown = stack.cli("run", run_id).stdout
    assert "search: 6 trials, 12s budget (" in shown and "skipped at the budget" in shown, shown
    page = requests.get(f"{stack.settings.console_url}/runs/{run_id}", timeout=10).text
    assert "6 trials, 12s budget (" in page and "not started: the search" in page


UNTIL_BUDGET = """target: diagnosis
models:
  - estimator: logistic_regression
  - estimator: hist_gradient_boosting
tuning: {trials: auto, sampler: tpe, parallelism: 2, budget_seconds: 10}
"""


def test_a_search_until_its_budget_runs_trials_until_then_and_ends_its_chains(
    stack: Stack,
) -> None:
    stack.store.put_bytes("pipelines/until.yaml", UNTIL_BUDGET.encode())
    stack.store.put_bytes("incoming/until/c.csv", cancer_frame().to_csv(index=False).encode())
    run_id = run_for(stack.store, "incoming/until/c.csv")
    _running_trial(stack, run_id)
    shown = stack.cli("run", run_id).stdout
    assert "trials done until the budget" in shown and "of 10s budget used" in shown, shown

    run = wait_run(stack.store, run_id, timeout=120)
    assert run["state"] == "succeeded", run["error"]
    trials = stack.store.get_json(f"runs/{run_id}/train/trials.json")
    assert [t["index"] for t in trials] == list(range(100))  # the plan's 50 per candidate
    planned = stack.store.get_json(f"runs/{run_id}/train/plan.json")["trials"]
    assert [t["estimator"] for t in trials] == [t["estimator"] for t in planned]
    ran = [t for t in trials if t["state"] != "skipped"]
    # More than the 4 per candidate of a search with a trial count, fewer than planned.
    assert 8 < len(ran) < 100, len(ran)
    assert {t["estimator"] for t in ran} == {"logistic_regression", "hist_gradient_boosting"}
    assert all(t["state"] in ("succeeded", "stopped") for t in ran)
    assert all(len(t["fold_scores"]) == 5 for t in ran if t["state"] == "succeeded")
    # The two chains ended at the budget: the trials left were recorded, not each sent.
    attempts = [
        o.key
        for o in stack.store.list_objects(f"runs/{run_id}/train/trials/")
        if o.key.endswith(".attempts")
    ]
    assert len(attempts) <= len(ran) + 2
    train = next(s for s in run["stages"] if s["stage"] == "train")
    assert 10 <= train["seconds"] < 10 + 15  # the budget, then the refit and hand-offs
    assert 0 <= run["search"]["fit_seconds"] < train["seconds"] - 10
    assert run["search"]["until_budget"] is True
    shown = stack.cli("run", run_id).stdout
    assert f"search: {len(ran)} trials within the 10s budget" in shown, shown


HALVING = """target: y
models:
  - estimator: logistic_regression
  - estimator: hist_gradient_boosting
tuning: {trials: 3, parallelism: 2, budget_seconds: 900}
"""


def test_a_search_on_a_big_table_starts_on_subsamples_and_climbs_the_best(stack: Stack) -> None:
    stack.store.put_bytes("pipelines/halving.yaml", HALVING.encode())
    stack.store.put_bytes("incoming/halving/big.csv", big_frame().to_csv(index=False).encode())
    run = wait_run(stack.store, run_for(stack.store, "incoming/halving/big.csv"), timeout=300)
    assert run["state"] == "succeeded", run["error"]
    run_id = run["run_id"]
    plan = stack.store.get_json(f"runs/{run_id}/train/plan.json")
    # 210,000 training rows: a first rung on a third of them, then all of them.
    assert plan["halving"] == {"rungs": [70_000, None], "eta": 3}
    assert len(plan["trials"]) == 8  # 3 configurations per candidate, and room to climb
    trials = stack.store.get_json(f"runs/{run_id}/train/trials.json")
    first = [t for t in trials if t["rung"] == 0]
    climbed = [t for t in trials if t["rung"] == 1]
    assert all(t["rows"] == 70_000 for t in first) and len(first) >= 4
    assert climbed and all(t["rows"] is None for t in climbed)
    by_index = {t["index"]: t for t in trials}
    for t in climbed:
        source = by_index[t["promoted_from"]]
        assert source["rung"] == 0 and source["state"] == "succeeded"
        assert (t["estimator"], t["params"]) == (source["estimator"], source["params"])
        # It was in the best third of the first rung's trials finished before it started.
        assert source["score"] >= sorted(x["score"] for x in first if x["score"])[0]
    assert len({t["promoted_from"] for t in climbed}) == len(climbed)  # each climbed once
    best = max((t for t in climbed if t["state"] == "succeeded"), key=lambda t: t["score"])
    assert (run["best"]["estimator"], run["best"]["params"]) == (best["estimator"], best["params"])
    assert run["best"]["score"] == best["score"]
    page = requests.get(f"{stack.settings.console_url}/runs/{run_id}", timeout=10).text
    assert "rung 0: 70,000 rows" in page and "rung 1: all rows" in page
