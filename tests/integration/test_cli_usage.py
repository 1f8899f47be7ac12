"""The `cauce` command as a newcomer meets it (the installed command, over real servers): the API
token sent, batch results of one's own upload, one line and a non-zero exit with no stack."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import redis
import requests
from pydantic import SecretStr
from ulid import ULID

from services.batch.tasks import run_job
from services.serve import create_app
from services.watcher.watcher import Watcher
from shared.config import Settings
from shared.layout import job_key, version_key
from shared.messages import ScoreFile
from shared.messaging import create_celery
from shared.pipeline import STAGES
from shared.runs import create_run, write_status
from shared.stack.local import child_env, write_stack_env
from shared.stack.servers import free_port
from shared.storage import Store
from tests.integration.serve_support import (
    deploy,
    diabetes_xy,
    fit_diabetes,
    fit_iris,
    iris_frame,
    running,
)

CAUCE = str(Path(sys.executable).parent / "cauce")


def cauce(settings: Settings, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the installed `cauce ARGS` with `settings` as its environment."""
    return subprocess.run(
        [CAUCE, *args], env=child_env(settings), capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def iris(store: Store) -> pd.DataFrame:
    """Iris deployed as production v1; its feature columns."""
    X, _ = iris_frame()
    deploy(store, "iris", fit_iris(), X, task="classification", target="species", run_id="r1")
    return X


def test_predict_sends_the_api_token(settings: Settings, store: Store, iris: pd.DataFrame) -> None:
    guarded = settings.model_copy(update={"api_token": SecretStr("s3cret-token")})
    app = create_app(guarded, store, start_poller=False)
    app.extensions["cauce.models"].refresh()
    rows = json.dumps(iris.head(2).to_dict(orient="records"))
    with running(app) as url:
        at = guarded.model_copy(update={"serve_port": int(url.rsplit(":", 1)[1])})
        done = cauce(at, "predict", "iris", "--data", rows)
        assert done.returncode == 0, done.stdout + done.stderr
        assert json.loads(done.stdout)["predictions"] == ["setosa", "setosa"]
        wrong = cauce(
            at.model_copy(update={"api_token": SecretStr("nope")}),
            "predict",
            "iris",
            "--data",
            rows,
        )
        assert wrong.returncode == 1 and "CAUCE_API_TOKEN" in wrong.stdout


def test_batch_downloads_the_results_of_its_own_upload(
    settings: Settings, store: Store, iris: pd.DataFrame, tmp_path: Path
) -> None:
    watcher = Watcher(
        store=store,
        broker=redis.Redis.from_url(settings.broker_url),
        app=create_celery(settings, "test-watcher"),
    )

    def queue_and_score() -> None:  # what the watcher and the batch worker do
        for job_id in watcher.scan_batch():
            status = store.get_json(job_key("iris", job_id))
            run_job(store, settings, ScoreFile(job_id=job_id, pipeline="iris", key=status["key"]))

    first, second = tmp_path / "a" / "rows.csv", tmp_path / "b" / "rows.csv"
    for path, count in ((first, 5), (second, 9)):
        path.parent.mkdir()
        iris.head(count).to_csv(path, index=False)
    assert cauce(settings, "batch", str(first), "-p", "iris").returncode == 0
    queue_and_score()  # the first file's job is done before the second file, of the same name

    stop = threading.Event()

    def watch() -> None:  # a watcher slower than the CLI: the old job is there to be picked first
        while not stop.wait(2.0):
            queue_and_score()

    watching = threading.Thread(target=watch)
    watching.start()
    out = tmp_path / "out.csv"
    try:
        done = cauce(settings, "batch", str(second), "-p", "iris", "--output", str(out))
    finally:
        stop.set()
        watching.join()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "9 rows scored" in done.stdout
    assert len(pd.read_csv(out)) == 9


COMMANDS = [
    ("runs",),
    ("run", "01JNOSUCHRUN00000000000000"),
    ("models",),
    ("models", "iris"),
    ("submit", "FILE", "-p", "iris"),
    ("batch", "FILE", "-p", "iris"),
    ("predict", "iris", "--data", "[{}]"),
    ("init",),
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_without_a_stack_every_command_says_what_to_do_in_one_line(
    settings: Settings, tmp_path: Path, args: tuple[str, ...]
) -> None:
    data = tmp_path / "rows.csv"
    data.write_text("a,b\n1,2\n")
    nowhere = settings.model_copy(
        update={
            "s3_endpoint_url": f"http://127.0.0.1:{free_port()}",
            "serve_port": free_port(),
            "broker_url": f"redis://127.0.0.1:{free_port()}/0",
        }
    )
    started = time.monotonic()
    done = cauce(nowhere, *[str(data) if a == "FILE" else a for a in args])
    said = (done.stdout + done.stderr).strip()
    assert done.returncode != 0, said
    assert "Traceback" not in said and len(said.splitlines()) == 1, said
    assert "cauce up" in said and "not running" in said, said
    assert time.monotonic() - started < 30


def test_the_api_token_is_kept_with_the_stack(
    settings: Settings, store: Store, iris: pd.DataFrame
) -> None:
    guarded = settings.model_copy(update={"api_token": SecretStr("s3cret-token")})
    write_stack_env(guarded)  # what `cauce up` does with CAUCE_API_TOKEN set
    restarted = settings.model_copy(update={"signing_key": None})  # `cauce up` again, no token
    write_stack_env(restarted)
    kept = Settings(_env_file=settings.home.resolve() / "stack.env")  # type: ignore[call-arg]
    assert kept.api_token is not None and kept.api_token.get_secret_value() == "s3cret-token"

    app = create_app(kept, store, start_poller=False)  # a stack's processes read stack.env
    app.extensions["cauce.models"].refresh()
    rows = json.dumps(iris.head(1).to_dict(orient="records"))
    with running(app) as url:
        assert requests.post(url + "/invocations/iris", data=rows, timeout=10).status_code == 401
        at = restarted.model_copy(update={"serve_port": int(url.rsplit(":", 1)[1])})
        done = cauce(at, "predict", "iris", "--data", rows)  # the CLI finds it in stack.env
        assert done.returncode == 0, done.stdout + done.stderr


def test_mistaken_names_and_files_say_so_and_exit_non_zero(
    settings: Settings, store: Store, iris: pd.DataFrame
) -> None:
    models = cauce(settings, "models", "nosuch")
    assert models.returncode == 1 and "no models of pipeline 'nosuch'" in models.stderr
    assert "iris" in models.stderr  # the pipelines there are
    runs = cauce(settings, "runs", "-p", "nosuch")
    assert runs.returncode == 1 and "no runs of pipeline 'nosuch'" in runs.stderr
    predict = cauce(settings, "predict", "iris", "--data", "nofile.csv")
    assert predict.returncode == 2 and "file not found: nofile.csv" in predict.stderr


def test_models_prints_metrics_rounded(settings: Settings, store: Store) -> None:
    X, _ = diabetes_xy()
    record = deploy(store, "prices", fit_diabetes(), X, task="regression", target="y", run_id="r1")
    key = version_key("prices", record["version"], "version.json")
    store.put_json(key, {**store.get_json(key), "metrics": {"rmse": 48389.494082312805}})
    shown = cauce(settings, "models", "prices")
    assert shown.returncode == 0 and "rmse=48389 " in shown.stdout, shown.stdout


def test_a_run_whose_gate_failed_says_production_stays(settings: Settings, store: Store) -> None:
    run_id = str(ULID())
    source = {"key": "incoming/p/data.csv", "etag": '"0"', "size": 1, "modified": ""}
    create_run(store, run_id=run_id, pipeline="p", source=source, spec_text=None)
    for stage in STAGES:
        write_status(store, run_id, stage, state="succeeded", attempts=1)
    gate = {"passed": False, "reason": "f1_macro 0.71 is not better than production's 0.75"}
    write_status(
        store,
        run_id,
        "evaluate",
        state="succeeded",
        metrics={"f1_macro": 0.71},
        champion_version=1,
        gate=gate,
    )
    write_status(store, run_id, "deploy", state="succeeded", version=2, promoted=False)
    shown = cauce(settings, "run", run_id)
    assert shown.returncode == 0
    assert "model: v2 registered, not promoted: production stays on v1" in shown.stdout
