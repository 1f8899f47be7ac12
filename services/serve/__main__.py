"""`python -m services.serve`: the prediction service on Werkzeug's threaded server."""

from __future__ import annotations

import logging

from werkzeug.serving import run_simple

from services.serve import create_app
from shared.config import load_settings


def main() -> None:
    """Serve on settings.serve_host:serve_port until interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = load_settings()
    app = create_app(settings)
    run_simple(
        settings.serve_host,
        settings.serve_port,
        app,
        threaded=True,
        use_reloader=False,
        use_debugger=False,
    )


if __name__ == "__main__":
    main()
