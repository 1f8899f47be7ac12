"""`python -m services.serve`: granian's command line and the environment its workers get."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from services.serve.__main__ import TARGET, granian_argv, prepare_environment, worker_count
from shared.config import Settings
from shared.errors import CauceError


def options(argv: list[str]) -> dict[str, str]:
    """Each option of a command line with the word after it."""
    return dict(itertools.pairwise(argv))


def test_granian_gets_the_measured_settings_on_loopback_by_default() -> None:
    argv = granian_argv(Settings(serve_host="127.0.0.1", serve_port=8080), workers=2)
    given = options(argv)
    assert argv[1:3] == ["-m", "granian"] and argv[-1] == TARGET == "services.serve.wsgi:served"
    assert given["--interface"] == "rsgi" and given["--loop"] == "uvloop"
    assert (given["--host"], given["--port"]) == ("127.0.0.1", "8080")
    assert (given["--workers"], given["--blocking-threads"]) == ("2", "1")
    assert given["--backlog"] == "2048" and given["--workers-kill-timeout"] == "30"
    assert {"--http1-keep-alive", "--respawn-failed-workers", "--no-access-log"} <= set(argv)


def test_the_address_and_the_grace_period_come_from_the_settings() -> None:
    settings = Settings(serve_host="0.0.0.0", serve_port=9000, shutdown_grace_seconds=2.5)
    given = options(granian_argv(settings, workers=1))
    assert (given["--host"], given["--port"]) == ("0.0.0.0", "9000")
    assert given["--workers-kill-timeout"] == "3"  # granian takes whole seconds, at least 1
    no_grace = Settings(shutdown_grace_seconds=0)
    assert options(granian_argv(no_grace, workers=1))["--workers-kill-timeout"] == "1"


def test_web_concurrency_sets_the_workers_else_one_per_core() -> None:
    assert worker_count({}) == (os.cpu_count() or 1)
    assert worker_count({"WEB_CONCURRENCY": "3"}) == 3
    for bad in ("0", "two", "-1"):
        with pytest.raises(CauceError, match="WEB_CONCURRENCY"):
            worker_count({"WEB_CONCURRENCY": bad})


def test_workers_get_one_numeric_thread_and_a_fresh_metrics_directory() -> None:
    env: dict[str, str] = {"OMP_NUM_THREADS": "4"}
    prepare_environment(env)
    assert env["OMP_NUM_THREADS"] == "4"  # what the operator set stays
    assert env["OPENBLAS_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "1"
    metrics_dir = Path(env["PROMETHEUS_MULTIPROC_DIR"])
    assert metrics_dir.is_dir() and not any(metrics_dir.iterdir())
    metrics_dir.rmdir()
    again: dict[str, str] = {}
    prepare_environment(again)
    assert again["PROMETHEUS_MULTIPROC_DIR"] != env["PROMETHEUS_MULTIPROC_DIR"]
    Path(again["PROMETHEUS_MULTIPROC_DIR"]).rmdir()
