"""`cauce spec show|set` and the target line of `cauce run`, as a user runs them (the installed
command, over real S3)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ulid import ULID

from shared.config import Settings
from shared.runs import create_run, write_status
from shared.stack.local import child_env
from shared.storage import Store

CAUCE = str(Path(sys.executable).parent / "cauce")

SPEC = """# churn: tuned a little longer than the default
target: churned   # the column to predict
tuning:
  trials: 6       # per candidate
  sampler: random
  parallelism: 2
cache: false
"""


def cauce(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CAUCE, *args],
        env=child_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_spec_is_stored_as_written_and_shown_with_its_comments(
    settings: Settings, store: Store, tmp_path: Path
) -> None:
    path = tmp_path / "churn.yaml"
    path.write_text(SPEC)

    stored = cauce(settings, "spec", "set", "churn", str(path))
    assert stored.returncode == 0, stored.stderr
    assert "pipelines/churn.yaml" in stored.stdout
    assert store.get_bytes("pipelines/churn.yaml").decode() == SPEC

    shown = cauce(settings, "spec", "show", "churn")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == SPEC


def test_a_bad_spec_is_refused_naming_the_field_and_nothing_is_stored(
    settings: Settings, store: Store, tmp_path: Path
) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("target: price\n")
    assert cauce(settings, "spec", "set", "houses", str(good)).returncode == 0
    for text, says in [
        ("split: {test: 2}\n", "split.test"),
        (
            "task: regression\nmodels: [{estimator: ridge, search: {alpah: [1, 2]}}]\n",
            "models[0].search.alpah: ridge has no parameter 'alpah'; known parameters: alpha",
        ),
        ("tuning: {sampler: sobol}\n", "tuning.sampler"),
    ]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        refused = cauce(settings, "spec", "set", "houses", str(bad))
        assert refused.returncode != 0
        assert says in refused.stderr, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert store.get_bytes("pipelines/houses.yaml") == b"target: price\n"


def test_show_says_when_a_pipeline_has_no_spec(settings: Settings, store: Store) -> None:
    store.ensure_bucket()
    shown = cauce(settings, "spec", "show", "nospec")
    assert shown.returncode == 1
    assert "'nospec' has no spec" in shown.stderr
    assert "cauce spec set nospec FILE" in shown.stderr


def test_run_says_which_target_and_task_were_guessed(settings: Settings, store: Store) -> None:
    run_id = str(ULID())
    source = {"key": "incoming/houses/data.csv", "etag": '"0"', "size": 1, "modified": ""}
    create_run(store, run_id=run_id, pipeline="houses", source=source, spec_text=None)
    write_status(
        store,
        run_id,
        "ingest",
        state="succeeded",
        sha256="0" * 64,
        target="price",
        task="regression",
        target_guessed=True,
        task_guessed=True,
    )
    shown = cauce(settings, "run", run_id)
    assert shown.returncode == 0, shown.stderr
    assert (
        "target price (guessed), task regression (guessed); "
        "set the target with --target or in the spec"
    ) in shown.stdout
