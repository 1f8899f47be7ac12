"""Run inside the MLflow venv: turn cauce's skops model into an MLflow model directory.

usage: python bench/mlflow_model.py MODEL.skops OUT_DIR
"""

from __future__ import annotations

import sys

import mlflow.sklearn
import skops.io as sio


def main() -> None:
    """Load the registry's skops file (only the types it names) and save it as an MLflow model."""
    source, target = sys.argv[1], sys.argv[2]
    with open(source, "rb") as handle:
        data = handle.read()
    model = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    mlflow.sklearn.save_model(model, target, skops_trusted_types=sio.get_untrusted_types(data=data))


if __name__ == "__main__":
    main()
