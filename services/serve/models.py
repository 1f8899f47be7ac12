"""The models a replica serves: loaded, verified and warmed, then swapped in whole.

Each serving worker follows the alias moves that deploy and the console announce on the broker
(shared/wake.py), and polls the production aliases on its own as the fallback, so one worker may
load a model before another. A worker asked for a pipeline it lacks, or for a version other than
the one it holds, reads that pipeline's alias at once and loads what it names before answering: a
model that one worker reports served answers on every worker (and on every replica), with no
bucket call per request once loaded. Such look-ups happen at most once a RECHECK_SECONDS per
pipeline, so a flood of requests for an unknown pipeline costs one bucket read a second, not one
per request. A request that names no version gets the version this worker holds, which while the
new one loads (up to a poll interval when the announcement was lost) may be the previous one;
every answer names its version (X-Model-Version), and a request that names the new version gets it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from shared.columns import CompiledSignature
from shared.errors import CauceError, DataError, NotFound, RequestError, TransientError
from shared.ids import now
from shared.messages import AliasMoved
from shared.registry import get_alias, list_pipelines, version_record
from shared.runtime import Scorer, class_labels, load_scorer
from shared.storage import Store, check_name
from shared.wake import listen_for_aliases

log = logging.getLogger(__name__)

RECHECK_SECONDS = 1.0  # how often a worker may read one pipeline's alias on demand
LOOKED_UP_LIMIT = 1024  # pipeline names remembered; forgotten all at once past this

Loader = Callable[[bytes], Any]


@dataclass(frozen=True)
class LoadedModel:
    """One pipeline's production model as a replica holds it; never changed once built."""

    pipeline: str
    version: int
    record: MappingProxyType[str, Any]
    scorer: Scorer
    signature: tuple[dict[str, str], ...]
    inputs: CompiledSignature
    labels: list[str]
    load_seconds: float = 0.0
    loaded: str = field(default_factory=now)

    @property
    def task(self) -> str:
        """classification or regression."""
        return str(self.record.get("task", "regression"))

    @property
    def columns(self) -> list[str]:
        """The input column names, in signature order."""
        return list(self.inputs.names)


def build_model(
    store: Store,
    pipeline: str,
    version: int,
    loader: Loader,
    *,
    signing_key: bytes,
    onnx: bool = True,
) -> LoadedModel:
    """Load a version (signed manifest checked), compile its signature and warm it."""
    started = time.perf_counter()
    record = version_record(store, pipeline, version)
    signature = tuple(dict(spec) for spec in record["signature"]["inputs"])
    scorer = load_scorer(store, record, loader=loader, onnx=onnx, signing_key=signing_key)
    model = LoadedModel(
        pipeline,
        version,
        MappingProxyType(dict(record)),
        scorer,
        signature,
        CompiledSignature.compile(signature, ignored=[str(record.get("target") or "")]),
        class_labels(record, scorer),
    )
    warm(model)
    return replace(model, load_seconds=time.perf_counter() - started)


def warm(model: LoadedModel) -> None:
    """Score one all-missing row (or, if the model refuses gaps, one row of zeros)."""
    try:
        model.scorer.score(model.inputs.check(model.inputs.blank(missing=True)))
    except RequestError:
        log.info(
            "model %s v%s refuses missing values; warming with zeros", model.pipeline, model.version
        )
        model.scorer.score(model.inputs.check(model.inputs.blank(missing=False)))


class ModelCache:
    """Thread-safe map of pipeline -> LoadedModel, refreshed from the production aliases."""

    def __init__(
        self, store: Store, *, loader: Loader, signing_key: bytes, onnx: bool = True
    ) -> None:
        self.store = store
        self.loader = loader
        self.signing_key = signing_key
        self.onnx = onnx
        self._models: dict[str, LoadedModel] = {}  # replaced whole, never mutated in place
        self._deployed: frozenset[str] = frozenset()
        self._reached = False
        self._reachable = True  # whether the last look at the registry reached it
        self._looked_up: dict[str, float] = {}  # pipeline -> when this worker last read its alias
        self._listed = -RECHECK_SECONDS  # when a worker serving nothing last read every alias
        self._errors: dict[str, str] = {}
        self._broken: dict[str, int] = {}  # versions that failed for good: not retried each poll
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener: threading.Thread | None = None

    def get(self, pipeline: str, version: str | None = None) -> LoadedModel:
        """The model serving `pipeline`, looked up in the registry first when this worker lacks
        it or holds another version than the one named; NotFound when none is deployed."""
        model = self._models.get(pipeline)
        if model is None or (version is not None and version != str(model.version)):
            model = self._catch_up(pipeline) or model
        if model is None:
            raise NotFound(pipeline)
        return model

    def deployed(self) -> list[str]:
        """The pipelines this worker serves; one serving none reads the registry first (at most
        once a RECHECK_SECONDS), so a first deploy answers here as soon as on any worker."""
        started = time.monotonic()
        if not self._models and self._reachable and started - self._listed >= RECHECK_SECONDS:
            self._listed = started
            self.refresh()
        return list(self._models)

    def models(self) -> dict[str, LoadedModel]:
        """A consistent snapshot of every loaded model."""
        return dict(self._models)

    def listed(self) -> dict[str, LoadedModel]:
        """Every deployed model, for a listing: the registry is read first (at most once a
        RECHECK_SECONDS), so every worker lists a model as soon as any worker serves it."""
        started = time.monotonic()
        if self._reachable and started - self._listed >= RECHECK_SECONDS:
            self._listed = started
            self.refresh()
        return self.models()

    def status(self) -> dict[str, Any]:
        """Readiness: the registry was reached and every deployed pipeline has its model."""
        models, deployed = self._models, self._deployed
        missing = sorted(deployed - set(models))
        return {
            "ready": self._reached and not missing,
            "registry_reached": self._reached,
            "models": {name: model.version for name, model in sorted(models.items())},
            "missing": missing,
            "errors": dict(self._errors),
        }

    def refresh(self) -> dict[str, int]:
        """Load each production version not loaded yet; on error keep the old model."""
        with self._refresh_lock:
            try:
                wanted = self._wanted(held=self._models)
            except CauceError as exc:
                log.warning("model refresh could not read the registry: %s", exc)
                self._reachable = False
                return {name: model.version for name, model in self._models.items()}
            current = self._models
            updated = {name: model for name, model in current.items() if name in wanted}
            for pipeline, version in wanted.items():
                stale = pipeline not in current or current[pipeline].version != version
                if stale and self._broken.get(pipeline) != version:
                    loaded = self._load(pipeline, version)
                    if loaded is not None:
                        updated[pipeline] = loaded
            self._models = updated  # one reference swap: readers see the old map or the new
            self._deployed, self._reached, self._reachable = frozenset(wanted), True, True
            return {name: model.version for name, model in updated.items()}

    def _catch_up(self, pipeline: str) -> LoadedModel | None:
        """Load the version `pipeline`'s alias names if this worker does not hold it; None when
        the alias was read too recently, the registry is out of reach or it names nothing."""
        if not self._reachable or self._fresh(pipeline) or not _valid(pipeline):
            return None
        with self._refresh_lock:  # the poller may be loading this very model: wait for it
            if self._fresh(pipeline):
                return self._models.get(pipeline)
            return self._follow(pipeline)

    def moved(self, message: AliasMoved) -> None:
        """An alias move was announced (shared/wake.py): read that pipeline's alias now and load
        what it names. The alias in the bucket decides, not the message."""
        if message.alias != "production":
            return
        with self._refresh_lock:
            self._follow(message.pipeline)

    def _follow(self, pipeline: str) -> LoadedModel | None:
        """Read `pipeline`'s alias and load the version it names if this worker lacks it (the
        caller holds the refresh lock)."""
        if len(self._looked_up) >= LOOKED_UP_LIMIT:
            self._looked_up = {}
        self._looked_up[pipeline] = time.monotonic()
        try:
            pointer = get_alias(self.store, pipeline, "production")
        except CauceError as exc:  # the poller says when the registry is back
            log.warning("could not read the production alias of %s: %s", pipeline, exc)
            self._reachable = False
            return None
        current = self._models.get(pipeline)
        if pointer is None:
            return current
        version = int(pointer["version"])
        if current is not None and current.version == version:
            return current
        if self._broken.get(pipeline) == version:
            return current
        loaded = self._load(pipeline, version)
        if loaded is not None:
            self._models = {**self._models, pipeline: loaded}  # one reference swap
        return loaded or current

    def _fresh(self, pipeline: str) -> bool:
        """Whether this worker read `pipeline`'s alias on demand within RECHECK_SECONDS."""
        last = self._looked_up.get(pipeline)
        return last is not None and time.monotonic() - last < RECHECK_SECONDS

    def _wanted(self, held: dict[str, LoadedModel]) -> dict[str, int]:
        """Each pipeline's production version, read from its alias. A pipeline this worker
        `held` but the listing left out is looked up by name: a listing can miss a pipeline
        whose first objects were written a moment ago, and dropping its model for that
        answered 404s until the next poll."""
        wanted: dict[str, int] = {}
        for pipeline in {*list_pipelines(self.store), *held}:
            pointer = get_alias(self.store, pipeline, "production")
            if pointer is not None:
                wanted[pipeline] = int(pointer["version"])
        return wanted

    def _load(self, pipeline: str, version: int) -> LoadedModel | None:
        try:
            model = build_model(
                self.store,
                pipeline,
                version,
                self.loader,
                signing_key=self.signing_key,
                onnx=self.onnx,
            )
        except Exception as exc:  # a broken version must never take down the serving one
            log.exception(
                "could not load model %s v%s; the previous model keeps serving", pipeline, version
            )
            self._errors = {**self._errors, pipeline: f"v{version}: {exc}"}
            if not isinstance(exc, TransientError):
                self._broken[pipeline] = version
            return None
        self._errors = {k: v for k, v in self._errors.items() if k != pipeline}
        log.info("serving model %s v%s", pipeline, version)
        return model

    def start(self, interval: float) -> None:
        """Refresh now and then every `interval` seconds on a daemon thread."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._poll, args=(interval,), name="cauce-model-poller", daemon=True
        )
        self._thread.start()

    def listen(self, broker_url: str) -> None:
        """Follow alias moves as they are announced on the broker, on a daemon thread; on each
        (re)connection every alias is read again, for moves announced while it was away."""
        if self._listener is not None:
            return
        self._listener = threading.Thread(
            target=listen_for_aliases,
            args=(broker_url, self.moved, self._stop),
            kwargs={"on_connect": self._reconnected},
            name="cauce-alias-listener",
            daemon=True,
        )
        self._listener.start()

    def _reconnected(self) -> None:
        try:
            self.refresh()
        except Exception:  # the poller tries again
            log.exception("model refresh after subscribing failed")

    def stop(self) -> None:
        """Stop the poller and the listener (tests; daemon threads otherwise end with the
        process)."""
        self._stop.set()
        for thread in (self._thread, self._listener):
            if thread is not None:
                thread.join(timeout=10)
        self._thread = self._listener = None

    def _poll(self, interval: float) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:  # keep polling whatever happened this round
                log.exception("model refresh failed")
            self._stop.wait(interval)


def _valid(pipeline: str) -> bool:
    """Whether `pipeline` could name a pipeline at all (no bucket read for one that cannot)."""
    try:
        check_name(pipeline)
    except DataError:
        return False
    return True
