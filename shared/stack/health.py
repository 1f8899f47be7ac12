"""Health probes for container orchestrators: `python -m shared.stack.health worker|http URL`."""

from __future__ import annotations

import socket
import sys
import urllib.error
import urllib.request

from celery import Celery

from shared.config import load_settings


def worker_answers(broker_url: str, *, host: str, timeout: float = 3.0) -> bool:
    """Whether a Celery worker on `host` (node name `<name>@<host>`) answers a ping."""
    app = Celery("health", broker=broker_url)
    try:
        replies = app.control.ping(timeout=timeout)
    finally:
        app.close()
    return any(node.partition("@")[2] == host for reply in replies for node in reply)


def url_ok(url: str, *, timeout: float = 3.0) -> bool:
    """Whether `url` answers with a 2xx status."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError):
        return False


def main(argv: list[str]) -> int:
    """Exit 0 when healthy, 1 when not, 2 on a usage error."""
    if argv == ["worker"]:
        healthy = worker_answers(load_settings().broker_url, host=socket.gethostname())
    elif len(argv) == 2 and argv[0] == "http":
        healthy = url_ok(argv[1])
    else:
        print("usage: python -m shared.stack.health worker | http URL", file=sys.stderr)
        return 2
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
