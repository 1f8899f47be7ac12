"""WSGI entry of every granian worker (`python -m services.serve` starts them): each worker
builds its own app, so each has its own model poller."""

import logging
import os
import signal
import threading
import time

# One thread per worker for the numeric libraries. The launcher sets these before granian starts;
# here they come after the package imported numpy, so they reach only libraries loaded later
# (create_app also caps the thread pools with threadpoolctl).
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

from services.serve import create_app  # noqa: E402


def _exit_with_the_master(poll: float = 1.0, grace: float = 10.0) -> None:
    """A worker whose master died (SIGKILL, or a stop that raced a worker still importing) stops
    too instead of serving on as an orphan: SIGTERM to itself, then a hard exit after `grace`."""
    master = os.getppid()
    while os.getppid() == master:
        time.sleep(poll)
    logging.getLogger(__name__).warning("granian master %d is gone; stopping this worker", master)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(grace)
    os._exit(1)


logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
threading.Thread(target=_exit_with_the_master, name="cauce-master-watch", daemon=True).start()
app = create_app()
