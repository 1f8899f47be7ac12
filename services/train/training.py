"""Candidate estimators, their search spaces, and the trials that tune and fit them."""

from __future__ import annotations

import itertools
import json
import math
import time
import warnings
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline

from services.train.budget import TrialStopped, time_limit
from shared import plugins
from shared.errors import DataError, SpecError
from shared.scoring import align_proba, get_metric, is_better, score
from shared.spec import MAX_TRIALS

DISTRIBUTIONS = ("loguniform", "uniform", "int")


@dataclass(frozen=True)
class Candidate:
    """An estimator factory, the fixed settings it always gets, and its default search space."""

    factory: Callable[..., BaseEstimator]
    fixed: dict[str, Any] = field(default_factory=dict)
    space: dict[str, Any] = field(default_factory=dict)


# Fixed settings keep trials reproducible (random_state) and polite on shared workers (n_jobs=1).
_FOREST = {"n_estimators": 100, "n_jobs": 1, "random_state": 0}
_FOREST_SPACE = {"max_depth": [None, 6, 12], "min_samples_leaf": [1, 3, 10]}
_BOOSTING = {"max_iter": 100, "random_state": 0}
# Boosting's space reaches the slow, shallow, regularised models that win on smooth targets
# (0.94 r2 on friedman1 against the default's 0.927); trials start from the defaults.
_BOOSTING_SPACE = {
    "learning_rate": {"loguniform": [0.01, 0.3]},
    "max_iter": {"int": [50, 500]},
    "max_leaf_nodes": {"int": [4, 64]},
    "min_samples_leaf": {"int": [2, 50]},
    "l2_regularization": {"loguniform": [0.001, 10.0]},
}


def _lightgbm(task: str) -> Callable[..., BaseEstimator]:
    """LightGBM's scikit-learn estimator for `task`, imported when a spec asks for it (its wheel
    needs the system's libgomp, which a slim image may lack)."""

    def factory(**params: Any) -> BaseEstimator:
        from lightgbm import LGBMClassifier, LGBMRegressor

        return (LGBMClassifier if task == "classification" else LGBMRegressor)(**params)

    return factory


# verbose=-1: LightGBM's own log lines would flood the worker's; subsample_freq=1 makes the
# space's subsample (bagging) take effect.
_LIGHTGBM = {
    "n_estimators": 100,
    "n_jobs": 1,
    "random_state": 0,
    "verbose": -1,
    "subsample_freq": 1,
}
_LIGHTGBM_SPACE = {
    "learning_rate": {"loguniform": [0.01, 0.3]},
    "n_estimators": {"int": [50, 500]},
    "num_leaves": {"int": [4, 128]},
    "min_child_samples": {"int": [5, 100]},
    "reg_lambda": {"loguniform": [0.001, 10.0]},
    "colsample_bytree": {"uniform": [0.5, 1.0]},
    "subsample": {"uniform": [0.5, 1.0]},
}

CANDIDATES: dict[str, dict[str, Candidate]] = {
    "classification": {
        "logistic_regression": Candidate(
            LogisticRegression, {"max_iter": 1000}, {"C": {"loguniform": [0.01, 100.0]}}
        ),
        "random_forest": Candidate(RandomForestClassifier, _FOREST, _FOREST_SPACE),
        "hist_gradient_boosting": Candidate(
            HistGradientBoostingClassifier, _BOOSTING, _BOOSTING_SPACE
        ),
        "lightgbm": Candidate(_lightgbm("classification"), _LIGHTGBM, _LIGHTGBM_SPACE),
    },
    "regression": {
        "ridge": Candidate(Ridge, {}, {"alpha": {"loguniform": [0.01, 100.0]}}),
        "random_forest": Candidate(RandomForestRegressor, _FOREST, _FOREST_SPACE),
        "hist_gradient_boosting": Candidate(
            HistGradientBoostingRegressor, _BOOSTING, _BOOSTING_SPACE
        ),
        "lightgbm": Candidate(_lightgbm("regression"), _LIGHTGBM, _LIGHTGBM_SPACE),
    },
}
ESTIMATORS: dict[str, tuple[str, ...]] = {task: tuple(c) for task, c in CANDIDATES.items()}
DEFAULT_TRIALS = 4


def default_candidates(task: str) -> list[tuple[str, dict[str, Any]]]:
    """Return every candidate for `task` with its default search space, ready for `tune`."""
    return [(name, dict(c.space)) for name, c in _candidates(task).items()]


def _candidates(task: str) -> dict[str, Candidate]:
    """The built-in candidates for `task` and the installed plugins' estimators for it."""
    if task not in CANDIDATES:
        raise SpecError(f"task must be one of {', '.join(CANDIDATES)}, got {task!r}", field="task")
    return {**CANDIDATES[task], **_plugin_candidates(task)}


def _plugin_candidates(task: str) -> dict[str, Candidate]:
    found = {}
    for name, plugin in plugins.installed()["estimator"].items():
        declared = plugin.declared
        if isinstance(declared, plugins.Estimator) and task in declared.tasks:
            found[name] = Candidate(
                _plugin_factory(declared, task), dict(declared.fixed), dict(declared.space)
            )
    return found


def _plugin_factory(declared: plugins.Estimator, task: str) -> Callable[..., BaseEstimator]:
    """A plugin estimator for `task` as a candidate's factory: its build, then the settings."""

    def factory(**params: Any) -> BaseEstimator:
        return declared.build(task).set_params(**params)

    return factory


def _check_range(name: str, kind: str, bounds: Any) -> tuple[float, float]:
    ok = isinstance(bounds, list | tuple) and len(bounds) == 2
    if ok and all(isinstance(b, int | float) and not isinstance(b, bool) for b in bounds):
        lo, hi = float(bounds[0]), float(bounds[1])
        if lo <= hi and (kind != "loguniform" or lo > 0):
            return lo, hi
    raise SpecError(
        f"search space {name!r}: {kind} needs [low, high] with low <= high"
        + (" and low > 0" if kind == "loguniform" else "")
        + f", got {bounds!r}",
        field=name,
    )


def _check_space(space: dict[str, Any]) -> None:
    for name, spec in space.items():
        if isinstance(spec, list) and spec:
            continue
        if isinstance(spec, dict) and len(spec) == 1 and next(iter(spec)) in DISTRIBUTIONS:
            kind, bounds = next(iter(spec.items()))
            _check_range(name, kind, bounds)
            continue
        raise SpecError(
            f"search space {name!r} must be a non-empty list of choices or one of "
            f"{{loguniform|uniform|int: [low, high]}}, got {spec!r}",
            field=name,
        )


def _draw(spec: Any, rng: np.random.Generator) -> Any:
    if isinstance(spec, list):
        return spec[int(rng.integers(len(spec)))]
    kind, (lo, hi) = next(iter(spec.items()))
    if kind == "int":
        return int(rng.integers(int(lo), int(hi) + 1))
    if kind == "loguniform":
        return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    return float(rng.uniform(lo, hi))


def sample_params(
    space: dict[str, Any], *, trials: int, seed: int, sampler: str = "auto"
) -> list[dict[str, Any] | None]:
    """List parameter sets: `grid` (every combination), `random` (seeded draws) or `auto`
    (the whole grid when it fits in `trials`, else random). `tpe` lists `trials` empty slots,
    `None`, each filled as its trial starts (services/train/tpe.py)."""
    _check_space(space)
    if trials < 1:
        raise SpecError(f"trials must be at least 1, got {trials}", field="trials")
    if sampler == "tpe":
        return [None] * trials
    names = list(space)
    discrete = all(isinstance(spec, list) for spec in space.values())
    if sampler == "grid" and not discrete:
        raise SpecError(
            "the grid sampler needs every search value to be a list of choices; "
            "use sampler: random for distributions",
            field="tuning.sampler",
        )
    if sampler != "random" and discrete:
        # The grid's size is a product of lengths: it is enumerated only when it is all planned.
        size = math.prod(len(choices) for choices in space.values())
        if sampler == "grid" and size > MAX_TRIALS:
            raise SpecError(
                f"the grid sampler would plan {size:,} trials, more than the limit of "
                f"{MAX_TRIALS:,}; list fewer values or use sampler: random",
                field="tuning.sampler",
            )
        if sampler == "grid" or size <= trials:
            grid = itertools.product(*space.values())
            return [dict(zip(names, values, strict=True)) for values in grid]
    rng = np.random.default_rng(seed)
    points: dict[str, dict[str, Any]] = {}
    # Small discrete spaces repeat draws; a bounded number of attempts keeps this from spinning.
    for _ in range(trials * 20):
        point = {name: _draw(space[name], rng) for name in names}
        points.setdefault(json.dumps(point, sort_keys=True, default=str), point)
        if len(points) == trials:
            break
    return list(points.values())


def plan_trials(
    candidates: list[tuple[str, dict[str, Any]]],
    *,
    task: str,
    trials_per_candidate: int,
    seed: int,
    sampler: str = "auto",
    defaults_first: Collection[str] = (),
) -> list[dict[str, Any]]:
    """Every trial of a search, numbered: the unit that fans out across train workers. The
    candidates take turns (the first trial of each, then the second of each...), so that a
    search cut short by its time budget has tried every candidate. A candidate named in
    `defaults_first` (one searched over its default space) starts from the estimator's own
    defaults, `{}`, when its points are drawn at random, as AutoML tools start from a
    configuration known to be good: the search is then never worse than the defaults on its
    validation."""
    drawn = []
    for name, space in candidates:
        make_estimator(task, name, {})  # fail fast on an unknown name before any fitting
        points = sample_params(space, trials=trials_per_candidate, seed=seed, sampler=sampler)
        if name in defaults_first and trials_per_candidate > 1 and _drawn(space, points, sampler):
            points = [{}, *points[: trials_per_candidate - 1]]
        drawn.append([(name, params) for params in points])
    turns = itertools.zip_longest(*drawn)
    ordered = [trial for turn in turns for trial in turn if trial is not None]
    return [
        {"index": index, "estimator": name, "params": params}
        for index, (name, params) in enumerate(ordered)
    ]


def _drawn(space: dict[str, Any], points: Sequence[Any], sampler: str) -> bool:
    """Whether `points` are drawn (at random, or by TPE) rather than enumerated as the grid."""
    if sampler in ("random", "tpe"):
        return True
    discrete = all(isinstance(spec, list) for spec in space.values())
    return not discrete or len(points) < math.prod(map(len, space.values()))


# From this many training rows, a forest draws this many rows for each tree (bootstrap), and
# boosting runs more iterations with early stopping on; the search's parameters override both.
FOREST_MAX_SAMPLES = 100_000
BOOSTING_EARLY_STOP_ROWS = 10_000


def size_settings(name: str, rows: int | None) -> dict[str, Any]:
    """Settings that fit the data size: a forest on a million rows needs no full bootstrap
    sample per tree, and boosting on many rows can stop when its validation loss stops falling."""
    if rows is None:
        return {}
    if name == "random_forest" and rows > FOREST_MAX_SAMPLES:
        return {"max_samples": FOREST_MAX_SAMPLES}
    if name == "hist_gradient_boosting" and rows > BOOSTING_EARLY_STOP_ROWS:
        return {"max_iter": 300, "early_stopping": True}
    return {}


# LightGBM's early stopping, from BOOSTING_EARLY_STOP_ROWS training rows: a seeded tenth of a
# trial's rows is held out as its eval set, and it stops adding trees when 10 rounds in a row
# do not improve its loss there. A trial that sets n_estimators keeps it as the cap (the search
# still chooses it); one that does not (the defaults) gets LIGHTGBM_MAX_TREES.
LIGHTGBM_HELD_OUT = 0.1
LIGHTGBM_STOPPING_ROUNDS = 10
LIGHTGBM_MAX_TREES = 1000


def _fit(
    model: BaseEstimator,
    *,
    task: str,
    estimator: str,
    params: dict[str, Any],
    X: Any,
    y: Any,
    seed: int,
    stop_rows: int,
) -> int | None:
    """Fit `model` on X, y; LightGBM on more than `stop_rows` rows stops early on its held-out
    rows instead (fitted on the others), and the trees it kept, its best iteration, are returned."""
    classify = task == "classification"
    stops = estimator == "lightgbm" and len(y) > stop_rows
    # The held-out rows are stratified, so that they hold no class the fitted rows lack: a class
    # of one row cannot be, and the model then fits every row without stopping early.
    if stops and classify:
        stops = bool(pd.Series(np.asarray(y)).value_counts().min() > 1)
    if not stops:
        model.fit(X, y)
        return None
    import lightgbm

    fit_rows, held = train_test_split(
        np.arange(len(y)),
        test_size=LIGHTGBM_HELD_OUT,
        random_state=seed,
        stratify=np.asarray(y) if classify else None,
    )
    if "n_estimators" not in params:
        model.set_params(n_estimators=LIGHTGBM_MAX_TREES)
    with warnings.catch_warnings():
        # lightgbm 4.7 deprecates eval_set for eval_X and eval_y, but its classifier encodes
        # the labels of eval_set only (text labels in eval_y fail).
        warnings.filterwarnings("ignore", message="The argument 'eval_set' is deprecated")
        model.fit(
            _rows(X, fit_rows),
            _rows(y, fit_rows),
            eval_set=[(_rows(X, held), _rows(y, held))],
            callbacks=[lightgbm.early_stopping(LIGHTGBM_STOPPING_ROUNDS, verbose=False)],
        )
    return int(model.best_iteration_) or int(model.n_estimators)


def _rows(data: Any, rows: np.ndarray) -> Any:
    return data.iloc[rows] if hasattr(data, "iloc") else data[rows]


def refit_params(trial: dict[str, Any]) -> dict[str, Any]:
    """The parameters that refit `trial`'s estimator on every training row: its own, with the
    trees it kept when it stopped early (`best_iteration`) as n_estimators."""
    if trial.get("best_iteration") is None:
        return dict(trial["params"])
    return {**trial["params"], "n_estimators": int(trial["best_iteration"])}


def make_estimator(
    task: str, name: str, params: dict[str, Any], rows: int | None = None
) -> BaseEstimator:
    """Build an unfitted estimator for `rows` training rows (size_settings), raising SpecError
    for an unknown name or parameter."""
    candidates = _candidates(task)
    if name not in candidates:
        raise SpecError(
            f"unknown {task} estimator {name!r}; choose one of {', '.join(candidates)}",
            field="estimator",
        )
    candidate = candidates[name]
    estimator = candidate.factory(**{**candidate.fixed, **size_settings(name, rows)})
    known = estimator.get_params(deep=False)
    for param in params:
        if param not in known:
            raise SpecError(
                f"{name} has no parameter {param!r}; known parameters: {', '.join(sorted(known))}",
                field=f"{name}.{param}",
            )
    return estimator.set_params(**params)


def _trial_score(
    model: Any, *, X_val: Any, y_val: Any, metric: str, classes: Sequence[Any] | None
) -> float:
    proba = None
    if get_metric(metric).needs_proba:
        proba = _proba(model, X_val, classes)
    value = score(metric, y_true=y_val, y_pred=model.predict(X_val), proba=proba, classes=classes)
    if not math.isfinite(value):
        raise ValueError(f"{metric} came out as {value}")
    return value


def _proba(model: Any, X: Any, classes: Sequence[Any] | None) -> np.ndarray:
    return align_proba(
        model.predict_proba(X),
        model_classes=model.classes_,
        classes=model.classes_ if classes is None else classes,
    )


def predictions(model: Any, X: Any, classes: Sequence[Any] | None) -> np.ndarray:
    """What ensemble selection blends: a classifier's probabilities in `classes` order, or a
    regressor's values."""
    if classes is not None:
        return _proba(model, X, classes)
    return np.asarray(model.predict(X), dtype=float)


# Up to this many training and validation rows, `selection: auto` cross-validates.
CV_MAX_ROWS = 10_000


def selection_method(
    selection: str, *, trials: int, rows: int, folds: int, smallest_class: int | None
) -> dict[str, Any]:
    """How a search compares its trials: {"method": "holdout"} or {"method": "cv", "folds": k}.
    `auto` cross-validates a search that has a choice to make on at most CV_MAX_ROWS rows whose
    every class has at least `folds` rows; `cv` always (with fewer folds when a class is small)."""
    possible = min(folds, smallest_class) if smallest_class is not None else folds
    wanted = selection == "cv" or (selection == "auto" and trials > 1 and rows <= CV_MAX_ROWS)
    if wanted and possible >= 2 and (selection == "cv" or possible == folds):
        return {"method": "cv", "folds": possible}
    return {"method": "holdout"}


def cv_folds(
    *, task: str, folds: int, seed: int, X: Any, y: Any
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(fitted rows, scored rows) of each fold: seeded, stratified on the classes, and the same
    for the same targets, so that selection can score a blend on the folds the trials used."""
    kind = StratifiedKFold if task == "classification" else KFold
    return list(kind(n_splits=folds, shuffle=True, random_state=seed).split(X, y))


def _cross_validate(
    *,
    task: str,
    estimator: str,
    params: dict[str, Any],
    X: Any,
    y: Any,
    folds: int,
    seed: int,
    metric: str,
    classes: Sequence[Any] | None,
    stop_rows: int = BOOSTING_EARLY_STOP_ROWS,
) -> tuple[list[float], np.ndarray, list[int]]:
    """The trial's score on each fold, fitted on the others, its out-of-fold predictions
    (each row predicted by the model that did not see it), and the trees each fold's model kept
    when it stopped early (`_fit`; none when it did not)."""
    scores, out_of_fold, kept = [], None, []
    for fit_rows, score_rows in cv_folds(task=task, folds=folds, seed=seed, X=X, y=y):
        model = make_estimator(task, estimator, params, len(fit_rows))
        trees = _fit(
            model,
            task=task,
            estimator=estimator,
            params=params,
            X=X[fit_rows],
            y=y.iloc[fit_rows],
            seed=seed,
            stop_rows=stop_rows,
        )
        kept += [] if trees is None else [trees]
        scores.append(
            _trial_score(
                model, X_val=X[score_rows], y_val=y.iloc[score_rows], metric=metric, classes=classes
            )
        )
        predicted = predictions(model, X[score_rows], classes)
        if out_of_fold is None:
            out_of_fold = np.zeros((len(y), *predicted.shape[1:]))
        out_of_fold[score_rows] = predicted
    assert out_of_fold is not None  # folds >= 2
    return scores, out_of_fold, kept


def run_trial(
    *,
    task: str,
    estimator: str,
    params: dict[str, Any],
    X_train: Any,
    y_train: Any,
    X_val: Any,
    y_val: Any,
    metric: str,
    classes: Sequence[Any] | None,
    on_fitted: Callable[[BaseEstimator, float], None] | None = None,
    on_predictions: Callable[[np.ndarray], None] | None = None,
    limit: float | None = None,
    folds: int | None = None,
    seed: int = 0,
    stop_rows: int = BOOSTING_EARLY_STOP_ROWS,
) -> dict[str, Any]:
    """Fit and score one candidate on transformed features; a failed fit is recorded, not raised.
    `on_fitted` receives the fitted estimator and its score when the trial succeeds, and
    `on_predictions` the predictions it was scored on (`predictions`: out of fold under `folds`,
    else on the validation rows). A trial still fitting after `limit` seconds is stopped and
    recorded as stopped. With `folds`, the training and validation rows together are
    cross-validated: the score is the folds' mean, and each fold's score is recorded. LightGBM
    on more than `stop_rows` rows stops early (`_fit`): the trees it kept are recorded as
    `best_iteration` (the folds' mean under `folds`), which `refit_params` hands to the refit,
    and its model, fitted on part of the rows, is not handed to `on_fitted`."""
    started = time.perf_counter()
    result: dict[str, Any] = {"estimator": estimator, "params": dict(params)}
    predicted: np.ndarray | None = None
    trees: int | None = None
    try:
        # A parameter the estimator refuses fails the trial.
        model = make_estimator(task, estimator, params, len(y_train))
        with time_limit(limit):
            if folds:
                scores, predicted, kept = _cross_validate(
                    task=task,
                    estimator=estimator,
                    params=params,
                    X=np.concatenate([np.asarray(X_train), np.asarray(X_val)]),
                    y=pd.concat([pd.Series(y_train), pd.Series(y_val)], ignore_index=True),
                    folds=folds,
                    seed=seed,
                    metric=metric,
                    classes=classes,
                    stop_rows=stop_rows,
                )
                result["fold_scores"] = scores
                value = float(np.mean(scores))
                trees = round(float(np.mean(kept))) if kept else None
            else:
                trees = _fit(
                    model,
                    task=task,
                    estimator=estimator,
                    params=params,
                    X=X_train,
                    y=y_train,
                    seed=seed,
                    stop_rows=stop_rows,
                )
                value = _trial_score(
                    model, X_val=X_val, y_val=y_val, metric=metric, classes=classes
                )
                if on_predictions is not None:
                    predicted = predictions(model, X_val, classes)
        result.update(score=value, state="succeeded", error=None)
        if trees is not None:
            result["best_iteration"] = trees
        if on_fitted is not None and not folds and trees is None:
            on_fitted(model, value)
    except TrialStopped as exc:
        result.update(score=None, state="stopped", error=str(exc))
    except Exception as exc:  # any fit failure is this trial's outcome, not a crash
        result.update(score=None, state="failed", error=f"{type(exc).__name__}: {exc}")
    result["seconds"] = round(time.perf_counter() - started, 3)
    if on_predictions is not None and predicted is not None and result["state"] == "succeeded":
        on_predictions(predicted)  # outside the try: a store that fails is retried, not a fit
    return result


def tune(
    candidates: list[tuple[str, dict[str, Any]]],
    *,
    task: str,
    trials_per_candidate: int,
    seed: int,
    X_train: Any,
    y_train: Any,
    X_val: Any,
    y_val: Any,
    metric: str,
    classes: Sequence[Any] | None,
) -> list[dict[str, Any]]:
    """Run every sampled trial of every candidate in turn and return all results."""
    data = {"X_train": X_train, "y_train": y_train, "X_val": X_val, "y_val": y_val}
    plan = plan_trials(candidates, task=task, trials_per_candidate=trials_per_candidate, seed=seed)
    return [
        run_trial(
            task=task,
            estimator=t["estimator"],
            params=t["params"],
            metric=metric,
            classes=classes,
            **data,
        )
        for t in plan
    ]


def best_trial(trials: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    """Return the best succeeded trial for `metric`; raise DataError when none succeeded."""
    succeeded = [t for t in trials if t.get("state") == "succeeded"]
    if not succeeded:
        first = trials[0]["error"] if trials else "no trials were run"
        raise DataError(
            f"every training trial failed; the first error was: {first}. "
            "Check the search space values in the pipeline spec",
            field="train",
        )
    top = max(t.get("rung", 0) for t in succeeded)  # under halving, the highest rung reached
    succeeded = [t for t in succeeded if t.get("rung", 0) == top]
    best = succeeded[0]
    for trial in succeeded[1:]:
        if is_better(metric, trial["score"], best["score"]):
            best = trial
    return best


def fit_model(
    *,
    transformer: ColumnTransformer,
    task: str,
    estimator: str,
    params: dict[str, Any],
    X: Any,
    y: Any,
) -> Pipeline:
    """Fit the chosen estimator on already-fitted features and join both into one Pipeline."""
    model = make_estimator(task, estimator, params, len(y)).fit(transformer.transform(X), y)
    return join_model(transformer, model)


def join_model(transformer: ColumnTransformer, model: BaseEstimator) -> Pipeline:
    """The served model: the fitted feature transformer, then the fitted estimator."""
    return Pipeline([("features", transformer), ("model", model)])
