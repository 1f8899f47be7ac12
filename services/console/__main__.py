"""`python -m services.console`: the console under granian, one worker process (see wsgi.py).
For debugging, Flask's own server: `flask --app services.console:create_app run`."""

from __future__ import annotations

import sys

from shared.config import load_settings
from shared.errors import CauceError
from shared.rsgi import exec_granian, granian_argv

TARGET = "services.console.wsgi:served"


def main() -> None:
    """Replace this process with granian's master, which forks the console's worker."""
    settings = load_settings()
    argv = granian_argv(
        TARGET,
        host=settings.console_host,
        port=settings.console_port,
        workers=1,
        grace_seconds=settings.shutdown_grace_seconds,
    )
    exec_granian(argv)


if __name__ == "__main__":
    try:
        main()
    except CauceError as exc:
        sys.exit(f"cauce console: {exc}")
