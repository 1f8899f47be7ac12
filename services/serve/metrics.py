"""Request counters in Prometheus text format, kept per process (no client library needed)."""

from __future__ import annotations

import threading
from collections import Counter

from services.serve.models import ModelCache


class RequestCounter:
    """Counts answered requests by pipeline, version and HTTP status."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str, int]] = Counter()
        self._lock = threading.Lock()

    def count(self, pipeline: str, version: str, status: int) -> None:
        """Record one answer."""
        with self._lock:
            self._counts[(pipeline, version, status)] += 1

    def render(self, cache: ModelCache) -> str:
        """The counters and each loaded model's version as Prometheus exposition text."""
        with self._lock:
            counts = sorted(self._counts.items())
        lines = [
            "# HELP cauce_serve_requests_total Prediction requests answered, by model and status.",
            "# TYPE cauce_serve_requests_total counter",
        ]
        lines += [
            f'cauce_serve_requests_total{{pipeline="{p}",version="{v}",status="{s}"}} {n}'
            for (p, v, s), n in counts
        ]
        lines += [
            "# HELP cauce_serve_model_version The production version this replica serves.",
            "# TYPE cauce_serve_model_version gauge",
        ]
        lines += [
            f'cauce_serve_model_version{{pipeline="{name}"}} {model.version}'
            for name, model in sorted(cache.models().items())
        ]
        ready = 1 if cache.status()["ready"] else 0
        lines += ["# TYPE cauce_serve_ready gauge", f"cauce_serve_ready {ready}"]
        return "\n".join(lines) + "\n"
