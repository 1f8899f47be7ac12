"""Train's own side of the search: attempt counters, results in plan order, the best trials."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from services.train import tpe
from services.train.halving import climb
from services.train.training import default_candidates
from shared.artifacts import load_model
from shared.context import StageContext
from shared.errors import Conflict, NotFound
from shared.layout import trial_key
from shared.scoring import METRICS, is_better
from shared.trials import trial_objects


def load_results(ctx: StageContext, count: int) -> list[dict[str, Any]]:
    """Every trial's result, in plan order."""
    return [dict(ctx.store.get_json(trial_key(ctx.run_id, index))) for index in range(count)]


def count_attempt(ctx: StageContext, index: int) -> int:
    """Record one more start of a trial and return how many there have been."""
    try:
        attempts = int(ctx.store.get_json(trial_key(ctx.run_id, index, "attempts"))["attempts"])
    except NotFound:
        attempts = 0
    ctx.store.put_json(trial_key(ctx.run_id, index, "attempts"), {"attempts": attempts + 1})
    return attempts + 1


def decide(ctx: StageContext, search: dict[str, Any], index: int) -> dict[str, Any]:
    """Trial `index` as it will be fitted: its plan entry, with what is decided only as it
    starts written beside it with a conditional put (the first writer wins, and a redelivered
    or retried trial fits the same): a TPE point asked of its candidate's study, rebuilt from
    the bucket, and under halving the rung and rows it fits on, or the configuration it takes to
    a higher rung (services/train/halving.py)."""
    planned = search["trials"][index]
    halving = search.get("halving")
    if planned["params"] is not None and not halving:
        return planned
    key = trial_key(ctx.run_id, index, "params")
    try:
        return {**planned, **ctx.store.get_json(key)}
    except NotFound:
        pass
    spec = ctx.spec()
    greater_is_better = METRICS[spec.metric].greater_is_better
    seen = _seen(ctx, search, index)
    decision = None
    if halving:

        def claim(source: int) -> bool:
            try:
                ctx.store.put_json(
                    trial_key(ctx.run_id, source, "promoted"), {"by": index}, if_none_match=True
                )
            except Conflict:
                return False
            return True

        decision = climb(seen, halving["rungs"], greater_is_better=greater_is_better, claim=claim)
    if decision is None:
        estimator, params = planned["estimator"], planned["params"]
        if params is None:
            space = (
                next(m.search for m in spec.models if m.estimator == estimator)
                or dict(default_candidates(spec.task))[estimator]
            )
            params = tpe.ask(
                space,
                [t for t in seen if t["estimator"] == estimator and not t.get("rung")],
                greater_is_better=greater_is_better,
                seed=spec.split.seed + index,
                startup=tpe.startup_trials(search.get("per_candidate", len(search["trials"]))),
            )
        decision = {"estimator": estimator, "params": params}
        if halving:
            decision.update(rung=0, rows=halving["rungs"][0])
    try:
        ctx.store.put_json(key, decision, if_none_match=True)
    except Conflict:
        decision = ctx.store.get_json(key)
    return {**planned, **decision}


def _seen(ctx: StageContext, search: dict[str, Any], asking: int) -> list[dict[str, Any]]:
    """The search's other trials as the bucket holds them: the results of the finished ones
    and the decisions of the ones still running (`state: running`)."""
    files: dict[int, set[str]] = {}
    for number, suffix, _ in trial_objects(ctx.store, ctx.run_id):
        files.setdefault(number, set()).add(suffix)
    seen = []
    for index, suffixes in sorted(files.items()):
        if index == asking:
            continue
        if "json" in suffixes:
            seen.append(dict(ctx.store.get_json(trial_key(ctx.run_id, index))))
        elif "params" in suffixes:
            decided = ctx.store.get_json(trial_key(ctx.run_id, index, "params"))
            seen.append({**search["trials"][index], **decided, "state": "running"})
    return seen


def top_trials(
    trials: list[dict[str, Any]], *, greater_is_better: bool, count: int = 5
) -> list[dict[str, Any]]:
    """The best succeeded trials, best first."""
    scored = [t for t in trials if t.get("state") == "succeeded"]
    scored.sort(key=lambda t: t["score"], reverse=greater_is_better)
    return [
        {
            k: t.get(k)
            for k in (
                "index",
                "estimator",
                "params",
                "rows",
                "score",
                "fold_scores",
                "seconds",
                "worker",
            )
            if k in t
        }
        for t in scored[:count]
    ]


class TrialData:
    """A worker's cache of the transformed splits of the last few runs it tuned, and of the
    best estimator each of those runs fitted in this process (selection reuses it, not refits)."""

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self.runs: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.fitted: dict[str, tuple[int, float, Any]] = {}

    def keep(self, run_id: str, index: int, model: Any, score: float, *, metric: str) -> None:
        """Hold trial `index`'s fitted estimator if it scored better than the one held."""
        held = self.fitted.get(run_id)
        if run_id in self.runs and (held is None or is_better(metric, score, held[1])):
            self.fitted[run_id] = (index, score, model)

    def take(self, run_id: str, index: int) -> tuple[Any, dict[str, Any]] | None:
        """Trial `index`'s estimator fitted here and the run's splits (transformer included),
        or None when another process ran that trial; the run is forgotten either way."""
        held = self.fitted.pop(run_id, None)
        splits = self.runs.pop(run_id, None)
        if held is None or held[0] != index or splits is None:
            return None
        return held[2], splits

    def forget(self, run_id: str) -> None:
        """Drop the run's splits and estimator: its selection is done."""
        self.runs.pop(run_id, None)
        self.fitted.pop(run_id, None)

    def get(self, ctx: StageContext) -> dict[str, Any]:
        """The run's transformed train and validation splits, read from the bucket once."""
        if ctx.run_id not in self.runs:
            self.runs[ctx.run_id] = self._load(ctx)
            while len(self.runs) > self.size:
                gone, _ = self.runs.popitem(last=False)
                self.fitted.pop(gone, None)
        return self.runs[ctx.run_id]

    @staticmethod
    def _load(ctx: StageContext) -> dict[str, Any]:
        spec = ctx.spec()
        transformer = load_model(ctx.store.get_bytes(ctx.key("transformer.skops", "preprocess")))
        data: dict[str, Any] = {"transformer": transformer}
        for name, suffix in (("train", "train"), ("validation", "val")):
            part = ctx.store.get_frame(ctx.key(f"{name}.parquet", "preprocess"))
            data[f"X_{suffix}"] = transformer.transform(part.drop(columns=[spec.target]))
            data[f"y_{suffix}"] = part[spec.target]
        return data
