"""A test hook, installed at start-up in the Celery worker of test_worker_memory.py
(which puts this folder on PYTHONPATH): after its work, every stage keeps MEMORY_KEPT_MB MiB alive
in its process, as a task leaves behind a library's cache, a fragmented heap or a leak. Production
code has no such hook; other processes are left alone."""

import os
import sys

if os.environ.get("MEMORY_KEPT_MB") and {"celery", "worker"} <= set(sys.orig_argv):
    from shared.stage import AFTER_WORK

    KEPT: list[bytearray] = []
    size = int(os.environ["MEMORY_KEPT_MB"]) * 1024 * 1024
    AFTER_WORK.append(lambda ctx: KEPT.append(bytearray(b"\1" * size)))
