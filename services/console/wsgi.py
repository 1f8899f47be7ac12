"""Entry of the console's granian worker (`python -m services.console` starts it). granian serves
`served`: the Flask app behind an RSGI front that reads each request body on the event loop with
a timeout and runs the app on a few threads (shared/rsgi.py), so idle or stalled connections cost
no thread. `app` is the plain WSGI app, for any other WSGI server."""

import logging

from services.console import create_app
from shared.config import load_settings
from shared.rsgi import RsgiWsgi, exit_with_the_master

THREADS = 8  # pages run on these; each waits mostly on the object store

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
exit_with_the_master()
settings = load_settings()
app = create_app(settings)
served = RsgiWsgi(
    app,
    max_body=app.config["MAX_CONTENT_LENGTH"],
    idle_seconds=settings.body_timeout_seconds,
    threads=THREADS,
)
