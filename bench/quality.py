"""`make bench-quality`: the model cauce serves against FLAML and a default HistGradientBoosting.

Six tables that ship with scikit-learn or are generated here (no downloads), 569 to 20,000 rows
(`--with-1m` adds bench-scale's 1,000,000-row table):

- cancer: scikit-learn's breast cancer data, 569 rows, 30 numbers, two classes;
- digits: scikit-learn's digits, 1,797 rows, 64 pixels, ten classes;
- synthetic: `make_classification`, 5,000 rows, 20 features (8 informative), 3% labels flipped;
- friedman1: `make_friedman1`, 2,000 rows, 10 features (5 used), noise 1, regression;
- friedman3: `make_friedman3`, 3,000 rows, 4 features, noise 0.1, regression;
- scale-20k: bench-scale's 20,000-row table: 12 numbers, 3 text columns, 2% missing, yes/no.

Each is split once (80/20, stratified for classes, a fixed seed), and the same rows go to everyone:

- **default HGB**: a default `HistGradientBoosting*` (text as pandas categories) fitted in this
  process on the 80%;
- **FLAML**: `AutoML.fit` in its own virtualenv (.cache/bench-flaml, made on first use) on the
  80% with `time_budget` equal to cauce's budget (bench/quality_flaml.py);
- **cauce**: the 80% as a CSV through a local stack (`cauce up` on free ports) with the default
  candidates and search, `tuning.budget_seconds` (cauce's default for the table unless
  `--budget`) and `refit: all` (the served model fitted on every row it was given, as FLAML's),
  from the upload to the deployed model, then scored from the prediction service's answers to
  the test rows (`POST /invocations/<pipeline>`). `--estimators default,lightgbm` lists the
  candidates in the spec instead (`default`: the task's default candidates; a name the task has
  no such estimator for is left out).

Scores are accuracy for classes and r2 for regression (higher is better). It prints a table and
last the line `quality vs flaml: cauce better on W, within 0.005 on T, worse on L of N tables;
vs default HGB: better or equal on K of N`, where better means a higher score, within means at
most 0.005 lower, worse more than 0.005 lower. Each table's line also gives cauce's score minus
the default HGB's with a 95% paired bootstrap interval over the test rows (2,000 resamples): an
interval that holds 0 is a gap the test split cannot tell from chance.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import requests
from sklearn.datasets import (
    load_breast_cancer,
    load_digits,
    make_classification,
    make_friedman1,
    make_friedman3,
)
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split

from bench.scale import SEED as SCALE_SEED
from bench.scale import WORKDIR as SCALE_DIR
from bench.scale import generate, label
from bench.stack import local_stack, machine, peer_venv
from services.train.budget import default_budget
from shared.client.submit import await_run_id, submit_file, wait_for_run
from shared.layout import spec_key
from shared.spec import DEFAULT_ESTIMATORS, ESTIMATORS
from shared.storage import Store

ROOT = Path(__file__).resolve().parent.parent
WORKDIR = ROOT / ".cache" / "bench-quality"
FLAML_VENV = ROOT / ".cache" / "bench-flaml"
FLAML_PINS = ("flaml[automl]==2.7.0",)
SEED = 7
WITHIN = 0.005


@dataclass
class Table:
    name: str
    frame: pd.DataFrame
    target: str
    task: str  # classification or regression

    @property
    def metric(self) -> str:
        return "accuracy" if self.task == "classification" else "r2"


def _numbers(data: tuple[np.ndarray, np.ndarray], target: str) -> pd.DataFrame:
    X, y = data
    frame = pd.DataFrame(X, columns=[f"x{i:02d}" for i in range(X.shape[1])])
    frame[target] = y
    return frame


def tables(with_1m: bool) -> list[Table]:
    """The benchmark's tables, built the same way on every run."""
    cancer = load_breast_cancer(as_frame=True).frame
    cancer.columns = [c.replace(" ", "_") for c in cancer.columns]
    digits = load_digits(as_frame=True).frame
    found = [
        Table("cancer", cancer, "target", "classification"),
        Table("digits", digits, "target", "classification"),
        Table(
            "synthetic",
            _numbers(
                make_classification(
                    5000, 20, n_informative=8, n_redundant=4, flip_y=0.03, random_state=SEED
                ),
                "label",
            ),
            "label",
            "classification",
        ),
        Table(
            "friedman1",
            _numbers(make_friedman1(2000, noise=1.0, random_state=SEED), "y"),
            "y",
            "regression",
        ),
        Table(
            "friedman3",
            _numbers(make_friedman3(3000, noise=0.1, random_state=SEED), "y"),
            "y",
            "regression",
        ),
    ]
    for rows in (20_000, 1_000_000) if with_1m else (20_000,):
        path = generate(rows, SCALE_DIR / f"table-{label(rows)}-{SCALE_SEED}.csv")
        found.append(Table(f"scale-{label(rows)}", pd.read_csv(path), "target", "classification"))
    return found


def split(table: Table) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The one 80/20 split everyone gets."""
    y = table.frame[table.target]
    stratify = y if table.task == "classification" else None
    train, test = train_test_split(table.frame, test_size=0.2, random_state=SEED, stratify=stratify)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def score(table: Table, truth: pd.Series, predicted: Any) -> float:
    if table.task == "classification":
        return float(accuracy_score(truth.astype(str), pd.Series(predicted).astype(str)))
    return float(r2_score(truth, np.asarray(predicted, dtype=float)))


def default_hgb(table: Table, train: pd.DataFrame, test: pd.DataFrame) -> dict[str, Any]:
    """A default HistGradientBoosting*, text columns as categories."""

    def features(frame: pd.DataFrame) -> pd.DataFrame:
        X = frame.drop(columns=[table.target])
        for column in X.columns:
            if not pd.api.types.is_numeric_dtype(X[column]):  # text (pandas 3: str dtype)
                X[column] = X[column].astype("category")
        return X

    kind = (
        HistGradientBoostingClassifier
        if table.task == "classification"
        else HistGradientBoostingRegressor
    )
    started = time.perf_counter()
    model = kind(categorical_features="from_dtype", random_state=0)
    model.fit(features(train), train[table.target])
    seconds = time.perf_counter() - started
    predicted = model.predict(features(test))
    return {
        "score": score(table, test[table.target], predicted),
        "seconds": seconds,
        "predicted": list(predicted),
    }


def flaml_venv() -> Path:
    """FLAML's virtualenv, made on first use and kept under .cache/ (gitignored)."""
    return peer_venv(FLAML_VENV, FLAML_PINS)


def run_flaml(table: Table, train_csv: Path, test_csv: Path, budget: float) -> dict[str, Any]:
    argv = [str(flaml_venv()), str(ROOT / "bench" / "quality_flaml.py"), str(train_csv)]
    argv += [str(test_csv), table.target, table.task, table.metric, str(budget)]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    done = subprocess.run(argv, check=True, capture_output=True, text=True, env=env)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


SPEC = """\
target: {target}
task: {task}
metric: {metric}
tuning: {{budget_seconds: {budget}{tuning}}}
refit: all
{models}"""


def candidates(estimators: str, task: str) -> list[str]:
    """The candidates `--estimators` names for `task`, in its order: `default` stands for the
    task's default candidates, and a name `task` has no estimator for is left out."""
    names: list[str] = []
    for name in (n.strip() for n in estimators.split(",") if n.strip()):
        for one in DEFAULT_ESTIMATORS[task] if name == "default" else (name,):
            if one in ESTIMATORS[task] and one not in names:
                names.append(one)
    return names


def served_predictions(url: str, pipeline: str, version: int, rows: pd.DataFrame) -> list[Any]:
    """The prediction service's answers for `rows`, once it serves `version`."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answer = requests.get(f"{url}/v2/models/{pipeline}", timeout=5)
        if answer.ok and str(version) in [str(v) for v in answer.json().get("versions", [])]:
            break
        time.sleep(0.2)
    predictions: list[Any] = []
    for start in range(0, len(rows), 2000):
        chunk = json.loads(rows.iloc[start : start + 2000].to_json(orient="split", index=False))
        answer = requests.post(
            f"{url}/invocations/{pipeline}", json={"dataframe_split": chunk}, timeout=60
        )
        if not answer.ok:  # the service's message says why (the model, a column)
            raise RuntimeError(f"{pipeline}: {answer.status_code} {answer.text[:500]}")
        predictions += answer.json()["predictions"]
    return predictions


def run_cauce(
    store: Store,
    serve_url: str,
    table: Table,
    train_csv: Path,
    test: pd.DataFrame,
    budget: float,
    tuning: str = "",
    estimators: str = "",
) -> dict[str, Any]:
    pipeline = f"quality-{table.name}".lower()
    names = candidates(estimators, table.task) if estimators else []
    spec = SPEC.format(
        target=table.target,
        task=table.task,
        metric=table.metric,
        budget=budget,
        tuning=f", {tuning}" if tuning else "",
        models="models:\n" + "".join(f"  - estimator: {n}\n" for n in names) if names else "",
    )
    store.put_bytes(spec_key(pipeline), spec.encode())
    started = time.perf_counter()
    upload = submit_file(
        store, train_csv, pipeline=pipeline, broker_url=os.environ["CAUCE_BROKER_URL"]
    )
    run_id = await_run_id(store, upload, timeout=120)
    assert run_id is not None, "no run started within 120 s"
    view = wait_for_run(store, run_id, timeout=4 * budget + 600)
    seconds = time.perf_counter() - started
    if view["state"] != "succeeded":
        raise RuntimeError(f"{table.name}: run {run_id} {view['state']}: {view['error']}")
    rows = test.drop(columns=[table.target])
    predicted = served_predictions(serve_url, pipeline, int(view["model_version"]), rows)
    best = view.get("best") or {}
    search = view.get("search") or {}
    return {
        "score": score(table, test[table.target], predicted),
        "seconds": seconds,
        "estimator": best.get("estimator"),
        "trials": (search.get("trials_done") or 0) - (search.get("skipped") or 0),
        "selection": (view.get("selection") or {}).get("method"),
        "run_id": run_id,
        "predicted": predicted,
    }


def paired_interval(
    table: Table, truth: pd.Series, ours: Any, theirs: Any, *, rounds: int = 2000
) -> tuple[float, float]:
    """A 95% paired bootstrap interval of score(ours) - score(theirs) on the same test rows:
    both scored on each of `rounds` resamples of the rows (seeded)."""
    rng = np.random.default_rng(SEED)
    truth, ours, theirs = truth.reset_index(drop=True), np.asarray(ours), np.asarray(theirs)
    gaps = []
    for _ in range(rounds):
        rows = rng.integers(0, len(truth), len(truth))
        sample = truth.iloc[rows]
        gaps.append(score(table, sample, ours[rows]) - score(table, sample, theirs[rows]))
    low, high = np.percentile(gaps, [2.5, 97.5])
    return float(low), float(high)


def verdict(cauce: float, flaml: float) -> str:
    if cauce > flaml:
        return "better"
    return "within" if flaml - cauce <= WITHIN else "worse"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, help="seconds for cauce and FLAML on every table")
    parser.add_argument("--tables", help="comma-separated names (default: all)")
    parser.add_argument("--with-1m", action="store_true", help="add bench-scale's 1M-row table")
    parser.add_argument(
        "--tuning",
        default="",
        help="more of cauce's tuning spec, e.g. 'trials: auto, sampler: tpe'",
    )
    parser.add_argument(
        "--estimators",
        default="",
        help="cauce's candidates, comma-separated, e.g. 'default,lightgbm' (default: the spec's)",
    )
    args = parser.parse_args()
    chosen = [
        t for t in tables(args.with_1m) if not args.tables or t.name in args.tables.split(",")
    ]
    print(f"machine: {machine()}")
    print(
        f"cauce's tuning: budget_seconds{', ' + args.tuning if args.tuning else ''} (else defaults)"
    )
    print(f"cauce's candidates: {args.estimators or 'the defaults'}")
    WORKDIR.mkdir(parents=True, exist_ok=True)
    flaml_venv()
    results: list[dict[str, Any]] = []
    with local_stack() as (store, settings):
        for table in chosen:
            train, test = split(table)
            train_csv, test_csv = (
                WORKDIR / f"{table.name}-train.csv",
                WORKDIR / f"{table.name}-test.csv",
            )
            train.to_csv(train_csv, index=False)
            test.to_csv(test_csv, index=False)
            # cauce's default for the rows its search trains on (60% of what it is given).
            budget = args.budget or default_budget(int(len(train) * 0.6))
            row: dict[str, Any] = {
                "table": table.name,
                "rows": len(table.frame),
                "metric": table.metric,
                "budget": budget,
                "hgb": default_hgb(table, train, test),
                "flaml": run_flaml(table, train_csv, test_csv, budget),
                "cauce": run_cauce(
                    store,
                    settings.serve_url,
                    table,
                    train_csv,
                    test,
                    budget,
                    args.tuning,
                    args.estimators,
                ),
            }
            ours, theirs = row["cauce"].pop("predicted"), row["hgb"].pop("predicted")
            low, high = paired_interval(table, test[table.target], ours, theirs)
            gap = row["cauce"]["score"] - row["hgb"]["score"]
            row["vs_hgb"] = {"gap": gap, "low": low, "high": high}
            results.append(row)
            c, f, h = row["cauce"], row["flaml"], row["hgb"]
            print(
                f"{table.name:<10} {row['rows']:>9,} rows  {table.metric:<8} "
                f"budget {budget:5.0f}s  "
                f"cauce {c['score']:.4f} ({c['seconds']:.0f}s, {c['estimator']}, "
                f"{c['trials']} trials, {c['selection']})  flaml {f['score']:.4f} "
                f"({f['seconds']:.0f}s, {f['estimator']})  default HGB {h['score']:.4f} "
                f"({h['seconds']:.1f}s, cauce - HGB {row['vs_hgb']['gap']:+.4f}, 95% paired "
                f"bootstrap [{low:+.4f}, {high:+.4f}])  {verdict(c['score'], f['score'])}",
                flush=True,
            )
    (WORKDIR / "results.json").write_text(json.dumps(results, indent=1))
    verdicts = [verdict(r["cauce"]["score"], r["flaml"]["score"]) for r in results]
    even = sum(r["cauce"]["score"] >= r["hgb"]["score"] for r in results)
    print(
        f"quality vs flaml: cauce better on {verdicts.count('better')}, within {WITHIN} on "
        f"{verdicts.count('within')}, worse on {verdicts.count('worse')} of {len(results)} tables; "
        f"vs default HGB: better or equal on {even} of {len(results)}"
    )


if __name__ == "__main__":
    main()
