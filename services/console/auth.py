"""Optional token auth for the console: `CAUCE_API_TOKEN` as a bearer header or a login cookie."""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, current_app, redirect, render_template, request, url_for

from services.console.handlers import respond

bp = Blueprint("auth", __name__)
COOKIE = "cauce_token"
OPEN = ("/api/health", "/login")


def _token() -> bytes | None:
    secret = current_app.extensions["cauce.settings"].api_token
    return secret.get_secret_value().encode() if secret else None


def _matches(given: str, token: bytes) -> bool:
    return hmac.compare_digest(given.strip().encode(), token)


def require_token() -> Response | None:
    """Refuse a request without the token (header or cookie); pages send people to /login."""
    token = _token()
    if token is None or request.path in OPEN or request.path.startswith("/static/"):
        return None
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and _matches(given, token):
        return None
    if _matches(request.cookies.get(COOKIE, ""), token):
        return None
    if request.path.startswith("/api/"):
        return respond(
            "this console needs 'Authorization: Bearer <token>' with the token set in "
            "CAUCE_API_TOKEN",
            "Authorization",
            401,
        )
    return redirect(url_for("auth.login", next=request.full_path))  # type: ignore[return-value]


@bp.get("/login")
def login() -> str:
    """The sign-in form."""
    return render_template("login.html", next=request.args.get("next", "/"), wrong=False)


@bp.post("/login")
def sign_in() -> Response | tuple[str, int]:
    """Check the token and keep it in an HttpOnly, same-site cookie."""
    token, given = _token(), request.form.get("token", "")
    target = request.form.get("next", "/")
    if not target.startswith("/") or target.startswith("//"):
        target = "/"  # only ever back into this console
    if token is not None and not _matches(given, token):
        return render_template("login.html", next=target, wrong=True), 401
    response = redirect(target)
    response.set_cookie(COOKIE, given, httponly=True, samesite="Strict")
    return response  # type: ignore[return-value]
