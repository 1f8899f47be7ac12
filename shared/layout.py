"""Every key in the bucket, built here and nowhere else. The bucket map:

incoming/<pipeline>/<file>                      drop zone: a new object starts a run
incoming/<pipeline>/<dataset>/<part>            a multi-part dataset's parts: never a run alone
incoming/<pipeline>/<dataset>/_SUCCESS          marker: every part in the folder, in name order
incoming/<pipeline>/<dataset>/_manifest.json    marker: {"parts": [...]}, the parts named, in order
pipelines/<pipeline>.yaml                       pipeline spec (optional; defaults are inferred)
runs/<run_id>/run.json                          what started the run: source, spec snapshot, options
runs/<run_id>/input/<file>                      the run's own copy of the drop, taken when seen
runs/<run_id>/<stage>/<name>                    the stage's artifacts (Parquet for tables)
runs/<run_id>/<stage>/heartbeat.json            the stage's last sign of life while it works
runs/<run_id>/<stage>/status.json               written last: state, times, outputs, metrics, error
runs/<run_id>/train/trials/<00000>.json         one tuning trial's result (.attempts, .heartbeat)
models/<pipeline>/versions/<version>/<name>     version.json, model.skops, model.onnx
models/<pipeline>/aliases/<alias>.json          pointer (production, ...), moved by CAS
models/<pipeline>/aliases/history/<alias>/<id>.json   append-only record of every alias move
quarantine/<pipeline>/<run_id>/<file>           rejected inputs, with reason.json beside them
quarantine/_unrouted/<run_id>/reason.json       a drop no pipeline can take (bad or no folder)
datasets/<pipeline>/<id>.json                   first run of each (content, spec): duplicate drops
cache/<stage>/<key>.json                        step cache: whose outputs a step can reuse
batch/<pipeline>/<file>                         batch scoring drop zone
predictions/<pipeline>/<job_id>/<name>          a batch job's status.json and its predictions
monitoring/<pipeline>/log/<day>/<name>.parquet  sampled prediction requests and their answers
monitoring/<pipeline>/drift/<time>.json         a drift report: each version's index per feature
monitoring/<pipeline>/drift/latest.json         the newest of them
monitoring/<pipeline>/live/<time>.json          each version's metrics on ground truth
monitoring/<pipeline>/live/latest.json          the newest of them
feedback/<pipeline>/<day>/<name>.jsonl          ground truth posted to the prediction service
feedback/<pipeline>/<file>.csv                  ground truth dropped as CSV (request_id, row, label)
"""

from __future__ import annotations

INCOMING = "incoming/"
PIPELINES = "pipelines/"
RUNS = "runs/"
MODELS = "models/"
QUARANTINE = "quarantine/"
DATASETS = "datasets/"
CACHE = "cache/"
BATCH = "batch/"
PREDICTIONS = "predictions/"
MONITORING = "monitoring/"
FEEDBACK = "feedback/"
LATEST = "latest"  # the name of the newest report beside the dated ones
UNROUTED = "_unrouted"
SUCCESS_MARKER = "_SUCCESS"  # Spark's and Hadoop's "this folder is complete"
MANIFEST_MARKER = "_manifest.json"
MARKERS = (SUCCESS_MARKER, MANIFEST_MARKER)


def drop_key(pipeline: str, name: str) -> str:
    """Where a dropped file lands: it starts a run of `pipeline`."""
    return f"{INCOMING}{pipeline}/{name}"


def dataset_prefix(pipeline: str, dataset: str) -> str:
    """The folder of a multi-part dataset: its parts, then its marker, land here."""
    return f"{INCOMING}{pipeline}/{dataset}/"


def folder_key(key: str) -> str:
    """The folder (ending in '/') that holds the object at `key`."""
    return key.rsplit("/", 1)[0] + "/"


def part_key(folder: str, name: str) -> str:
    """The key of the object called `name` directly in `folder` (a prefix ending in '/')."""
    return f"{folder}{name}"


def spec_key(pipeline: str) -> str:
    """The key of a pipeline's spec."""
    return f"{PIPELINES}{pipeline}.yaml"


def run_key(run_id: str, name: str = "run.json") -> str:
    """The key of a file directly under the run."""
    return f"{RUNS}{run_id}/{name}"


def input_key(run_id: str, name: str) -> str:
    """The run's own copy of the dropped file: what ingest reads, whatever lands at the drop's key
    later."""
    return run_key(run_id, f"input/{name}")


def stage_key(run_id: str, stage: str, name: str) -> str:
    """The key of one of a stage's files (status.json, heartbeat.json or an artifact)."""
    return run_key(run_id, f"{stage}/{name}")


def trials_prefix(run_id: str) -> str:
    """The prefix under which a run's tuning trials keep their files."""
    return stage_key(run_id, "train", "trials/")


def trial_key(run_id: str, index: int, suffix: str = "json") -> str:
    """One trial's result (`json`), attempt counter (`attempts`) or heartbeat (`heartbeat`)."""
    return f"{trials_prefix(run_id)}{index:05d}.{suffix}"


def versions_prefix(pipeline: str) -> str:
    """The prefix under which a pipeline's versions live."""
    return f"{MODELS}{pipeline}/versions/"


def version_key(pipeline: str, version: int, name: str = "version.json") -> str:
    """The key of one file of one version."""
    return f"{versions_prefix(pipeline)}{version}/{name}"


def aliases_prefix(pipeline: str) -> str:
    """The prefix under which a pipeline's alias pointers (and their history) live."""
    return f"{MODELS}{pipeline}/aliases/"


def alias_key(pipeline: str, alias: str) -> str:
    """The key of an alias pointer."""
    return f"{aliases_prefix(pipeline)}{alias}.json"


def history_prefix(pipeline: str, alias: str) -> str:
    """The prefix under which every move of an alias is recorded."""
    return f"{aliases_prefix(pipeline)}history/{alias}/"


def history_key(pipeline: str, alias: str, move_id: str) -> str:
    """The key of the record of one alias move."""
    return f"{history_prefix(pipeline, alias)}{move_id}.json"


def quarantine_key(pipeline: str, run_id: str, name: str) -> str:
    """Where a rejected run's input (and reason.json) is kept."""
    return f"{QUARANTINE}{pipeline}/{run_id}/{name}"


def rejected_key(pipeline: str | None, run_id: str, name: str = "reason.json") -> str:
    """Where the watcher records a drop it could not start a run for (no pipeline: `_unrouted`,
    which no pipeline name can be: names start with a letter or digit)."""
    return quarantine_key(pipeline or UNROUTED, run_id, name)


def dataset_key(pipeline: str, dataset: str) -> str:
    """The claim of the first run of a dataset (content and spec)."""
    return f"{DATASETS}{pipeline}/{dataset}.json"


def cache_entry_key(stage: str, key: str) -> str:
    """Where a step-cache entry lives."""
    return f"{CACHE}{stage}/{key}.json"


def batch_key(pipeline: str, name: str) -> str:
    """Where a file to score in batch lands: it starts a batch job of `pipeline`."""
    return f"{BATCH}{pipeline}/{name}"


def jobs_prefix(pipeline: str) -> str:
    """The prefix under which a pipeline's batch jobs live."""
    return f"{PREDICTIONS}{pipeline}/"


def job_key(pipeline: str, job_id: str, name: str = "status.json") -> str:
    """Where a batch job writes its status and its predictions."""
    return f"{jobs_prefix(pipeline)}{job_id}/{name}"


def prediction_log_prefix(pipeline: str, day: str | None = None) -> str:
    """The prefix of a pipeline's prediction log, or of one day's part of it (YYYY-MM-DD)."""
    return f"{MONITORING}{pipeline}/log/" + (f"{day}/" if day else "")


def prediction_log_key(pipeline: str, day: str, name: str) -> str:
    """One batch of a pipeline's logged predictions, written on `day` (YYYY-MM-DD)."""
    return f"{prediction_log_prefix(pipeline, day)}{name}.parquet"


def drift_prefix(pipeline: str) -> str:
    """The prefix of a pipeline's drift reports (their names sort by time)."""
    return f"{MONITORING}{pipeline}/drift/"


def drift_key(pipeline: str, name: str) -> str:
    """One drift report of a pipeline."""
    return f"{drift_prefix(pipeline)}{name}.json"


def live_prefix(pipeline: str) -> str:
    """The prefix of a pipeline's live-metric reports (their names sort by time)."""
    return f"{MONITORING}{pipeline}/live/"


def live_key(pipeline: str, name: str) -> str:
    """One live-metric report of a pipeline."""
    return f"{live_prefix(pipeline)}{name}.json"


def feedback_prefix(pipeline: str) -> str:
    """The prefix of a pipeline's ground truth: posted batches and dropped CSV files."""
    return f"{FEEDBACK}{pipeline}/"


def feedback_key(pipeline: str, day: str, name: str) -> str:
    """One batch of ground truth posted to the prediction service on `day` (YYYY-MM-DD)."""
    return f"{feedback_prefix(pipeline)}{day}/{name}.jsonl"
