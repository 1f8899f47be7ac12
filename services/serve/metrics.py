"""Prometheus metrics of the prediction service, per model and version.

Counters and the latency histogram live in a registry of the app's own (so two apps in one
process do not mix); under granian with PROMETHEUS_MULTIPROC_DIR set (`python -m services.serve`
sets a fresh one per start), every worker's counts are summed. What a worker serves right now is
read from its model cache.

granian has no hook like gunicorn's child_exit to call multiprocess.mark_process_dead when a
worker dies, so nothing is ever dropped from that directory: a dead worker's counts stay in the
sums (right for counters: totals never go down) and its respawned successor adds its own file.
That is why every gauge here is read at scrape time from the answering worker (ModelsCollector)
rather than written to the directory. A gauge added to the multiprocess registry should use
multiprocess_mode="mostrecent": "all", "sum", "max" and "min" keep a dead worker's last value,
and the "live*" modes rely on mark_process_dead.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from services.serve.models import ModelCache
from shared.errors import NotFound, TransientError
from shared.layout import LATEST, drift_key, live_key
from shared.storage import Store

LABELS = ("pipeline", "version")
# Most answers take a millisecond or two; the upper buckets catch slow batches and stalls.
BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class ModelsCollector(Collector):
    """The models this process serves: version, runtime, load time, readiness."""

    def __init__(self, cache: ModelCache) -> None:
        self.cache = cache

    def collect(self) -> Iterator[Metric]:
        """One sample per loaded model, read at scrape time."""
        models = sorted(self.cache.models().items())
        version = GaugeMetricFamily(
            "cauce_serve_model_version", "The production version served.", labels=["pipeline"]
        )
        info = GaugeMetricFamily(
            "cauce_serve_model_info",
            "1 for each model served, with its version and runtime (onnx or skops).",
            labels=["pipeline", "version", "runtime"],
        )
        load = GaugeMetricFamily(
            "cauce_serve_model_load_seconds",
            "Seconds to fetch, verify, load and warm the model served.",
            labels=list(LABELS),
        )
        for name, model in models:
            version.add_metric([name], model.version)
            info.add_metric([name, str(model.version), model.scorer.runtime], 1)
            load.add_metric([name, str(model.version)], model.load_seconds)
        ready = GaugeMetricFamily("cauce_serve_ready", "1 once every production model is loaded.")
        ready.add_metric([], 1 if self.cache.status()["ready"] else 0)
        yield from (version, info, load, ready)


class LatestReports(Collector):
    """The latest monitoring report of each pipeline served, read from the bucket at scrape time
    at most once a minute; a subclass names the report and turns it into samples."""

    def __init__(self, cache: ModelCache, store: Store, *, every: float = 60.0) -> None:
        self.cache, self.store, self.every = cache, store, every
        self._reports: dict[str, dict] = {}
        self._read = float("-inf")

    def key(self, pipeline: str) -> str:
        """The key of a pipeline's latest report."""
        raise NotImplementedError

    def samples(self, reports: dict[str, dict]) -> Iterator[Metric]:
        """The metric families of the reports, by pipeline."""
        raise NotImplementedError

    def collect(self) -> Iterator[Metric]:
        """The samples of the latest reports, read again when a minute has passed."""
        if time.monotonic() - self._read >= self.every:
            self._reports = {name: r for name in self.cache.models() if (r := self._latest(name))}
            self._read = time.monotonic()
        yield from self.samples(self._reports)

    def _latest(self, pipeline: str) -> dict | None:
        try:
            return dict(self.store.get_json(self.key(pipeline)))
        except (NotFound, TransientError):
            return None


class DriftCollector(LatestReports):
    """The latest drift report of each pipeline served (services/watcher/monitor.py)."""

    def key(self, pipeline: str) -> str:
        """The latest drift report."""
        return drift_key(pipeline, LATEST)

    def samples(self, reports: dict[str, dict]) -> Iterator[Metric]:
        """One sample per pipeline, version and feature of the latest reports."""
        gauge = GaugeMetricFamily(
            "cauce_feature_drift",
            "Population stability index of a feature (or the predictions) of the requests a "
            "version answered, against its training data, in the latest drift report.",
            labels=["pipeline", "version", "feature"],
        )
        for pipeline, report in sorted(reports.items()):
            for version, entry in report.get("versions", {}).items():
                for feature, value in entry.get("drift", {}).items():
                    gauge.add_metric([pipeline, version, feature], value)
        yield gauge


class LiveCollector(LatestReports):
    """The latest live-metric report of each pipeline served (services/watcher/live.py)."""

    def key(self, pipeline: str) -> str:
        """The latest live-metric report."""
        return live_key(pipeline, LATEST)

    def samples(self, reports: dict[str, dict]) -> Iterator[Metric]:
        """One sample per pipeline, version and metric available, and the rows labelled."""
        gauge = GaugeMetricFamily(
            "cauce_live_metric",
            "A version's metric on the logged requests that got ground truth, in the latest "
            "live-metric report (the test split's value is in the model's metadata).",
            labels=["pipeline", "version", "metric"],
        )
        rows = GaugeMetricFamily(
            "cauce_live_labelled_rows",
            "Logged rows with ground truth behind a version's live metrics.",
            labels=list(LABELS),
        )
        for pipeline, report in sorted(reports.items()):
            for version, entry in report.get("versions", {}).items():
                rows.add_metric([pipeline, version], entry.get("rows", 0))
                for metric, value in (entry.get("live") or {}).items():
                    if value is not None:
                        gauge.add_metric([pipeline, version, metric], value)
        yield from (gauge, rows)


class ServeMetrics:
    """The service's request metrics and their exposition."""

    def __init__(self, cache: ModelCache, store: Store | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.models = ModelsCollector(cache)
        self.reports = (
            [DriftCollector(cache, store), LiveCollector(cache, store)] if store is not None else []
        )
        self.requests = Counter(
            "cauce_serve_requests",
            "Prediction requests answered, by model, version and HTTP status.",
            [*LABELS, "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "cauce_serve_errors",
            "Prediction requests answered with an error (4xx or 5xx).",
            [*LABELS, "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "cauce_serve_request_seconds",
            "Seconds from request to response, by model and version.",
            list(LABELS),
            buckets=BUCKETS,
            registry=self.registry,
        )

        self.logged = Counter(
            "cauce_prediction_log_rows",
            "Rows of sampled requests the prediction log wrote, or dropped (queue full, store "
            "error), by pipeline.",
            ["pipeline", "outcome"],
            registry=self.registry,
        )

    def log_rows(self, pipeline: str, outcome: str, rows: int) -> None:
        """Count rows the prediction log wrote or dropped."""
        self.logged.labels(pipeline, outcome).inc(rows)

    def observe(self, pipeline: str, version: str, status: int, seconds: float) -> None:
        """Record one answered prediction request."""
        code = str(status)
        self.requests.labels(pipeline, version, code).inc()
        if status >= 400:
            self.errors.labels(pipeline, version, code).inc()
        self.latency.labels(pipeline, version).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        registry = self.registry
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
        registry_models = CollectorRegistry()
        registry_models.register(self.models)
        for reports in self.reports:
            registry_models.register(reports)
        return generate_latest(registry) + generate_latest(registry_models), CONTENT_TYPE_LATEST
