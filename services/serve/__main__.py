"""`python -m services.serve`: the prediction service under granian with the measured settings
(docs/benchmarks.md, "Prediction service"): one worker process per core, each running the app on
one Python thread.

Override the number of workers with WEB_CONCURRENCY; the address with CAUCE_SERVE_HOST and
CAUCE_SERVE_PORT. For debugging, Flask's own server: `flask --app services.serve:create_app run`.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Mapping, MutableMapping

from shared.config import Settings, load_settings
from shared.errors import CauceError
from shared.rsgi import exec_granian
from shared.rsgi import granian_argv as shared_argv

TARGET = "services.serve.wsgi:served"
# Read once, when a worker loads the numeric libraries; create_app also caps them (threadpoolctl).
ONE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def worker_count(env: Mapping[str, str]) -> int:
    """WEB_CONCURRENCY worker processes, else one per core."""
    raw = env.get("WEB_CONCURRENCY", "").strip()
    if not raw:
        return os.cpu_count() or 1
    if not raw.isdigit() or int(raw) < 1:
        raise CauceError(
            f"WEB_CONCURRENCY must be a number of worker processes (1 or more): {raw!r}"
        )
    return int(raw)


def granian_argv(settings: Settings, *, workers: int) -> list[str]:
    """granian's command line for the prediction service (shared.rsgi.granian_argv)."""
    return shared_argv(
        TARGET,
        host=settings.serve_host,
        port=settings.serve_port,
        workers=workers,
        grace_seconds=settings.shutdown_grace_seconds,
    )


def prepare_environment(env: MutableMapping[str, str]) -> None:
    """What every worker must find in its environment before it imports numpy."""
    for name in ONE_THREAD:
        env.setdefault(name, "1")
    # Counters and the latency histogram summed over workers (prometheus_client's multiprocess
    # mode), in a directory of this server start's own: a respawned worker adds its own file and
    # the dead one's counts stay in the sums, as counters should (see services/serve/metrics.py).
    if not env.get("PROMETHEUS_MULTIPROC_DIR"):
        env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="cauce-metrics-")


def main() -> None:
    """Replace this process with granian's master, which forks the workers."""
    settings = load_settings()
    settings.signing_key_bytes()  # say it once here rather than once per crashing worker
    argv = granian_argv(settings, workers=worker_count(os.environ))
    prepare_environment(os.environ)
    # exec rather than granian's Python API: the master then holds no app and no numpy (this
    # process imported both with the package), and the workers it forks import them afresh,
    # under the thread limits above.
    exec_granian(argv)


if __name__ == "__main__":
    try:
        main()
    except CauceError as exc:
        sys.exit(f"cauce serve: {exc}")
