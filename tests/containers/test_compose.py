"""The compose stack as a user sees it: S3 and HTTP on published ports, scaling, crashes, restarts.

The tests run in file order on one stack; each drops its own pipeline's file.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from shared.runs import describe_run, read_status
from tests.containers.conftest import FIGURES, ComposeStack
from tests.e2e.helpers import run_for, wait_run

pytestmark = [pytest.mark.containers, pytest.mark.timeout(1500)]

CHURN = Path(__file__).resolve().parents[2] / "examples" / "churn.csv"
ROW = {
    "tenure_months": 2,
    "monthly_charges": 95.5,
    "total_charges": 190.0,
    "contract": "month-to-month",
    "internet": "fiber",
    "payment_method": "check",
    "support_calls": 4,
    "senior": True,
}
OIP_TYPES = {int: "INT64", float: "FP64", str: "BYTES", bool: "BOOL"}
# A search of 12 trials of one to three seconds each in a container, two at a time: long enough
# to be shared by two train workers and to be caught mid-trial. Step caching would reuse the
# first such run's training for the same data, so it is off.
SLOW_SPEC = b"""target: churned
cache: false
models:
  - estimator: random_forest
    search: {n_estimators: [300, 400, 500], max_depth: [null, 12], min_samples_leaf: [1, 3]}
tuning: {trials: 12, parallelism: 2, selection: holdout, budget_seconds: 900}
"""
WORKER_SERVICES = ("ingest", "preprocess", "train", "evaluate", "deploy", "batch")


def s3_client(stack: ComposeStack, **config: Any) -> Any:
    """A plain boto3 client on the published S3 port, as `aws s3 cp` would use."""
    settings = stack.settings
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key,
        aws_secret_access_key=settings.s3_secret_key,
        config=Config(s3={"addressing_style": "path"}, **config),
    )


def drop(stack: ComposeStack, pipeline: str, *, spec: bytes | None = None) -> str:
    """Upload the churn data (and a spec) through the published S3 port; return the run id."""
    client = s3_client(stack)
    if spec is not None:
        client.put_object(Bucket=stack.settings.bucket, Key=f"pipelines/{pipeline}.yaml", Body=spec)
    key = f"incoming/{pipeline}/churn.csv"
    client.upload_file(str(CHURN), stack.settings.bucket, key)
    return run_for(stack.store, key)


def infer(stack: ComposeStack, pipeline: str, *, token: bool = True) -> requests.Response:
    """One Open Inference Protocol v2 request on the published HTTP port."""
    inputs = [
        {"name": name, "shape": [1], "datatype": OIP_TYPES[type(value)], "data": [value]}
        for name, value in ROW.items()
    ]
    return requests.post(
        f"{stack.serve_url}/v2/models/{pipeline}/infer",
        json={"inputs": inputs},
        headers={"Authorization": f"Bearer {stack.api_token}"} if token else {},
        timeout=10,
    )


def wait_prediction(stack: ComposeStack, pipeline: str, *, timeout: float = 300) -> dict[str, Any]:
    """The first prediction the service answers for `pipeline`."""
    deadline = time.monotonic() + timeout
    while (response := infer(stack, pipeline)).status_code != 200:
        assert time.monotonic() < deadline, f"no prediction: {response.status_code} {response.text}"
        time.sleep(0.2)
    return dict(response.json())


def trials(stack: ComposeStack, run_id: str) -> list[dict[str, Any]]:
    """The run's trial records, as train wrote them to the bucket."""
    return list(stack.store.get_json(f"runs/{run_id}/train/trials.json"))


def trial_in_hand(stack: ComposeStack, container: dict[str, Any]) -> str | None:
    """The `train.trial[<task id>]` a worker's log shows received and not yet finished."""
    log = stack.logs(container["Id"])
    received = re.findall(r"Task (train\.trial\[[0-9a-f-]+\]) received", log)
    return received[-1] if received and f"{received[-1]} succeeded" not in log else None


def catch_mid_trial(stack: ComposeStack, containers: list[dict[str, Any]]) -> tuple[dict, str]:
    """A worker and the trial it is running: the same trial seen in hand twice, 0.3 s apart."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for container in containers:
            task = trial_in_hand(stack, container)
            if task is not None:
                time.sleep(0.3)
                if trial_in_hand(stack, container) == task:
                    return container, task
        time.sleep(0.05)
    raise AssertionError("no train worker caught mid-trial")


def wait_stage_running(stack: ComposeStack, run_id: str, stage: str) -> None:
    """Block until the run's stage has recorded that it is running."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = read_status(stack.store, run_id, stage) or {}
        if status.get("state") == "running":
            return
        assert status.get("state") != "succeeded", f"{stage} ended before it could be caught"
        time.sleep(0.1)
    raise AssertionError(f"{stage} of {run_id} never started: {describe_run(stack.store, run_id)}")


def node(container: dict[str, Any], service: str) -> str:
    """The Celery node name of a worker container (`-n <service>@%h`)."""
    return f"{service}@{container['Config']['Hostname']}"


def healthy(containers: list[dict[str, Any]]) -> bool:
    """Whether every container is running and its healthcheck passes."""
    return all(
        c["State"]["Running"] and c["State"].get("Health", {}).get("Status") == "healthy"
        for c in containers
    )


def scale(stack: ComposeStack, **counts: int) -> None:
    """`docker compose up -d --scale SERVICE=N ... --wait`."""
    args = [arg for service, n in counts.items() for arg in ("--scale", f"{service}={n}")]
    stack.compose("up", "-d", *args, "--wait", "--wait-timeout", "300")


def test_a_dropped_file_is_answered_by_the_deployed_model(stack: ComposeStack) -> None:
    start = time.monotonic()
    run_id = drop(stack, "churn")
    body = wait_prediction(stack, "churn")
    FIGURES["drop_to_prediction_s"] = round(time.monotonic() - start, 1)

    assert body["model_name"] == "churn" and body["model_version"] == "1"
    predicted = next(o for o in body["outputs"] if o["name"] == "predict")
    assert predicted["data"][0] in ("yes", "no")
    run = stack.cli_json("run", run_id)
    assert (run["state"], run["model_version"], run["promoted"]) == ("succeeded", 1, True)
    assert run["source"] == "incoming/churn/churn.csv"


PLUGIN_SPEC = b"""target: churned
features:
  steps:
    - use: example.ratio
      params: {numerator: total_charges, denominator: tenure_months}
models: [{estimator: logistic_regression}]
"""


def test_a_plugin_installed_through_the_build_argument_trains_and_serves(
    stack: ComposeStack,
) -> None:
    listed = stack.compose("exec", "-T", "serve", "cauce", "plugins", "--json").stdout
    assert '"name": "example.ratio"' in listed and '"name": "example.robust"' in listed
    run = wait_run(stack.store, drop(stack, "plugged", spec=PLUGIN_SPEC))
    assert run["state"] == "succeeded", run["error"]
    version = stack.store.get_json(f"models/plugged/versions/{run['model_version']}/version.json")
    assert [p["name"] for p in version["plugins"]] == ["example.ratio"]
    assert version["runtime"] == "skops"
    body = wait_prediction(stack, "plugged")
    assert body["model_version"] == str(run["model_version"])


def test_only_s3_and_serving_are_published_on_loopback_and_nothing_runs_as_root(
    stack: ComposeStack,
) -> None:
    published = {}
    for service in ("broker", "s3", "watcher", "serve", "console", *WORKER_SERVICES):
        for container in stack.containers(service):
            for port, bindings in (container["NetworkSettings"]["Ports"] or {}).items():
                for binding in bindings or []:
                    published[(service, port)] = binding["HostIp"]
            user = stack.compose("exec", "-T", service, "id", "-u").stdout.strip()
            assert user != "0", f"{service} runs as root"
    assert published == {
        ("s3", "8333/tcp"): "127.0.0.1",
        ("serve", "8080/tcp"): "127.0.0.1",
        ("console", "8081/tcp"): "127.0.0.1",
    }

    anonymous = s3_client(stack, signature_version=UNSIGNED)
    with pytest.raises(ClientError) as refused:
        anonymous.list_objects_v2(Bucket=stack.settings.bucket, Prefix="runs/")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert infer(stack, "churn", token=False).status_code == 401


def test_with_two_train_workers_both_work_on_one_run(stack: ComposeStack) -> None:
    scale(stack, train=2)
    trains = stack.containers("train")
    assert len(trains) == 2 and healthy(trains)
    assert all(len(stack.containers(s)) == 1 for s in WORKER_SERVICES if s != "train")

    run_id = drop(stack, "scaled", spec=SLOW_SPEC)
    run = wait_run(stack.store, run_id)
    assert run["state"] == "succeeded", run["error"]
    workers = {trial["worker"] for trial in trials(stack, run_id)}
    assert workers == {node(c, "train") for c in trains}


def test_a_worker_killed_mid_task_loses_no_run(stack: ComposeStack) -> None:
    scale(stack, train=2)
    trains = stack.containers("train")
    run_id = drop(stack, "crash", spec=SLOW_SPEC)
    wait_stage_running(stack, run_id, "train")
    victim, _ = catch_mid_trial(stack, trains)
    survivor = next(c for c in trains if c["Id"] != victim["Id"])
    subprocess.run(["docker", "kill", victim["Id"]], env=stack.env, check=True, capture_output=True)

    # The killed trial's heartbeat goes quiet; after CAUCE_STALE_SECONDS the watcher sends it
    # again (and says so in its log) and the surviving replica runs it.
    run = wait_run(stack.store, run_id, timeout=300)
    assert run["state"] == "succeeded", run["error"]
    records = trials(stack, run_id)
    assert len(records) == 12 and all(t["state"] == "succeeded" for t in records)
    (watcher,) = stack.containers("watcher")
    resent = re.findall(
        rf"sending train\.trial again for run {run_id} {{'index': (\d+)}}",
        stack.logs(watcher["Id"]),
    )
    assert resent, "the watcher did not send the killed trial again"
    assert {records[int(i)]["worker"] for i in resent} == {node(survivor, "train")}
    assert wait_prediction(stack, "crash")["model_version"] == "1"

    scale(stack, train=1)  # `up` starts the killed container again
    assert healthy(stack.containers("train"))


def test_stop_hands_back_work_and_down_up_keeps_runs_and_models(stack: ComposeStack) -> None:
    kept = drop(stack, "keep")
    assert wait_run(stack.store, kept)["state"] == "succeeded"
    assert wait_prediction(stack, "keep")["model_version"] == "1"
    before = {r["run_id"]: r["state"] for r in stack.cli_json("runs")}

    run_id = drop(stack, "stopped", spec=SLOW_SPEC)
    wait_stage_running(stack, run_id, "train")
    (train,) = stack.containers("train")
    _, in_hand = catch_mid_trial(stack, [train])
    start = time.monotonic()
    stack.compose("stop", timeout=300)
    stop_seconds = time.monotonic() - start
    for service in ("watcher", "serve", *WORKER_SERVICES):
        for container in stack.containers(service, all_states=True):
            assert container["State"]["ExitCode"] == 0, f"{container['Name']} did not stop cleanly"
    stopped_log = stack.logs(train["Id"])
    assert "Soft Shutdown" in stopped_log  # it gave its trial the grace period
    assert stop_seconds < 45, f"docker compose stop took {stop_seconds:.0f}s"

    stack.compose("down")  # containers and network go; the named volumes stay
    assert not stack.containers("train", all_states=True)
    stack.compose("up", "-d", "--wait", "--wait-timeout", "300")

    run = wait_run(stack.store, run_id, timeout=300)
    assert run["state"] == "succeeded", run["error"]
    assert len(trials(stack, run_id)) == 12
    # The trial in hand at the stop either finished within the grace period or was handed back
    # and redelivered, as the same message, to the new container.
    (train,) = stack.containers("train")
    finished = f"{in_hand} succeeded" in stopped_log
    assert finished or f"Task {in_hand} received" in stack.logs(train["Id"])
    after = {r["run_id"]: r["state"] for r in stack.cli_json("runs")}
    assert {k: after[k] for k in before} == before
    assert set(after) == set(before) | {run_id}  # no old drop started a second run
    for pipeline in ("churn", "keep", "stopped"):
        assert wait_prediction(stack, pipeline)["model_version"] == "1"
