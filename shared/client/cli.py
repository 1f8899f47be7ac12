"""The `cauce` command: run the stack, submit data, follow runs, list models, predict."""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import click
import requests
from botocore.exceptions import BotoCoreError
from botocore.exceptions import ConnectionError as BotoConnectionError

from shared.alerts import new_alert
from shared.client.render import run_lines, run_summary, search_line
from shared.client.runlist import Reader, RunCache, runs_page
from shared.client.submit import (
    await_run_id,
    dataset_files,
    find_batch_job,
    submit_batch,
    submit_dataset,
    submit_file,
    wait_for_batch,
    wait_for_run,
)
from shared.config import Settings, load_settings
from shared.errors import CauceError, NotFound, TransientError
from shared.layout import drop_key, spec_key
from shared.registry import get_alias, list_pipelines, list_versions, serving_runtime
from shared.results import STATES
from shared.runs import describe_run
from shared.spec import parse_spec
from shared.stack import local as stack
from shared.storage import Store, check_name
from shared.text import visible
from shared.webhook import post


def _settings() -> Settings:
    return load_settings()


def _store() -> Store:
    return Store.from_settings(_settings())


def auth_headers(settings: Settings) -> dict[str, str]:
    """The bearer token every HTTP call to the stack carries when CAUCE_API_TOKEN is set."""
    token = settings.api_token.get_secret_value() if settings.api_token else ""
    return {"Authorization": f"Bearer {token}"} if token else {}


def _emit(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


@click.group()
def main() -> None:
    """cauce: portable, event-driven machine-learning pipelines."""


@main.command()
@click.option(
    "--workers",
    "-w",
    multiple=True,
    metavar="STAGE=N",
    help="Worker processes for a stage, e.g. --workers train=2 (repeatable).",
)
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for health.")
def up(workers: tuple[str, ...], timeout: float) -> None:
    """Start the local stack in the background: broker, S3, watcher, workers, serving."""
    counts = _parse_workers(workers)
    settings = _settings()
    running = stack.status(settings.home.resolve())
    if running:
        click.echo(
            f"the stack is already running in {settings.home.resolve()} "
            f"({len(running)} processes); to change its workers: cauce down, then cauce up"
            + "".join(f" -w {w}" for w in workers)
        )
        sys.exit(1 if workers else 0)
    stack.up(settings, counts)
    seen: set[str] = set()

    def progress(processes: list[dict[str, Any]]) -> None:
        for proc in processes:
            if proc["healthy"] and proc["name"] not in seen:
                seen.add(proc["name"])
                click.echo(f"  {proc['name']} up (pid {proc['pid']})", err=True)

    click.echo(f"starting the stack in {settings.home.resolve()} ...", err=True)
    processes = stack.wait_healthy(settings.home, timeout=timeout, on_progress=progress)
    sick = [p["name"] for p in processes if not p["healthy"]]
    if not processes or sick:
        raise click.ClickException(
            f"not healthy after {timeout}s: {', '.join(sick) or 'all'}; see {settings.home}/logs/"
        )
    click.echo(
        f"stack is up: {len(processes)} processes; predictions at {settings.serve_url}, "
        f"console at {settings.console_url}"
    )


def _parse_workers(values: tuple[str, ...]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        stage, _, number = value.partition("=")
        if stage not in stack.STAGES or not number.isdigit() or int(number) < 1:
            raise click.BadParameter(
                f"{value!r}: use STAGE=N with STAGE one of {', '.join(stack.STAGES)}",
                param_hint="--workers",
            )
        counts[stage] = int(number)
    return counts


@main.command()
def init() -> None:
    """Create the bucket if it does not exist (compose runs this once against a new store)."""
    store = _store()
    store.ensure_bucket()
    click.echo(f"bucket {store.bucket} is ready")


@main.command()
def down() -> None:
    """Stop every process of the local stack (data is kept)."""
    home = _settings().home
    click.echo("stopped" if stack.down(home) else "nothing running")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(as_json: bool) -> None:
    """Show each process of the local stack, its pid and whether it is healthy."""
    processes = stack.status(_settings().home)
    if as_json:
        _emit({"running": bool(processes), "processes": processes})
        return
    if not processes:
        other = stack.running_elsewhere(_settings())
        click.echo(
            f"no stack runs in {_settings().home.resolve()}; {_elsewhere(other)}"
            if other
            else "the stack is not running (start it with: cauce up)"
        )
    for proc in processes:
        click.echo(
            f"{proc['name']:<14} pid {proc['pid']!s:<8} "
            f"{'healthy' if proc['healthy'] else 'UNHEALTHY'}  restarts {proc['restarts']}"
        )
    sys.exit(0 if processes and all(p["healthy"] for p in processes) else 1)


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--pipeline", "-p", required=True, help="Pipeline name (incoming/<pipeline>/).")
@click.option(
    "--dataset",
    help="Upload the files (or a folder's) as the parts of one dataset of this name "
    "(incoming/<pipeline>/<dataset>/, then a manifest); a folder's name by default.",
)
@click.option("--target", help="Target column; written to pipelines/<pipeline>.yaml first.")
@click.option("--no-cache", is_flag=True, help="Recompute every stage; reuse no cached step.")
@click.option("--force", is_flag=True, help="Train even if this exact data was trained before.")
@click.option("--wait", is_flag=True, help="Wait for the run to end; exit 1 if it fails.")
@click.option("--timeout", default=900.0, show_default=True, help="Seconds to wait with --wait.")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
def submit(
    files: tuple[Path, ...],
    pipeline: str,
    dataset: str | None,
    target: str | None,
    no_cache: bool,
    force: bool,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Upload FILE to the drop zone, which starts a run; several files, or a folder, are the
    parts of one dataset, whose manifest (uploaded last) starts one run of them all."""
    settings = _settings()
    store = Store.from_settings(settings)
    parts, name = _parts(files, dataset)
    wake = settings.broker_url
    if parts is None:
        upload = submit_file(
            store,
            files[0],
            pipeline=pipeline,
            target=target,
            cache=not no_cache,
            force=force,
            broker_url=wake,
        )
    else:
        upload = submit_dataset(
            store,
            parts,
            pipeline=pipeline,
            dataset=name,
            target=target,
            cache=not no_cache,
            force=force,
            broker_url=wake,
        )
        click.echo(f"uploaded {len(parts)} parts", err=True)
    click.echo(f"uploaded s3://{store.bucket}/{upload['key']}", err=True)
    if not wait:
        return
    run_id = _await_run_id(store, upload, timeout=60.0)
    click.echo(f"run {run_id} started", err=True)
    view = wait_for_run(store, run_id, timeout=timeout, on_change=_print_progress)
    _emit(view) if as_json else _print_run(view)
    if view["state"] != "succeeded":
        sys.exit(1)


def _parts(files: tuple[Path, ...], dataset: str | None) -> tuple[list[Path] | None, str]:
    """What `cauce submit` uploads: one file alone (None), or a dataset's parts and its name."""
    folders = [path for path in files if path.is_dir()]
    if folders and len(files) > 1:
        raise click.UsageError("give one folder, or files: not both, nor several folders")
    if folders:
        return dataset_files(folders[0]), dataset or folders[0].resolve().name
    if len(files) > 1 and dataset is None:
        raise click.UsageError("several files are one dataset: name it with --dataset NAME")
    return (list(files), dataset) if dataset is not None else (None, "")


def _await_run_id(store: Store, upload: dict[str, Any], *, timeout: float) -> str:
    run_id = await_run_id(store, upload, timeout=timeout)
    if run_id is None:
        raise click.ClickException(
            "no run started within 60s: is the watcher running? (cauce status)"
        )
    return run_id


def _print_progress(view: dict[str, Any]) -> None:
    parts = [f"{s['stage']}:{s['state']}" for s in view["stages"] if s["state"] != "pending"]
    if view.get("search") and "used_seconds" in view["search"]:
        parts.append(f"({search_line(view['search'])})")
    click.echo(f"  [{view['state']}] " + "  ".join(parts), err=True)


def _print_run(view: dict[str, Any]) -> None:
    click.echo("\n".join(run_lines(view)))


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--pipeline", "-p", required=True, help="Score with this pipeline's production.")
@click.option("--wait", is_flag=True, help="Wait for the job to end; exit 1 if it fails.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Wait for the job, then download its predictions CSV here.",
)
@click.option("--timeout", default=900.0, show_default=True, help="Seconds to wait with --wait.")
@click.option("--json", "as_json", is_flag=True, help="Print the job's status as JSON.")
def batch(
    file: Path, pipeline: str, wait: bool, output: Path | None, timeout: float, as_json: bool
) -> None:
    """Upload FILE to batch/<pipeline>/, which queues a batch prediction job."""
    store = _store()
    upload = submit_batch(store, file, pipeline=pipeline)
    click.echo(f"uploaded s3://{store.bucket}/{upload['key']}", err=True)
    if not wait and output is None:
        return
    deadline, job_id = time.monotonic() + 60.0, None
    while job_id is None:
        if time.monotonic() > deadline:
            raise click.ClickException(
                "no batch job queued within 60s: is the watcher running? (cauce status)"
            )
        time.sleep(0.3)
        job_id = find_batch_job(store, upload)
    click.echo(f"batch job {job_id} queued", err=True)
    status = wait_for_batch(store, pipeline, job_id, timeout=timeout)
    if status["state"] == "succeeded" and output is not None:
        store.download(status["output"], output)
        click.echo(f"predictions written to {output}", err=True)
    if as_json:
        _emit(status)
    elif status["state"] == "succeeded":
        click.echo(
            f"job {job_id} succeeded: {status['rows']} rows scored by {pipeline} "
            f"v{status['model_version']} in {status['seconds']}s -> "
            f"s3://{store.bucket}/{status['output']}"
        )
    else:
        field = f" (field: {status['field']})" if status.get("field") else ""
        click.echo(f"job {job_id} {status['state']}: {status.get('error') or ''}{field}")
    if status["state"] != "succeeded":
        sys.exit(1)


@main.command()
@click.option("--pipeline", "-p", help="Only this pipeline's runs.")
@click.option("--state", type=click.Choice(STATES), help="Only runs in this state.")
@click.option(
    "--limit", "-n", default=20, show_default=True, type=click.IntRange(1), help="How many runs."
)
@click.option("--before", metavar="RUN_ID", help="Only runs older than this one (the next page).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (oldest first).")
def runs(
    pipeline: str | None, state: str | None, limit: int, before: str | None, as_json: bool
) -> None:
    """List the newest runs, printed oldest first (the newest last). Reads only those runs,
    however many the bucket holds; `--before` the oldest one shown goes on to older runs."""
    store = _store()
    with ThreadPoolExecutor(8) as pool:
        page = runs_page(
            Reader(store, pool, RunCache()),
            before=before,
            limit=limit,
            pipeline=pipeline,
            state=state,
        )
    views = list(reversed(page.runs))
    if not views and pipeline and before is None and not _has_runs(store, pipeline):
        raise click.ClickException(
            f"no runs of pipeline {pipeline!r} (start one with: cauce submit FILE -p {pipeline})"
        )
    if as_json:
        _emit(views)
    else:
        for view in views:
            click.echo(visible(run_summary(view)))
    if page.next_before is not None:
        click.echo(f"older runs: cauce runs --before {page.next_before}", err=True)


@main.command()
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def run(run_id: str, as_json: bool) -> None:
    """Show one run: each stage's state, duration and error."""
    try:
        view = describe_run(_store(), run_id)
    except NotFound:
        raise click.ClickException(f"no run {run_id}") from None
    _emit(view) if as_json else _print_run(view)


@main.command()
@click.argument("pipeline", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def models(pipeline: str | None, as_json: bool) -> None:
    """List model versions with their aliases and metrics."""
    store = _store()
    result = []
    names = list_pipelines(store)
    if pipeline and pipeline not in names:
        known = ", ".join(names) or "none yet"
        raise click.ClickException(f"no models of pipeline {pipeline!r} (pipelines: {known})")
    for name in [pipeline] if pipeline else names:
        alias = get_alias(store, name)
        for version in list_versions(store, name):
            aliases = ["production"] if alias and alias["version"] == version["version"] else []
            result.append(
                {
                    "pipeline": name,
                    "version": version["version"],
                    "aliases": aliases,
                    "estimator": version.get("estimator"),
                    "metric": version.get("metric"),
                    "metrics": version.get("metrics"),
                    "run_id": version.get("run_id"),
                    "created": version.get("created"),
                    **serving_runtime(version),
                }
            )
    if as_json:
        _emit(result)
        return
    for item in result:
        score = (item["metrics"] or {}).get(item["metric"])
        click.echo(
            f"{item['pipeline']:<16} v{item['version']:<4} {','.join(item['aliases']):<11} "
            f"{item['estimator']:<24} {item['metric']}={_number(score)}  {item['runtime']:<5}  "
            f"run {item['run_id']}"
        )
        if item["runtime_reason"]:
            click.echo(f"{'':<22}served by {item['runtime']}: {item['runtime_reason']}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins(as_json: bool) -> None:
    """List the installed plugins' feature steps and estimators with their parameters."""
    from shared.plugins import installed

    found = [plugin.describe() for kind in installed().values() for plugin in kind.values()]
    if as_json:
        _emit(found)
        return
    if not found:
        click.echo("no plugins installed (README, Your own steps)")
    for item in found:
        runtime = "onnx" if item["onnx"] else "skops"
        click.echo(
            f"{item['kind']:<9} {item['name']:<24} {item['package']} {item['version']}  "
            f"served by {runtime}"
        )
        if item["description"]:
            click.echo(f"{'':<10}{item['description']}")
        if item["kind"] == "estimator":
            click.echo(f"{'':<10}tasks: {', '.join(item['tasks'])}")
            named = item["space"]
        else:
            named = item["params"]
        for name, about in named.items():
            click.echo(f"{'':<10}{name}: {_param(about)}")


def _param(about: Any) -> str:
    """A parameter as `cauce plugins` shows it: its type and default, or its search range."""
    if not isinstance(about, dict) or "title" not in about:
        return json.dumps(about)
    text = about.get("type", "any")
    if "default" in about:
        text += f" = {json.dumps(about['default'])}"
    else:
        text += " (required)"
    return text + (f"  {about['description']}" if about.get("description") else "")


def _number(value: Any) -> str:
    """A metric as a person reads it: four significant digits, whole numbers when large."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return str(value)
    return f"{value:.0f}" if abs(value) >= 10_000 else f"{value:.4g}"


def _has_runs(store: Store, pipeline: str) -> bool:
    """Whether anything was ever dropped for `pipeline` (its runs' source files stay)."""
    return any(True for _ in store.list_objects(drop_key(pipeline, "")))


@main.command()
@click.argument("pipeline")
@click.option(
    "--data",
    "-d",
    required=True,
    help="JSON (MLflow scoring format or a list of records), or a .json/.csv file.",
)
def predict(pipeline: str, data: str) -> None:
    """Ask the prediction service for predictions."""
    body = _request_body(data)
    settings = _settings()
    url = f"{settings.serve_url}/invocations/{pipeline}"
    try:
        response = requests.post(url, json=body, headers=auth_headers(settings), timeout=30)
    except requests.ConnectionError:
        raise click.ClickException(not_running(settings.serve_url)) from None
    _emit(response.json())
    if response.status_code >= 400:
        sys.exit(1)


def _request_body(data: str) -> Any:
    path = Path(data)
    if path.suffix in (".json", ".csv") and not path.exists():
        raise click.BadParameter(f"file not found: {data}", param_hint="--data")
    if path.suffix in (".json", ".csv"):
        if path.suffix == ".csv":
            import pandas as pd

            frame = pd.read_csv(path)
            return {"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}
        data = path.read_text()
    try:
        body = json.loads(data)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON and not a .json/.csv file: {exc}") from None
    return {"dataframe_records": body} if isinstance(body, list) else body


@main.group()
def spec() -> None:
    """Show or set a pipeline's spec (pipelines/<pipeline>.yaml in the bucket)."""


@spec.command("show")
@click.argument("pipeline")
def spec_show(pipeline: str) -> None:
    """Print PIPELINE's spec as stored (comments included)."""
    try:
        text = _store().get_bytes(spec_key(check_name(pipeline))).decode("utf-8", "replace")
    except NotFound:
        raise click.ClickException(
            f"pipeline {pipeline!r} has no spec, so every field takes its default; "
            f"write one with: cauce spec set {pipeline} FILE"
        ) from None
    click.echo(text, nl=not text.endswith("\n"))


@spec.command("set")
@click.argument("pipeline")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def spec_set(pipeline: str, file: Path) -> None:
    """Check FILE as a pipeline spec and store it as written for PIPELINE's next runs."""
    check_name(pipeline)
    text = file.read_text(encoding="utf-8")
    parse_spec(text)  # a SpecError names the bad field; nothing is stored
    store = _store()
    store.ensure_bucket()
    store.put_bytes(spec_key(pipeline), text.encode("utf-8"), content_type="application/yaml")
    click.echo(f"spec of {pipeline} set: s3://{store.bucket}/{spec_key(pipeline)}")


@main.group()
def alerts() -> None:
    """Alerts posted to CAUCE_ALERT_URL (see the README, "Alerts")."""


@alerts.command("test")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def alerts_test(as_json: bool) -> None:
    """Post one signed `alert.test` to CAUCE_ALERT_URL (one try); exit 1 unless a 2xx answers."""
    settings = _settings()
    if not settings.alert_url or settings.alert_secret is None:
        raise click.ClickException("no alert URL: set CAUCE_ALERT_URL and CAUCE_ALERT_SECRET")
    alert = new_alert("alert.test", "a test alert sent by `cauce alerts test`")
    secret = settings.alert_secret.get_secret_value().encode()
    try:
        response = post(
            settings.alert_url, alert, secret=secret, timeout=settings.alert_timeout_seconds
        )
    except requests.RequestException as exc:
        reason = f"{type(exc).__name__}: {exc}"
        raise click.ClickException(f"{settings.alert_url} did not answer: {reason}") from None
    sent = {"url": settings.alert_url, "id": alert.id, "status": response.status_code}
    answer = response.text[:200].strip()
    if as_json:
        _emit({**sent, "answer": answer})
    else:
        click.echo(f"{settings.alert_url} answered {response.status_code} {answer}".rstrip())
    if not 200 <= response.status_code < 300:
        sys.exit(1)


def not_running(where: str | None) -> str:
    """The one line a command prints when the stack it needs does not answer at `where`."""
    return (
        f"the stack is not running: nothing answers at {where} (start it with `cauce up`; "
        "for a stack started in another directory, set CAUCE_HOME to its home)"
    )


def _elsewhere(home: Path) -> str:
    return f"a stack is running with CAUCE_HOME={home} (use it: CAUCE_HOME={home} cauce ...)"


def _unreachable(exc: BaseException) -> bool:
    """Whether `exc` says a server of the stack did not answer at all."""
    cause = exc.__cause__ if isinstance(exc, TransientError) else exc
    return isinstance(cause, (BotoConnectionError, requests.ConnectionError))


def run_cli() -> None:
    """Console-script entry point that turns cauce errors into one clear line."""
    try:
        main()
    except (CauceError, BotoCoreError) as exc:
        if _unreachable(exc):
            message = not_running(_settings().s3_endpoint_url)
        else:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        try:
            other = stack.running_elsewhere(_settings())
        except CauceError:  # the settings themselves are what is wrong
            other = None
        if other is not None and "CAUCE_HOME=" not in message:
            message = f"{message}; {_elsewhere(other)}"
        click.echo(f"error: {message}", err=True)
        sys.exit(2)
