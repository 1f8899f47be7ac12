"""`python -m services.console`: the console on Werkzeug's threaded server."""

from __future__ import annotations

import logging

from werkzeug.serving import run_simple

from services.console import create_app
from shared.config import load_settings


def main() -> None:
    """Serve on settings.console_host:console_port until interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = load_settings()
    run_simple(
        settings.console_host,
        settings.console_port,
        create_app(settings),
        threaded=True,
        use_reloader=False,
        use_debugger=False,
    )


if __name__ == "__main__":
    main()
