"""The ONNX export deploy tries for every version, kept only if it answers as scikit-learn does."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from services.deploy.onnx_graph import to_onnx
from shared.columns import CompiledSignature
from shared.runtime import OnnxScorer, Scored, SklearnScorer

log = logging.getLogger(__name__)

TOLERANCE = 1e-4  # |onnx - sklearn| <= TOLERANCE * (1 + |sklearn|), per probability or value
MAX_CHECK_ROWS = 5000


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
