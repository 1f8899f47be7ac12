"""The ONNX export deploy tries for every version, kept only if it answers as scikit-learn does."""

from __future__ import annotations

import copy
import logging
from typing import Any

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer

from shared.columns import CompiledSignature
from shared.runtime import MISSING_TEXT, OnnxScorer, Scored, SklearnScorer

log = logging.getLogger(__name__)

TOLERANCE = 1e-4  # |onnx - sklearn| <= TOLERANCE * (1 + |sklearn|), per probability or value
OPSETS = {"": 18, "ai.onnx.ml": 3}
MAX_CHECK_ROWS = 5000


def _onnx_ready(model: Any) -> Any:
    """A copy whose text imputers treat MISSING_TEXT as missing (ONNX cannot impute NaN text)."""
    ready = copy.deepcopy(model)
    stack = [ready]
    while stack:
        node = stack.pop()
        if isinstance(node, SimpleImputer) and node.statistics_.dtype == object:
            node.missing_values = MISSING_TEXT
        stack.extend(step for _, step in getattr(node, "steps", []))
        stack.extend(
            step for _, step, _ in getattr(node, "transformers_", []) if not isinstance(step, str)
        )
    return ready


def to_onnx(model: Any, signature: list[dict[str, str]], *, classify: bool) -> bytes:
    """Convert the fitted pipeline, one [rows, 1] input per signature column."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    ready = _onnx_ready(model)
    inputs = [
        (
            spec["name"],
            StringTensorType([None, 1]) if spec["type"] == "string" else FloatTensorType([None, 1]),
        )
        for spec in signature
    ]
    options = {id(ready[-1] if hasattr(ready, "steps") else ready): {"zipmap": False}}
    onx = convert_sklearn(
        ready, initial_types=inputs, options=options if classify else None, target_opset=OPSETS
    )
    return bytes(onx.SerializeToString())


def _compare(expected: Scored, got: Scored, *, classify: bool) -> dict[str, Any]:
    if classify:
        assert expected.probabilities is not None and got.probabilities is not None
        want, have = expected.probabilities, got.probabilities.astype(np.float64)
        agree = float(np.mean(expected.predictions.astype(str) == got.predictions.astype(str)))
    else:
        want, have = expected.predictions.astype(np.float64), got.predictions.astype(np.float64)
        agree = 1.0
    excess = np.abs(have - want) - TOLERANCE * (1 + np.abs(want))
    return {
        "max_abs_diff": float(np.max(np.abs(have - want))),
        "label_agreement": agree,
        "passed": bool(agree == 1.0 and np.all(excess <= 0)),
    }


def check_onnx(
    model: Any, onnx: bytes, X: pd.DataFrame, signature: list[dict[str, str]], *, classify: bool
) -> dict[str, Any]:
    """Score the rows with both runtimes through the serving path and compare the answers."""
    compiled = CompiledSignature.compile(signature)
    rows = X.head(MAX_CHECK_ROWS)
    columns = compiled.check({name: rows[name].tolist() for name in compiled.names})
    expected = SklearnScorer(model, classify).score(columns)
    got = OnnxScorer(onnx, classify=classify).score(columns)
    return {"rows": len(rows), "tolerance": TOLERANCE, **_compare(expected, got, classify=classify)}


def export_checked(
    model: Any, X_test: pd.DataFrame, signature: list[dict[str, str]], *, classify: bool
) -> tuple[bytes | None, dict[str, Any]]:
    """The ONNX bytes when conversion works and matches scikit-learn on X_test, and the check."""
    try:
        onnx = to_onnx(model, signature, classify=classify)
        check = check_onnx(model, onnx, X_test, signature, classify=classify)
    except Exception as exc:  # no converter, or a graph onnxruntime refuses: serve skops instead
        log.info("no ONNX export: %s: %s", type(exc).__name__, exc)
        return None, {"passed": False, "reason": f"{type(exc).__name__}: {exc}"[:500]}
    return (onnx if check["passed"] else None), check
