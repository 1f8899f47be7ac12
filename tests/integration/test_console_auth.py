"""With CAUCE_API_TOKEN set, the console asks for it: a bearer header, or a sign-in cookie."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from pydantic import SecretStr

from services.console import create_app
from shared.config import Settings
from shared.storage import Store
from tests.integration.serve_support import running

TOKEN = "console-test-token"


@pytest.fixture
def console(settings: Settings, store: Store) -> Iterator[str]:
    protected = settings.model_copy(update={"api_token": SecretStr(TOKEN)})
    with running(create_app(protected, store)) as url:
        yield url


def test_without_the_token_pages_ask_to_sign_in_and_the_api_refuses(console: str) -> None:
    page = requests.get(f"{console}/runs", allow_redirects=False, timeout=10)
    assert page.status_code == 302 and "/login" in page.headers["Location"]
    api = requests.get(f"{console}/api/runs", timeout=10)
    assert api.status_code == 401 and api.json()["field"] == "Authorization"
    wrong = requests.get(
        f"{console}/api/runs", headers={"Authorization": "Bearer nope"}, timeout=10
    )
    assert wrong.status_code == 401
    assert requests.get(f"{console}/api/health", timeout=10).status_code == 200


def test_the_bearer_token_or_a_sign_in_opens_it(console: str) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert requests.get(f"{console}/api/runs", headers=headers, timeout=10).status_code == 200
    browser = requests.Session()
    refused = browser.post(f"{console}/login", data={"token": "guess", "next": "/runs"}, timeout=10)
    assert refused.status_code == 401 and "not right" in refused.text
    signed_in = browser.post(f"{console}/login", data={"token": TOKEN, "next": "/runs"}, timeout=10)
    assert signed_in.status_code == 200 and signed_in.url.endswith("/runs")
    assert browser.cookies.get("cauce_token") == TOKEN
    away = browser.post(
        f"{console}/login",
        data={"token": TOKEN, "next": "//evil.example/"},
        allow_redirects=False,
        timeout=10,
    )
    assert away.headers["Location"] == "/"
