"""The prediction routes, answered straight from WSGI: MLflow's `POST /invocations[/<pipeline>]`
and Open Inference Protocol v2's `POST /v2/models/<pipeline>[/versions/<version>]/infer`.

Everything else (metadata, health, metrics, listings) goes on to the Flask app. Flask's request
context, routing, hooks and response objects cost about as much CPU as parsing, checking and
scoring one row together (docs/benchmarks.md, "Where a request's time goes"), so the one path
that carries load skips them. It keeps the app's contract, written once in answers.py: the
same bearer-token check, the same `{"error", "field"}` bodies and status codes,
`X-Model-Name`/`X-Model-Version` on every answer about a model, and every answer counted in
/metrics.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

import orjson

from services.serve import answers, v2
from services.serve import predict as scoring
from services.serve.capture import PredictionLog
from services.serve.metrics import ServeMetrics
from services.serve.models import LoadedModel, ModelCache
from shared.columns import Columns
from shared.errors import NotFound, RequestError

PIPELINE_HEADER = "X-Cauce-Pipeline"
# A body left unread on a kept-alive connection (a 413, or an answer given before the body was
# needed) is read and dropped up to this many bytes, so that the client's next request on the
# connection is answered; a longer one gets `Connection: close` instead.
DRAIN_BYTES = 8 << 20
BODY_READ = "cauce.body_read"  # environ key: how many body bytes _body took from wsgi.input
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def pick(
    cache: ModelCache, pipeline: str, *, field: str = "pipeline", version: str | None = None
) -> LoadedModel:
    """The loaded model of `pipeline` (`version` looked for first when named); a 404 naming
    what is deployed when there is none."""
    try:
        return cache.get(pipeline, version)
    except NotFound:
        known = ", ".join(cache.models()) or "none yet"
        raise RequestError(
            f"no model is deployed for pipeline {pipeline!r} (deployed: {known})",
            field=field,
            status=404,
        ) from None


def pinned(cache: ModelCache, pipeline: str, version: str | None) -> LoadedModel:
    """The model of `pipeline`, which must be `version` when one is named."""
    model = pick(cache, pipeline, version=version)
    if version is not None and version != str(model.version):
        raise RequestError(
            f"pipeline {pipeline!r} serves version {model.version}, not {version}",
            field="version",
            status=404,
        )
    return model


def _drained(environ: dict[str, Any]) -> bool:
    """Whether what is left of the request body was read to its end (at most DRAIN_BYTES).

    With a Content-Length, only the bytes not read yet are read: a server that hands over the
    raw socket (Werkzeug's) would otherwise wait for bytes the client never sends.
    """
    length = str(environ.get("CONTENT_LENGTH") or "")
    if length and not length.isdigit():
        return False
    left = int(length) - environ.get(BODY_READ, 0) if length else None
    if left is not None and left > DRAIN_BYTES:
        return False
    budget = DRAIN_BYTES if left is None else left
    while budget > 0:
        chunk = environ["wsgi.input"].read(min(budget, 1 << 16))
        if not chunk:
            return True
        budget -= len(chunk)
    return left is not None


def _route(path: str) -> tuple[str, str | None, str | None] | None:
    """("mlflow", pipeline or None, None) or ("v2", pipeline, version or None); None otherwise."""
    if path == "/invocations":
        return "mlflow", None, None
    parts = path.split("/")
    if len(parts) == 3 and parts[1] == "invocations" and parts[2]:
        return "mlflow", parts[2], None
    if len(parts) in (5, 7) and parts[1:3] == ["v2", "models"] and parts[-1] == "infer":
        if parts[3] and len(parts) == 5:
            return "v2", parts[3], None
        if parts[3] and parts[4] == "versions" and parts[5]:
            return "v2", parts[3], parts[5]
    return None


class Predictions:
    """WSGI middleware: prediction requests answered here, anything else passed to `app`."""

    def __init__(
        self,
        app: WSGIApp,
        cache: ModelCache,
        metrics: ServeMetrics,
        *,
        token: bytes | None,
        max_bytes: int,
        log: PredictionLog | None = None,
    ) -> None:
        self.app = app
        self.log = log
        self.cache = cache
        self.metrics = metrics
        self.token = token
        self.max_bytes = max_bytes

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        # PATH_INFO holds the path's UTF-8 bytes as latin-1 text (PEP 3333)
        path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
        route = _route(path)
        if route is None:
            return self.app(environ, start_response)
        started = time.perf_counter()
        model: LoadedModel | None = None
        extra: list[tuple[str, str]] = []
        request_id = _request_id(environ)
        try:
            if environ.get("REQUEST_METHOD") != "POST":
                extra.append(("Allow", "POST"))
                raise RequestError(
                    f"{path} takes POST, not {environ.get('REQUEST_METHOD')}",
                    field="method",
                    status=405,
                )
            answers.check_token(environ.get("HTTP_AUTHORIZATION", ""), self.token)
            kind, pipeline, version = route
            if kind == "mlflow":
                model = self._mlflow_model(environ, pipeline)
                body = self._body(environ)
                status, answer = 200, self._mlflow(environ, model, body, request_id)
            else:
                assert pipeline is not None
                model = pinned(self.cache, pipeline, version)
                body = self._body(environ)
                status, answer = 200, self._infer(environ, model, body, request_id)
                request_id = answer["id"]
        except Exception as exc:
            method = str(environ.get("REQUEST_METHOD"))
            status, answer = answers.outcome(
                exc, max_bytes=self.max_bytes, method=method, path=path
            )
        data = orjson.dumps(answer)
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        headers += answers.model_headers(model, status)
        headers.append(("X-Request-Id", request_id))
        if environ.get("REQUEST_METHOD") == "POST":
            answers.count(self.metrics, model, status, started)
        if status != 200 and not _drained(environ):
            extra.append(("Connection", "close"))
        start_response(f"{status} {HTTPStatus(status).phrase}", headers + extra)
        return [data]

    def _body(self, environ: dict[str, Any]) -> bytes:
        """The whole body, its Content-Encoding undone, refused with 413 when it is larger than
        the configured limit."""
        encoding = str(environ.get("HTTP_CONTENT_ENCODING", ""))
        length = environ.get("CONTENT_LENGTH") or ""
        stream = environ["wsgi.input"]
        if length:
            if not length.isdigit():
                raise RequestError("Content-Length must be a number of bytes", field="body")
            if int(length) > self.max_bytes:
                raise answers.too_big(self.max_bytes)
            body = bytes(stream.read(int(length)))
            environ[BODY_READ] = len(body)
        else:
            body = bytes(stream.read(self.max_bytes + 1))  # chunked: no length said up front
            if len(body) > self.max_bytes:
                raise answers.too_big(self.max_bytes)
        return scoring.decode_body(body, encoding, max_bytes=self.max_bytes)

    def _mlflow_model(self, environ: dict[str, Any], pipeline: str | None) -> LoadedModel:
        """The pipeline named in the path, else by the header, else the only one deployed."""
        if pipeline is not None:
            return pick(self.cache, pipeline)
        named = environ.get("HTTP_X_CAUCE_PIPELINE")
        if named:
            return pick(self.cache, named, field=PIPELINE_HEADER)
        deployed = self.cache.deployed()
        if len(deployed) == 1:
            return pick(self.cache, deployed[0])
        raise RequestError(
            f"{len(deployed)} pipelines are deployed ({', '.join(deployed) or 'none'}); name one "
            f"with the {PIPELINE_HEADER} header or POST to /invocations/<pipeline>",
            field=PIPELINE_HEADER,
            status=404 if not deployed else 400,
        )

    def _mlflow(
        self, environ: dict[str, Any], model: LoadedModel, body: bytes, request_id: str
    ) -> dict[str, Any]:
        """Predictions, probabilities for classifiers, the model that answered and the id the
        prediction log knows the request by."""
        if _mimetype(environ) == "text/csv":
            raw = scoring.read_csv(body, model.columns, model.inputs.ignored)
        else:
            raw = scoring.parse_mlflow(_json(environ, body), model.columns, model.inputs.ignored)
        answer = self._score(model, raw, request_id)
        return {
            **answer,
            "model": {"name": model.pipeline, "version": model.version},
            "request_id": request_id,
        }

    def _infer(
        self, environ: dict[str, Any], model: LoadedModel, body: bytes, request_id: str
    ) -> dict[str, Any]:
        """Open Inference Protocol v2 inference; the request's own id, when it gives one, is
        the one logged and answered."""
        payload = _json(environ, body)
        request_id = v2.request_id(payload) or request_id
        answer = self._score(model, v2.parse_infer(payload, model.columns), request_id)
        return v2.infer_response(
            answer,
            classes=model.labels,
            name=model.pipeline,
            version=model.version,
            request_id=request_id,
        )

    def _score(self, model: LoadedModel, raw: Columns, request_id: str) -> dict[str, Any]:
        """Check the columns against the compiled signature, score them, and offer the request
        to the prediction log."""
        answer = scoring.answer(model.scorer.score(model.inputs.check(raw)), model.labels)
        if self.log is not None:
            self.log.offer(
                model.record,
                pipeline=model.pipeline,
                version=model.version,
                request_id=request_id,
                inputs=raw,
                predictions=answer["predictions"],
            )
        return answer


def _mimetype(environ: dict[str, Any]) -> str:
    return str(environ.get("CONTENT_TYPE", "")).split(";", 1)[0].strip().lower()


def _json(environ: dict[str, Any], body: bytes) -> Any:
    kind = _mimetype(environ)
    if kind and kind != "application/json" and not kind.endswith("+json"):
        raise RequestError(
            f"Content-Type {kind!r} is not supported; send application/json",
            field="Content-Type",
            status=415,
        )
    return scoring.decode_json(body)


def _request_id(environ: dict[str, Any]) -> str:
    """The client's X-Request-Id when it is a plain token of at most 128 characters, else a new
    one."""
    given = str(environ.get("HTTP_X_REQUEST_ID", ""))
    if 0 < len(given) <= 128 and given.isascii() and given.isprintable() and " " not in given:
        return given
    return uuid.uuid4().hex
