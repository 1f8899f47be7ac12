"""The served model sees every labelled row the spec allows, not only the training split.

Evaluate measured the model that train fitted on the training split. Before it is registered,
deploy fits the same configuration (the feature steps and the estimator with the chosen
parameters) again on the splits `refit` names, as AutoML services and a user's own script do:
`train_validation` (the default) adds the validation rows, `all` the test rows too, `train` keeps
the measured model. The version keeps the test metrics as what was measured, and says which rows
the served model saw.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
from sklearn.base import clone

from shared.context import StageContext

SPLITS = {
    "train": ("train",),
    "train_validation": ("train", "validation"),
    "all": ("train", "validation", "test"),
}


def refit(ctx: StageContext, model: Any, *, splits: str) -> tuple[Any, dict[str, Any]]:
    """The model to serve and the record of what it was fitted on: `model` itself for `train`,
    else a clone fitted on the named splits together."""
    names = SPLITS[splits]
    rows = ctx.upstream("preprocess").rows
    fitted_on: dict[str, Any] = {"splits": list(names), "rows": sum(rows[n] for n in names)}
    if names == ("train",):
        return model, fitted_on
    started = time.perf_counter()
    target = ctx.spec().target
    frame = pd.concat(
        [ctx.store.get_frame(ctx.key(f"{name}.parquet", "preprocess")) for name in names],
        ignore_index=True,
    )
    fresh = clone(model).fit(frame.drop(columns=[target]), frame[target])
    fitted_on.update(rows=len(frame), seconds=round(time.perf_counter() - started, 3))
    ctx.log.info(
        "refitted on %s: %s rows in %.2fs", "+".join(names), len(frame), fitted_on["seconds"]
    )
    return fresh, fitted_on
