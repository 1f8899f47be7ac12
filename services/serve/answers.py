"""How the prediction service answers, written once for the WSGI fast path (invoke.py) and the
Flask app (handlers.py): the bearer-token check, the status and `{"error", "field"}` body of
each kind of error, the headers that name the model, and the count in /metrics."""

from __future__ import annotations

import hmac
import logging
import time
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException

from shared.errors import DataError, RequestError

if TYPE_CHECKING:
    from services.serve.metrics import ServeMetrics
    from services.serve.models import LoadedModel

log = logging.getLogger(__name__)

TOKEN_MESSAGE = (
    "this service needs 'Authorization: Bearer <token>' with the token set in CAUCE_API_TOKEN"
)


def check_token(header: str, token: bytes | None) -> None:
    """Refuse (401) an Authorization header without `Bearer <token>`, compared in constant time;
    with no token set every request passes."""
    if token is None:
        return
    scheme, _, given = header.partition(" ")
    if not (scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token)):
        raise RequestError(TOKEN_MESSAGE, field="Authorization", status=401)


def too_big(max_bytes: int) -> RequestError:
    """The 413 for a request body over the configured limit."""
    return RequestError(
        f"the request body is larger than {max_bytes} bytes", field="body", status=413
    )


def outcome(
    exc: Exception, *, max_bytes: int, method: str, path: str
) -> tuple[int, dict[str, Any]]:
    """The status and JSON body that answer `exc`; a bug is logged and answered without details."""
    if isinstance(exc, HTTPException) and exc.code == 413:
        exc = too_big(max_bytes)
    if isinstance(exc, RequestError):
        return exc.status, {"error": str(exc), "field": exc.field}
    if isinstance(exc, DataError):
        return 422, {"error": str(exc), "field": exc.field}
    if isinstance(exc, HTTPException):
        return exc.code or 500, {"error": exc.description or exc.name, "field": None}
    log.error("unexpected error serving %s %s", method, path, exc_info=exc)
    return 500, {"error": f"internal error: {type(exc).__name__}", "field": None}


def model_headers(model: LoadedModel | None, status: int) -> list[tuple[str, str]]:
    """Every answer about a model (errors included) names the version that gave it; a 401 says
    how to authenticate."""
    headers = []
    if model is not None:
        headers += [("X-Model-Version", str(model.version)), ("X-Model-Name", model.pipeline)]
    if status == 401:
        headers.append(("WWW-Authenticate", 'Bearer realm="cauce"'))
    return headers


def count(metrics: ServeMetrics, model: LoadedModel | None, status: int, started: float) -> None:
    """Count one answered POST in /metrics, under the model that answered (or none)."""
    pipeline, version = (model.pipeline, str(model.version)) if model else ("", "")
    metrics.observe(pipeline, version, status, time.perf_counter() - started)
