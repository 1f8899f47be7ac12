"""The TPE sampler: Optuna's Tree-structured Parzen Estimator through ask-and-tell.

A TPE search plans its trials without parameters. Each trial, as it starts, rebuilds a study of
its candidate from the trial results in the bucket (succeeded, failed and stopped ones, and the
trials still running, which TPE's constant liar keeps it from asking for twice), asks it for a
point, and writes that point beside its result with a conditional put: a redelivered or retried
trial finds it there and fits the same parameters. The study lives nowhere but the bucket, so
trials stay separate tasks across workers and survive a killed worker and an emptied broker.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable
from typing import Any

# A study with fewer finished trials than this asks at random (Optuna's own default is 10,
# which a search of a few trials per candidate would never pass).
MIN_STARTUP_TRIALS = 3
MAX_STARTUP_TRIALS = 10


def startup_trials(per_candidate: int) -> int:
    """How many of a candidate's trials are drawn at random before TPE models the others."""
    return max(MIN_STARTUP_TRIALS, min(MAX_STARTUP_TRIALS, per_candidate // 3))


def distributions(space: dict[str, Any]) -> dict[str, Any]:
    """A search space of the spec (choices, loguniform, uniform, int) as Optuna distributions."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, Any] = {}
    for name, spec in space.items():
        if isinstance(spec, list):
            out[name] = CategoricalDistribution(spec)
            continue
        kind, (low, high) = next(iter(spec.items()))
        if kind == "int":
            out[name] = IntDistribution(int(low), int(high))
        else:
            out[name] = FloatDistribution(float(low), float(high), log=kind == "loguniform")
    return out


def ask(
    space: dict[str, Any],
    history: Iterable[dict[str, Any]],
    *,
    greater_is_better: bool,
    seed: int,
    startup: int,
) -> dict[str, Any]:
    """The next point of `space`, given the candidate's trials so far: each a result as the
    bucket holds it (`params`, `state`, `score`) or, for one still running, `state: running`.
    Trials whose parameters lie outside the space (the estimator's defaults, `{}`) are left out."""
    import optuna
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    dists = distributions(space)
    sampler = optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=startup, constant_liar=True, multivariate=True
    )
    study = optuna.create_study(
        direction="maximize" if greater_is_better else "minimize", sampler=sampler
    )
    states = {"succeeded": TrialState.COMPLETE, "running": TrialState.RUNNING}
    for trial in history:
        params = trial.get("params") or {}
        if set(params) != set(dists):
            continue
        state = states.get(trial.get("state", ""), TrialState.FAIL)
        try:
            study.add_trial(
                create_trial(
                    state=state,
                    params=params,
                    distributions=dists,
                    value=trial.get("score") if state == TrialState.COMPLETE else None,
                )
            )
        except ValueError:  # a point the space no longer holds
            continue
    return dict(study.ask(dists).params)
