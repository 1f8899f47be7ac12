"""The bucket's keys: built in shared/layout.py only, and exactly as buckets already hold them."""

from __future__ import annotations

import ast
from pathlib import Path

from shared import layout

ROOT = Path(__file__).resolve().parents[2]
PREFIXES = (
    "incoming/",
    "pipelines/",
    "runs/",
    "models/",
    "quarantine/",
    "datasets/",
    "cache/",
    "batch/",
    "predictions/",
    "monitoring/",
    "feedback/",
    "trials/",
)
MARKERS = ("/trials/", "/aliases/", "/versions/")


def _marked(node: ast.AST) -> bool:
    """Whether a string constant holds a folder that only keys have (`/trials/`, ...)."""
    return isinstance(node, ast.Constant) and any(m in str(node.value) for m in MARKERS)


def _key_like(node: ast.AST) -> bool:
    """Whether a string constant reads like (the start of) an object key; URLs start with '/'."""
    if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
        return False
    return node.value.startswith(PREFIXES) or (not node.value.startswith("/") and _marked(node))


def _builds_key(node: ast.AST) -> bool:
    """Whether an expression builds an object key from parts."""
    if isinstance(node, ast.JoinedStr) and node.values:
        first = node.values[0]
        if isinstance(first, ast.Constant):
            return _key_like(first) or (
                not str(first.value).startswith("/") and any(map(_marked, node.values))
            )
        return any(map(_marked, node.values))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return any(_key_like(side) or _builds_key(side) for side in (node.left, node.right))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return _key_like(node.left)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr == "format" and _key_like(node.func.value)
    return False


def key_builders(path: Path) -> list[str]:
    """Every place in one module that builds an object key from parts, as `file:line`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [f"{path}:{node.lineno}" for node in ast.walk(tree) if _builds_key(node)]


def test_only_the_layout_module_builds_object_keys() -> None:
    found = [
        place
        for folder in ("shared", "services", "bench")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path != ROOT / "shared" / "layout.py"
        for place in key_builders(path)
    ]
    assert found == [], "build these keys with shared/layout.py: " + ", ".join(found)


def test_the_check_sees_each_way_of_building_a_key(tmp_path: Path) -> None:
    module = tmp_path / "keys.py"
    module.write_text(
        "a = f'runs/{run_id}/{stage}/status.json'\n"
        "b = 'models/' + pipeline\n"
        "c = prefix + 'trials/'\n"
        "d = 'cache/%s/%s.json' % (stage, key)\n"
        "e = 'predictions/{}/{}'.format(pipeline, job)\n"
        "f = f'{prefix}/aliases/{alias}.json'\n"
    )
    assert len(key_builders(module)) == 6


def test_messages_that_mention_a_path_are_not_keys(tmp_path: Path) -> None:
    module = tmp_path / "messages.py"
    module.write_text(
        "a = f'the dropped file {source} is no longer in the bucket'\n"
        "b = f'uploaded s3://{bucket}/{key}'\n"
        "c = f'/v2/models/{name}/versions/{version}'\n"
        "d = 'runs/'\n"
        "e = f'{done}/{total} stages'\n"
    )
    assert key_builders(module) == []


def test_drops_and_specs_keep_their_keys() -> None:
    assert layout.drop_key("churn", "a.csv") == "incoming/churn/a.csv"
    assert layout.spec_key("churn") == "pipelines/churn.yaml"
    assert layout.batch_key("iris", "rows.csv") == "batch/iris/rows.csv"
    assert (layout.INCOMING, layout.PIPELINES, layout.BATCH) == (
        "incoming/",
        "pipelines/",
        "batch/",
    )


def test_runs_and_their_stage_files_keep_their_keys() -> None:
    assert layout.RUNS == "runs/"
    assert layout.run_key("01RUN") == "runs/01RUN/run.json"
    assert layout.stage_key("01RUN", "ingest", "status.json") == "runs/01RUN/ingest/status.json"
    assert layout.stage_key("01RUN", "train", "heartbeat.json") == "runs/01RUN/train/heartbeat.json"
    assert layout.stage_key("01RUN", "ingest", "data.parquet") == "runs/01RUN/ingest/data.parquet"


def test_trials_keep_their_keys() -> None:
    assert layout.trials_prefix("01RUN") == "runs/01RUN/train/trials/"
    assert layout.trial_key("01RUN", 7) == "runs/01RUN/train/trials/00007.json"
    assert layout.trial_key("01RUN", 12, "attempts") == "runs/01RUN/train/trials/00012.attempts"
    assert layout.trial_key("01RUN", 3, "heartbeat") == "runs/01RUN/train/trials/00003.heartbeat"


def test_versions_and_aliases_keep_their_keys() -> None:
    assert layout.MODELS == "models/"
    assert layout.versions_prefix("iris") == "models/iris/versions/"
    assert layout.version_key("iris", 3) == "models/iris/versions/3/version.json"
    assert layout.version_key("iris", 3, "model.onnx") == "models/iris/versions/3/model.onnx"
    assert layout.aliases_prefix("iris") == "models/iris/aliases/"
    assert layout.alias_key("iris", "production") == "models/iris/aliases/production.json"
    assert layout.history_prefix("iris", "production") == "models/iris/aliases/history/production/"
    assert (
        layout.history_key("iris", "production", "01MOVE")
        == "models/iris/aliases/history/production/01MOVE.json"
    )


def test_quarantine_datasets_cache_and_predictions_keep_their_keys() -> None:
    assert layout.quarantine_key("churn", "01RUN", "a.csv") == "quarantine/churn/01RUN/a.csv"
    assert layout.dataset_key("churn", "ab12") == "datasets/churn/ab12.json"
    assert layout.cache_entry_key("preprocess", "ff00") == "cache/preprocess/ff00.json"
    assert layout.jobs_prefix("iris") == "predictions/iris/"
    assert layout.job_key("iris", "01JOB") == "predictions/iris/01JOB/status.json"
    assert (
        layout.job_key("iris", "01JOB", "rows.predictions.csv")
        == "predictions/iris/01JOB/rows.predictions.csv"
    )


def test_live_reports_and_ground_truth_keep_their_keys() -> None:
    assert layout.live_key("churn", "latest") == "monitoring/churn/live/latest.json"
    assert layout.feedback_prefix("churn") == "feedback/churn/"
    assert (
        layout.feedback_key("churn", "2026-11-28", "120000-ab12")
        == "feedback/churn/2026-11-28/120000-ab12.jsonl"
    )
