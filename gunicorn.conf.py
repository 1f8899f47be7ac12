"""gunicorn settings of the prediction service, chosen by measurement (docs/benchmarks.md,
"Prediction service"). Read automatically by `gunicorn services.serve.wsgi:app` run from the
repository root (as docker compose and `cauce up` do); command-line flags override it."""

import os
import tempfile

# Where the service listens; `-b` on the command line wins.
_host = os.environ.get("CAUCE_SERVE_HOST", "127.0.0.1")
bind = [f"{_host}:{os.environ.get('CAUCE_SERVE_PORT', '8080')}"]
# One process per core, each single-threaded for the numeric libraries: requests are ~0.3 ms of
# CPU, so a process per core keeps both cores busy without threads contending for the GIL.
# Override any of these with GUNICORN_CMD_ARGS, e.g. GUNICORN_CMD_ARGS="--workers 4".
workers = int(os.environ.get("WEB_CONCURRENCY", os.cpu_count() or 1))
worker_class = "gthread"
threads = 4
keepalive = 75  # behind a load balancer, keep connections longer than its idle timeout
backlog = 2048
timeout = 60
graceful_timeout = 30
max_requests = 0  # no recycling: a restarted worker reloads and warms every model
accesslog = None

# Numeric libraries in every worker: one thread each (set before the workers import numpy).
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")
# Request counters summed over workers: prometheus_client's multiprocess mode.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="cauce-metrics-"))


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    """Drop a dead worker's live gauges from the summed metrics."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
