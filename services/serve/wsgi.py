"""gunicorn entry: `gunicorn services.serve.wsgi:app` (no --preload: one poller per worker)."""

import logging
import os

# One thread per worker for the numeric libraries, set before they are imported (gunicorn.conf.py
# does the same; this covers a gunicorn started without it).
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

from services.serve import create_app  # noqa: E402

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
app = create_app()
