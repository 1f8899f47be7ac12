"""Entry of every granian worker (`python -m services.serve` starts them): each worker builds its
own app, so each has its own model poller. granian serves `served`, the Flask app behind an RSGI
front that reads each request body on the event loop with a timeout (shared/rsgi.py); `app` is
the plain WSGI app, for any other WSGI server."""

import logging
import os

# One thread per worker for the numeric libraries. The launcher sets these before granian starts;
# here they come after the package imported numpy, so they reach only libraries loaded later
# (create_app also caps the thread pools with threadpoolctl).
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

from services.serve import create_app  # noqa: E402
from shared.config import load_settings  # noqa: E402
from shared.rsgi import RsgiWsgi, exit_with_the_master  # noqa: E402

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
exit_with_the_master()
settings = load_settings()
app = create_app(settings)
served = RsgiWsgi(
    app, max_body=settings.max_request_bytes, idle_seconds=settings.body_timeout_seconds
)
