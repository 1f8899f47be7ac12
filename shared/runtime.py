"""Scoring a checked batch of columns with a model: onnxruntime when deploy exported one, else
the scikit-learn pipeline loaded from skops. Both answer the same shape; neither pickles."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from shared.columns import Column
from shared.datetext import part_names, parts
from shared.errors import CauceError, RequestError
from shared.plugins import require as require_plugins
from shared.registry import read_artifact
from shared.storage import Store

if TYPE_CHECKING:  # only the skops path builds frames; an ONNX-serving process never imports pandas
    import pandas as pd

log = logging.getLogger(__name__)

# The ONNX graph cannot impute a float NaN in a text column, so deploy rewrites the text imputers
# to treat this sentinel as missing, and the fast path sends it for every missing text value.
# No NUL in it: onnxruntime's ArrayFeatureExtractor drops a string's trailing NUL, so a sentinel
# ending in one never matched the imputer's key and every gap in text went unimputed.
MISSING_TEXT = "\ue000cauce:missing\ue000"  # U+E000: private use, never in real data


@dataclass(frozen=True)
class Scored:
    """Predictions for n rows and, for classifiers, an (n, classes) probability matrix."""

    predictions: np.ndarray
    probabilities: np.ndarray | None = None


class Scorer(Protocol):
    """What serving and batch scoring need from a loaded model."""

    @property
    def runtime(self) -> str:
        """onnx or skops."""
        ...

    def score(self, columns: dict[str, Column]) -> Scored:
        """Score typed columns (from CompiledSignature.check)."""
        ...


def frame(columns: dict[str, Column]) -> pd.DataFrame:
    """The columns as the frame a scikit-learn pipeline was fitted on (gaps as NaN)."""
    import pandas as pd

    data: dict[str, Any] = {}
    for name, column in columns.items():
        values = column.values
        if column.kind == "string":
            assert column.missing is not None
            data[name] = pd.Series(np.where(column.missing, np.nan, values), dtype="str")
        elif column.kind == "long" and not np.isnan(values).any():
            data[name] = values.astype(np.int64)
        else:
            data[name] = values
    return pd.DataFrame(data)


@dataclass(frozen=True)
class SklearnScorer:
    """A fitted scikit-learn pipeline, fed one DataFrame per call."""

    estimator: Any
    classify: bool
    runtime: str = "skops"

    def score(self, columns: dict[str, Column]) -> Scored:
        """predict (and predict_proba for classifiers) on the columns as a frame."""
        rows = frame(columns)
        try:
            predictions = np.asarray(self.estimator.predict(rows))
            proba = None
            if self.classify and hasattr(self.estimator, "predict_proba"):
                proba = np.asarray(self.estimator.predict_proba(rows), dtype=np.float64)
        except (ValueError, TypeError, KeyError) as exc:
            raise RequestError(
                f"the model could not score these rows: {exc}", field="inputs", status=422
            ) from exc
        return Scored(predictions, proba)


def onnx_feeds(
    columns: dict[str, Column], inputs: Collection[str] | None = None
) -> dict[str, np.ndarray]:
    """One [rows, 1] tensor per input: float64 for numbers, text (and flags as text) with the
    sentinel for a missing value. A date column whose parts are the graph's `inputs` (deploy
    exports what follows shared.dates.DateParts) is fed as those parts, NaN where missing."""
    feeds: dict[str, np.ndarray] = {}
    for name, column in columns.items():
        if column.when is not None and inputs is not None and name not in inputs:
            for part, values in zip(
                part_names(name, hour=True), parts(column.when, hour=True).values(), strict=True
            ):
                if part in inputs:
                    feeds[part] = values.reshape(-1, 1)
        elif column.kind == "string":
            assert column.missing is not None
            values = column.values
            if column.missing.any():
                values = np.where(column.missing, MISSING_TEXT, values).astype(object)
            feeds[name] = values.reshape(-1, 1)
        elif column.kind == "boolean":  # the graph takes "True"/"False" (deploy's onnx_ready)
            flags = [
                str(bool(v)) if isinstance(v, bool | np.bool_) else MISSING_TEXT
                for v in column.values.tolist()
            ]
            feeds[name] = np.array(flags, dtype=object).reshape(-1, 1)
        else:
            feeds[name] = np.asarray(column.values, dtype=np.float64).reshape(-1, 1)
    return feeds


class OnnxScorer:
    """An ONNX graph of the whole pipeline on onnxruntime, one thread per session."""

    runtime = "onnx"

    def __init__(self, model: bytes, *, classify: bool) -> None:
        import onnxruntime as ort  # imported here: only processes that serve ONNX pay for it

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self.outputs = [output.name for output in self.session.get_outputs()]
        self.inputs = frozenset(i.name for i in self.session.get_inputs())
        self.classify = classify

    def score(self, columns: dict[str, Column]) -> Scored:
        """Run the graph: label and probabilities for classifiers, the value for regressors."""
        try:
            results = self.session.run(self.outputs, onnx_feeds(columns, self.inputs))
        except Exception as exc:  # onnxruntime raises its own exception types
            raise RequestError(
                f"the model could not score these rows: {exc}", field="inputs", status=422
            ) from exc
        if self.classify:
            return Scored(np.asarray(results[0]).ravel(), np.asarray(results[1]))
        return Scored(np.asarray(results[0]).ravel())


def load_scorer(
    store: Store,
    record: dict[str, Any],
    *,
    loader: Callable[[bytes], Any],
    onnx: bool,
    signing_key: bytes,
) -> Scorer:
    """onnxruntime when deploy kept an ONNX export (and `onnx` allows it), else skops. Only the
    file served is read (a blend's skops file can be tens of MB), each after the version's signed
    manifest and the file's sha256 are checked."""
    require_plugins(record.get("plugins") or [])
    classify = record.get("task") == "classification"
    if onnx and (record.get("onnx") or {}).get("file"):
        try:
            data = read_artifact(store, record, record["onnx"]["file"], signing_key=signing_key)
            return OnnxScorer(data, classify=classify)
        except (CauceError, RuntimeError, ValueError) as exc:
            log.warning(
                "ONNX model of %s v%s not used: %s", record["pipeline"], record["version"], exc
            )
    model = read_artifact(store, record, record["artifact"], signing_key=signing_key)
    return SklearnScorer(loader(model), classify)


def class_labels(record: dict[str, Any], scorer: Scorer) -> list[str]:
    """The names of the probability columns: the recorded classes, else the estimator's."""
    if record.get("task") != "classification":
        return []
    classes = record.get("classes") or getattr(getattr(scorer, "estimator", None), "classes_", [])
    return [str(label) for label in classes]
