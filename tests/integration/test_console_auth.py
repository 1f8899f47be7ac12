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


def test_a_host_name_outside_the_trusted_ones_is_refused(settings: Settings, store: Store) -> None:
    # DNS rebinding: a page of another site, its name pointed at 127.0.0.1, would otherwise be
    # same-origin with the console and could read it and post to it.
    with running(create_app(settings, store)) as url:
        rebound = {"Host": "evil.example:8081", "Origin": "http://evil.example:8081"}
        for method, path in [("GET", "/runs"), ("GET", "/api/runs"), ("POST", "/start")]:
            refused = requests.request(method, url + path, headers=rebound, timeout=10)
            assert refused.status_code == 400, (method, path, refused.text)
            assert refused.json()["field"] == "Host"
            assert "CAUCE_CONSOLE_TRUSTED_HOSTS" in refused.json()["error"]
        for host in ("127.0.0.1", "localhost:8081"):
            answered = requests.get(url + "/api/runs", headers={"Host": host}, timeout=10)
            assert answered.status_code == 200, answered.text
    named = settings.model_copy(update={"console_trusted_hosts": "console.example, .corp.example"})
    with running(create_app(named, store)) as url:
        for host in ("console.example", "cauce.corp.example:8081"):
            answered = requests.get(url + "/api/runs", headers={"Host": host}, timeout=10)
            assert answered.status_code == 200, answered.text
        assert (
            requests.get(url + "/api/runs", headers={"Host": "localhost"}, timeout=10).status_code
            == 400
        )
    anyone = settings.model_copy(update={"console_trusted_hosts": "*"})
    with running(create_app(anyone, store)) as url:
        answered = requests.get(url + "/api/runs", headers={"Host": "evil.example"}, timeout=10)
        assert answered.status_code == 200
