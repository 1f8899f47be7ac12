"""The fault-injection hook, installed at start-up in each Celery worker of the fault tests' stack
(tests/faults/conftest.py puts this folder on PYTHONPATH): every stage is held FAULTS_STAGE_DELAY
seconds after its work, before its status is written, so that a test can kill or stop its worker
mid-stage. Production code has no delay; other processes are left alone."""

import os
import sys
import time

if os.environ.get("FAULTS_STAGE_DELAY") and {"celery", "worker"} <= set(sys.orig_argv):
    from shared.stage import AFTER_WORK

    seconds = float(os.environ["FAULTS_STAGE_DELAY"])
    AFTER_WORK.append(lambda ctx: time.sleep(seconds))
