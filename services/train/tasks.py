"""train.run plans the search, train.trial runs one trial each, train.select refits the best."""

from __future__ import annotations

import importlib
import io
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from celery import Celery

from services.train import ensemble
from services.train.budget import TrialStopped, default_budget, seconds_left, time_limit
from services.train.halving import ETA, HALVING_MIN_ROWS, rungs, slots
from services.train.training import (
    CV_MAX_ROWS,
    best_trial,
    cv_folds,
    default_candidates,
    fit_model,
    join_model,
    make_estimator,
    plan_trials,
    refit_params,
    run_trial,
    selection_method,
)
from services.train.tuning import (
    TrialData,
    count_attempt,
    decide,
    load_results,
    top_trials,
)
from shared.artifacts import dump_model, load_model
from shared.context import StageContext
from shared.errors import Conflict, DataError, NotFound
from shared.heartbeat import heartbeat, last_beat
from shared.ids import now
from shared.layout import trial_key
from shared.messages import RunStage, RunTrial
from shared.messaging import send
from shared.outcome import Failure, TaskLike, settle
from shared.plugins import used_by
from shared.results import Best, Planned, StageStatus, Trained
from shared.scoring import METRICS
from shared.spec import AUTO_TRIALS
from shared.stage import StageRunner, create_stage_worker, parse_message
from shared.trials import due_trials, finished_trials, next_trial

# Imported by the worker's main process before Celery forks its pool, so that no pool process
# (a replacement one included) pays for them on its first task: skops.io alone takes 0.5-2 s.
PRELOAD = ("skops.io",)


def cache_inputs(ctx: StageContext) -> dict[str, Any]:
    """What the search depends on: the preprocessed data and the spec's training part."""
    spec = ctx.spec()
    return {
        "preprocess": ctx.upstream("preprocess").cache_key,
        "spec": spec.model_dump(include={"target", "task", "metric", "models", "tuning"}),
        "seed": spec.split.seed,
        # the plugin estimators' packages and versions: new plugin code searches again
        "plugins": [p for p in used_by(spec) if p["kind"] == "estimator"],
    }


def plan(ctx: StageContext) -> Planned:
    """Write the numbered trial plan and start the first `tuning.parallelism` trials."""
    spec = ctx.spec()
    defaults = dict(default_candidates(spec.task))  # a model listed without `search` gets these
    until_budget = spec.tuning.trials == "auto"
    per_candidate = AUTO_TRIALS if until_budget else int(spec.tuning.trials)
    rows = ctx.upstream("preprocess").rows
    halving: dict[str, Any] | None = None
    big = rows.get("train", 0) >= HALVING_MIN_ROWS and spec.tuning.selection != "cv"
    if spec.tuning.halving == "auto" and big:
        steps = rungs(rows["train"])
        halving = {"rungs": steps, "eta": ETA}
        per_candidate = slots(per_candidate, len(steps))
    trials = plan_trials(
        [(m.estimator, m.search or defaults[m.estimator]) for m in spec.models],
        task=spec.task,
        trials_per_candidate=per_candidate,
        seed=spec.split.seed,
        sampler=spec.tuning.sampler,
        defaults_first={m.estimator for m in spec.models if not m.search},
    )
    search: dict[str, Any] = {
        "trials": trials,
        "halving": halving,
        "until_budget": until_budget,
        "sampler": spec.tuning.sampler,
        "per_candidate": per_candidate,
        "parallelism": spec.tuning.parallelism,
        "budget_seconds": spec.tuning.budget_seconds or default_budget(rows.get("train", 0)),
        "selection": _selection(ctx, trials=len(trials), rows=rows),
        "created_at": ctx.store.server_time(),  # the store's clock: recovery judges by it
    }
    # Trials keep the predictions they were scored on for ensemble selection at the end.
    blend = spec.tuning.ensemble or ctx.settings.ensemble
    search["ensemble"] = blend == "auto" and search["selection"]["method"] == "cv"
    try:
        ctx.store.put_json(ctx.key("plan.json"), search, if_none_match=True)
    except Conflict:
        search = ctx.store.get_json(ctx.key("plan.json"))  # a redelivered plan keeps the first
    for index in due_trials((), parallelism=search["parallelism"], count=len(search["trials"])):
        send_trial(ctx, index)
    ctx.defer()
    return Planned(
        trials_planned=len(search["trials"]),
        parallelism=search["parallelism"],
        budget_seconds=search.get("budget_seconds"),
        selection=search.get("selection"),
        cache_key=ctx.memo.get("cache_key"),
    )


def _selection(ctx: StageContext, *, trials: int, rows: dict[str, int]) -> dict[str, Any]:
    """How the search compares its trials (training.selection_method), reading the targets of
    the training and validation rows only when cross-validation is in question."""
    spec = ctx.spec()
    labelled = rows.get("train", 0) + rows.get("validation", 0)
    choice, smallest = spec.tuning.selection, None
    if choice == "holdout" or (choice == "auto" and (trials < 2 or labelled > CV_MAX_ROWS)):
        return {"method": "holdout"}
    if spec.task == "classification":
        targets = [
            pd.read_parquet(
                io.BytesIO(ctx.store.get_bytes(ctx.key(f"{name}.parquet", "preprocess"))),
                columns=[spec.target],
            )[spec.target]
            for name in ("train", "validation")
        ]
        smallest = int(pd.concat(targets).value_counts().min())
    return selection_method(
        choice, trials=trials, rows=labelled, folds=spec.tuning.folds, smallest_class=smallest
    )


def send_trial(ctx: StageContext, index: int) -> None:
    """Enqueue one trial on the train queue."""
    message = RunTrial(run_id=ctx.run_id, pipeline=ctx.pipeline, index=index)
    send(ctx.app, "train.trial", message, queue="train")


def trial(ctx: StageContext, index: int, *, data: TrialData, worker: str) -> bool:
    """Run one trial once (a dead worker's trial is retried, then recorded failed), then hand
    on; True when it was the run's last trial to finish (the selection message is sent). A trial
    that finds the budget used up records itself and the rest of its chain as skipped, so that
    the chain ends there instead of sending one task per trial left."""
    search = ctx.store.get_json(ctx.key("plan.json"))
    count = len(search["trials"])
    if not ctx.store.exists(trial_key(ctx.run_id, index)):
        attempts = count_attempt(ctx, index)
        planned = search["trials"][index]
        if attempts > ctx.settings.max_redeliveries + 1:
            result = {
                **planned,
                "state": "failed",
                "score": None,
                "seconds": None,
                "error": f"the worker stopped {attempts - 1} times while running it",
            }
        else:
            result = {
                **planned,
                **_budgeted_trial(ctx, search, planned, data),
                "attempts": attempts,
            }
        if result["state"] == "skipped":
            _skip_chain(ctx, search, index, result)
        ctx.store.put_json(
            trial_key(ctx.run_id, index), {**result, "worker": worker, "finished": now()}
        )
    following = next_trial(index, parallelism=search["parallelism"], count=count)
    if following is not None and not ctx.store.exists(trial_key(ctx.run_id, following)):
        send_trial(ctx, following)
    if len(finished_trials(ctx.store, ctx.run_id)) == count:
        message = RunStage(run_id=ctx.run_id, pipeline=ctx.pipeline)
        send(ctx.app, "train.select", message, queue="train")
        return True
    return False


def _skip_chain(
    ctx: StageContext, search: dict[str, Any], index: int, skipped: dict[str, Any]
) -> None:
    """Record the trials that trial `index`'s chain would still send as skipped, like it."""
    following = next_trial(index, parallelism=search["parallelism"], count=len(search["trials"]))
    outcome = {key: skipped[key] for key in ("state", "score", "seconds", "error")}
    while following is not None:
        record = {**search["trials"][following], **outcome, "finished": now()}
        ctx.store.put_json(trial_key(ctx.run_id, following), record)
        following = next_trial(
            following, parallelism=search["parallelism"], count=len(search["trials"])
        )


def _budgeted_trial(
    ctx: StageContext, search: dict[str, Any], planned: dict[str, Any], data: TrialData
) -> dict[str, Any]:
    """Fit the trial within what is left of the search's budget, or skip it when nothing is
    (the first trial always runs to its end: a search always has a model)."""
    budget, index = search.get("budget_seconds"), planned["index"]
    left = seconds_left(ctx, index, budget) if budget and index > 0 else None
    if left is not None and left <= 0:
        ctx.log.info("trial %s skipped: the %.0f s budget is used up", index, budget)
        error = f"not started: the search's time budget of {budget:.0f} s was used up"
        return {"state": "skipped", "score": None, "seconds": 0.0, "error": error}
    selection = search.get("selection") or {}
    folds = selection.get("folds") if selection.get("method") == "cv" else None
    every = ctx.settings.heartbeat_seconds
    with heartbeat(ctx.store, trial_key(ctx.run_id, index, "heartbeat"), every=every):
        decided = decide(ctx, search, index)
        blend = bool(search.get("ensemble"))
        return {**decided, **_fit_trial(ctx, decided, data, limit=left, folds=folds, blend=blend)}


def _fit_trial(
    ctx: StageContext,
    planned: dict[str, Any],
    data: TrialData,
    *,
    limit: float | None = None,
    folds: int | None = None,
    blend: bool = False,
) -> dict[str, Any]:
    spec = ctx.spec()
    started = time.monotonic()
    try:  # reading and transforming the splits counts against the trial's limit too
        with time_limit(limit):
            splits = data.get(ctx)
    except TrialStopped as exc:
        seconds = round(time.monotonic() - started, 3)
        return {"state": "stopped", "score": None, "seconds": seconds, "error": str(exc)}
    if limit is not None:
        limit -= time.monotonic() - started
    classes = sorted(splits["y_train"].unique().tolist()) if spec.task == "classification" else None
    X_train, y_train = splits["X_train"], splits["y_train"]
    rows = planned.get("rows")
    if rows is not None and rows < len(y_train):  # a halving rung below the last
        pick = np.sort(np.random.default_rng(spec.split.seed).permutation(len(y_train))[:rows])
        X_train, y_train = X_train[pick], y_train.iloc[pick]

    def keep(model: Any, value: float) -> None:
        if rows is None:  # only a model fitted on every training row can be served as it is
            data.keep(ctx.run_id, planned["index"], model, value, metric=spec.metric)

    def save(predicted: np.ndarray) -> None:
        key = trial_key(ctx.run_id, planned["index"], "predictions")
        ctx.store.put_bytes(key, ensemble.dump_predictions(predicted))

    return run_trial(
        task=spec.task,
        estimator=planned["estimator"],
        params=planned["params"],
        metric=spec.metric,
        classes=classes,
        on_fitted=keep,
        on_predictions=save if blend else None,
        limit=limit,
        folds=folds,
        seed=spec.split.seed,
        X_train=X_train,
        y_train=y_train,
        X_val=splits["X_val"],
        y_val=splits["y_val"],
    )


def claim_selection(ctx: StageContext, task_id: str) -> bool:
    """Whether this task may run the run's one selection: it claimed it, it is a redelivery of
    the claimer, or the claimer went quiet (its worker died) and this task took over."""
    claim = {"task_id": task_id, "claimed": now()}
    try:
        ctx.store.put_json(ctx.key("select.json"), claim, if_none_match=True)
        return True
    except Conflict:
        body, etag = ctx.store.get_with_etag(ctx.key("select.json"))
    if json.loads(body)["task_id"] == task_id:
        return True
    beat = last_beat(ctx.store, ctx.key("heartbeat.json")) or 0.0
    if ctx.store.server_time() - beat < ctx.settings.stale_seconds:
        return False
    try:
        ctx.store.put_json(ctx.key("select.json"), claim, if_match=etag)
    except Conflict:
        return False
    return True


def _best_model(ctx: StageContext, best: dict[str, Any], data: TrialData) -> tuple[Any, Any]:
    """The best trial's estimator joined to the transformer, and the training targets: the one
    this process fitted in that trial when it ran it (the same data, parameters and seed give
    the same model), else refitted on the training split (with the trees the trial kept when it
    stopped early: `refit_params`)."""
    kept = data.take(ctx.run_id, best["index"])
    if kept is not None:
        estimator, splits = kept
        ctx.log.info("selection reuses trial %s's fitted %s", best["index"], best["estimator"])
        return join_model(splits["transformer"], estimator), splits["y_train"]
    spec = ctx.spec()
    part = ctx.store.get_frame(ctx.key("train.parquet", "preprocess"))
    transformer = load_model(ctx.store.get_bytes(ctx.key("transformer.skops", "preprocess")))
    model = fit_model(
        transformer=transformer,
        task=spec.task,
        estimator=best["estimator"],
        params=refit_params(best),
        X=part.drop(columns=[spec.target]),
        y=part[spec.target],
    )
    return model, part[spec.target]


def _blend(
    ctx: StageContext,
    search: dict[str, Any],
    results: list[dict[str, Any]],
    best: dict[str, Any],
    data: TrialData,
) -> tuple[Any, Any, Best] | None:
    """The weighted blend of the best trials (services/train/ensemble.py) fitted on the training
    split, with the training targets and its record, or None when the best trial alone scores
    as well out of fold (or its predictions are missing)."""
    spec = ctx.spec()
    greater_is_better = METRICS[spec.metric].greater_is_better
    ranked = top_trials(results, greater_is_better=greater_is_better, count=ensemble.LIBRARY + 1)
    others = [t for t in ranked if t["index"] != best["index"]]
    library, arrays = [], []
    for trial in [best, *others][: ensemble.LIBRARY]:
        try:
            key = trial_key(ctx.run_id, trial["index"], "predictions")
            arrays.append(ensemble.load_predictions(ctx.store.get_bytes(key)))
        except NotFound:
            if trial is best:
                return None
            continue
        library.append(trial)
    if len(library) < 2:
        return None
    splits = data.get(ctx)
    y_train = splits["y_train"]
    # Out-of-fold predictions follow the cross-validated rows: training, then validation.
    y = pd.concat([y_train, splits["y_val"]], ignore_index=True)
    classes = sorted(y_train.unique().tolist()) if spec.task == "classification" else None
    # The folds the trials were scored on (the same seeded split of the same targets), so that
    # the blend is scored as they were: the mean of its fold scores.
    folds = [
        rows
        for _, rows in cv_folds(
            task=spec.task,
            folds=search["selection"]["folds"],
            seed=spec.split.seed,
            X=np.zeros((len(y), 1)),
            y=y,
        )
    ]
    picks, value = ensemble.blend_weights(
        arrays, y, metric=spec.metric, classes=classes, folds=folds
    )
    if len(picks) < 2:
        return None
    total = sum(picks.values())
    members = [
        (
            library[p],
            make_estimator(
                spec.task, library[p]["estimator"], refit_params(library[p]), len(y_train)
            ),
            count / total,
        )
        for p, count in sorted(picks.items(), key=lambda pick: -pick[1])
    ]
    model = ensemble.voting_model(
        spec.task, [(f"{t['estimator']}_{t['index']}", e, w) for t, e, w in members]
    )
    model.fit(splits["X_train"], y_train)
    data.forget(ctx.run_id)
    described = [
        {
            "trial": t["index"],
            "estimator": t["estimator"],
            "params": refit_params(t),
            "weight": round(w, 4),
        }
        for t, _, w in members
    ]
    ctx.log.info(
        "ensemble of %s trials scores %s against the best trial's %s",
        len(members),
        value,
        best["score"],
    )
    record = Best(estimator="ensemble", params={"members": described}, score=value)
    return join_model(splits["transformer"], model), y_train, record


def select(ctx: StageContext, *, task_id: str, data: TrialData | None = None) -> Trained | None:
    """Claim the run's one selection, pick the best trial on validation, refit and save it."""
    search = ctx.store.get_json(ctx.key("plan.json"))
    count = len(search["trials"])
    if len(finished_trials(ctx.store, ctx.run_id)) < count:
        ctx.log.info("selection asked for before every trial finished; ignoring it")
        return None
    if not claim_selection(ctx, task_id):
        ctx.log.info("selection already claimed by another task; dropping this one")
        return None
    spec = ctx.spec()
    results = load_results(ctx, count)
    ctx.store.put_json(ctx.key("trials.json"), results)
    best = best_trial(results, spec.metric)
    chosen = Best(estimator=best["estimator"], params=refit_params(best), score=best["score"])
    data = data or TrialData()
    started = time.perf_counter()
    blended = None
    if search.get("ensemble"):
        try:
            blended = _blend(ctx, search, results, best, data)
        except (ValueError, ArithmeticError) as exc:  # the blend is a bonus: the best trial stays
            ctx.log.warning("ensemble selection failed, serving the best trial: %s", exc)
    if blended is not None:
        model, y_train, chosen = blended
    else:
        model, y_train = _best_model(ctx, best, data)
    fit_seconds = round(time.perf_counter() - started, 3)
    ctx.store.put_bytes(ctx.key("model.skops"), dump_model(model))
    classes = sorted(y_train.unique().tolist()) if spec.task == "classification" else None
    ctx.log.info("selection ran: best %s %s", chosen.estimator, chosen.params)
    return Trained(
        best=chosen,
        metric=spec.metric,
        classes=classes,
        trials=len(results),
        failed_trials=sum(1 for t in results if t["state"] == "failed"),
        stopped_trials=sum(1 for t in results if t["state"] == "stopped"),
        skipped_trials=sum(1 for t in results if t["state"] == "skipped"),
        budget_seconds=search.get("budget_seconds"),
        until_budget=bool(search.get("until_budget")),
        selection=search.get("selection"),
        top_trials=top_trials(results, greater_is_better=METRICS[spec.metric].greater_is_better),
        selected_by=task_id,
        fit_seconds=fit_seconds,
        outputs=["plan.json", "trials.json", "model.skops"],
    )


def create_worker() -> Celery:
    """The train worker: the stage task plus the trial and selection tasks on the same queue."""
    app, runner = create_stage_worker("train", plan, cache_inputs=cache_inputs)
    data = TrialData()

    @app.task(name="train.trial", bind=True, max_retries=8)
    def train_trial(task: TaskLike, **body: Any) -> None:
        message = parse_message(RunTrial, body, "train.trial")
        if message is not None:
            runner.retrying(task, message, lambda: _trial(runner, task, message, data))

    @app.task(name="train.select", bind=True, max_retries=8)
    def train_select(task: TaskLike, **body: Any) -> None:
        message = parse_message(RunStage, body, "train.select")
        if message is not None:
            runner.retrying(task, message, lambda: finish(runner, task, message, data))

    for name in PRELOAD:
        importlib.import_module(name)
    return app


def _running(runner: StageRunner, message: RunStage) -> StageStatus | None:
    """The run's train status while it waits on its trials; None when the task is stale."""
    status = runner.status(message.run_id)
    return status if status is not None and status.state == "running" else None


def _resumed(
    runner: StageRunner, task: TaskLike, message: RunStage, status: StageStatus
) -> StageContext:
    """The run's context for a trial or the selection, carrying the stage's counts (attempts,
    retries, deliveries lost), so that the status they write keeps them."""
    ctx = runner.context(task.app, message)
    ctx.memo["tries"] = {
        "attempts": status.attempts,
        "retries": status.retries,
        "interrupted": status.interrupted,
    }
    return ctx


def _failing(
    runner: StageRunner, ctx: StageContext, status: StageStatus
) -> Callable[[Failure], None]:
    """What records the train stage failed when one of its trials or its selection fails."""

    def fail(failure: Failure) -> None:
        runner.fail(ctx, failure, started=status.started or now(), attempts=status.attempts)

    return fail


def _trial(runner: StageRunner, task: TaskLike, message: RunTrial, data: TrialData) -> None:
    status = _running(runner, message)
    if status is None:
        return
    ctx = _resumed(runner, task, message, status)
    worker = str(task.request.hostname or "")
    last = settle(
        lambda: trial(ctx, message.index, data=data, worker=worker),
        fail=_failing(runner, ctx, status),
        log=ctx.log,
    )
    if last:
        # The last trial runs the selection here and now, in the process that may hold the
        # best trial's fitted model: a pool process that grew past CAUCE_WORKER_MAX_MEMORY_MB
        # is replaced after its task, so the `train.select` message (sent all the same, as the
        # fallback for a worker that dies here) would find a new process and refit.
        finish(runner, task, RunStage(run_id=message.run_id, pipeline=message.pipeline), data)


def finish(
    runner: StageRunner, task: TaskLike, message: RunStage, data: TrialData | None = None
) -> None:
    """Run the run's selection (`train.select`) and complete the train stage, or fail it with
    the reason when selection fails."""
    status = _running(runner, message)
    if status is None:
        return
    ctx = _resumed(runner, task, message, status)

    def choose() -> Trained | None:
        with heartbeat(ctx.store, ctx.key("heartbeat.json"), every=ctx.settings.heartbeat_seconds):
            try:
                return select(ctx, task_id=str(task.request.id), data=data)
            except NotFound as exc:  # a file of the run is gone: the run fails saying which
                raise DataError(str(exc)) from exc

    result = settle(choose, fail=_failing(runner, ctx, status), log=ctx.log)
    if result is not None:
        result = result.model_copy(update={"cache_key": status.cache_key})
        runner.complete(ctx, result, started=status.started or now(), attempts=status.attempts)
