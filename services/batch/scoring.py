"""Batch prediction: a CSV or Parquet file scored by a model in bounded-memory chunks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from shared.columns import CompiledSignature, missing_column
from shared.errors import DataError, RequestError
from shared.runtime import Scorer


@dataclass(frozen=True)
class BatchModel:
    """What scoring a file needs: the checked signature, the scorer, the class labels."""

    inputs: CompiledSignature
    scorer: Scorer
    labels: list[str]


def chunks(path: Path, rows: int) -> Iterator[pd.DataFrame]:
    """The file's rows, `rows` at a time; text cells as text, empty cells missing."""
    if path.suffix.lower() == ".parquet":
        for batch in pq.ParquetFile(path).iter_batches(batch_size=rows):
            yield batch.to_pandas()
        return
    reader = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], chunksize=rows)
    with reader:
        yield from reader


def score_chunk(model: BatchModel, frame: pd.DataFrame, first_row: int) -> pd.DataFrame:
    """The chunk with a `prediction` column and, for classifiers, one `proba_<class>` each."""
    missing = [name for name in model.inputs.names if name not in frame.columns]
    if missing:  # the file may hold more columns than the model takes, never fewer
        error = missing_column(missing[0], model.inputs.names)
        raise DataError(str(error), field=error.field)
    raw = {
        name: frame[name].astype(object).where(frame[name].notna(), None).tolist()
        for name in model.inputs.names
    }
    try:
        scored = model.scorer.score(model.inputs.check(raw))
    except RequestError as exc:
        raise DataError(
            f"rows {first_row}-{first_row + len(frame) - 1}: {exc}", field=exc.field
        ) from exc
    out = frame.copy()
    out["prediction"] = scored.predictions
    if scored.probabilities is not None:
        for index, label in enumerate(model.labels):
            out[f"proba_{label}"] = scored.probabilities[:, index]
    return out


def score_file(model: BatchModel, source: Path, target: Path, *, rows: int) -> dict[str, int]:
    """Score `source` chunk by chunk into the CSV `target`; only one chunk is in memory."""
    done, count = 0, 0
    for frame in chunks(source, rows):
        scored = score_chunk(model, frame, done + 1)
        scored.to_csv(target, mode="a" if count else "w", header=not count, index=False)
        done, count = done + len(frame), count + 1
    if not done:
        raise DataError("the file has no rows to score", field="file")
    return {"rows": done, "chunks": count}
