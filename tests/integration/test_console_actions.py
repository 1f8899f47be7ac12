"""The console's actions over real HTTP: rollback with confirmation, spec editing, uploads."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import yaml

from services.console import create_app
from shared.config import Settings
from shared.registry import alias_history, get_alias
from shared.storage import Store
from tests.integration.serve_support import deploy, fit_iris, iris_frame, running


@pytest.fixture
def console(settings: Settings, store: Store) -> Iterator[str]:
    """The console app served over HTTP on a free port; yields its base URL."""
    with running(create_app(settings, store)) as url:
        yield url


def _production(store: Store) -> int | None:
    pointer = get_alias(store, "iris")
    return None if pointer is None else int(pointer["version"])


def _two_versions(store: Store) -> None:
    X = iris_frame()[0]
    for index, kind in enumerate(("logistic", "tree"), start=1):
        deploy(
            store,
            "iris",
            fit_iris(kind),
            X,
            task="classification",
            target="species",
            run_id=f"run-{index}",
        )


def test_rollback_asks_first_then_moves_production(console: str, store: Store) -> None:
    _two_versions(store)
    page = requests.get(f"{console}/models", timeout=30).text
    assert "production → <strong>v2</strong>" in page and "Make production…" in page
    one = requests.get(f"{console}/models/iris", timeout=30)
    assert one.status_code == 200 and "production → <strong>v2</strong>" in one.text
    assert "production history (2 moves)" in one.text
    unknown = requests.get(f"{console}/models/nosuch", timeout=30)
    assert unknown.status_code == 404 and "no models for pipeline &#39;nosuch&#39;" in unknown.text

    confirm = requests.get(f"{console}/models/iris/rollback?version=1", timeout=30)
    assert confirm.status_code == 200
    assert "Move production of iris to v1?" in confirm.text
    assert "Both versions were trained on the same data" in confirm.text
    assert _production(store) == 2  # looking changes nothing

    form = {"version": "1", "expected": "2", "reason": "v2 misroutes <b>setosa</b>"}
    foreign = requests.post(
        f"{console}/models/iris/rollback",
        data=form,
        headers={"Origin": "http://evil.example"},
        timeout=30,
    )
    assert foreign.status_code == 403 and _production(store) == 2

    moved = requests.post(
        f"{console}/models/iris/rollback",
        data=form,
        headers={"Origin": console},
        timeout=30,
    )
    assert moved.status_code == 200 and moved.history[0].status_code == 303
    assert moved.url.endswith("/models?moved=iris:1#p-iris")
    assert "production of iris now points at v1" in moved.text
    assert "production history (3 moves)" in moved.text
    assert "v2 misroutes &lt;b&gt;setosa&lt;/b&gt;" in moved.text
    assert _production(store) == 1
    assert alias_history(store, "iris")[-1]["reason"] == "v2 misroutes <b>setosa</b>"

    stale = requests.post(f"{console}/models/iris/rollback", data=form, timeout=30)
    assert stale.status_code == 409 and "moved to v1 since you looked" in stale.text

    api = requests.post(
        f"{console}/api/models/iris/aliases/production",
        json={"version": 2, "expected": 1},
        timeout=30,
    )
    assert api.status_code == 200 and api.json()["previous"] == 1
    missing = requests.post(
        f"{console}/api/models/iris/aliases/production",
        json={"version": 9, "expected": 2},
        timeout=30,
    )
    assert missing.status_code == 404 and "no version 9" in missing.json()["error"]


def test_spec_errors_show_beside_their_field(console: str, store: Store) -> None:
    store.put_bytes("pipelines/churn.yaml", b"target: churned\ncache: false\n")
    form = {"target": "churned", "split.test": "2", "metric": "f1_macro", "task": "regression"}
    page = requests.post(f"{console}/pipelines/churn/spec", data=form, timeout=30)
    assert page.status_code == 422
    assert 'data-field="split.test">split.test: Input should be less than 0.9' in page.text
    assert 'data-field="metric">metric &#39;f1_macro&#39; does not fit a regression' in page.text
    assert store.get_bytes("pipelines/churn.yaml").startswith(b"target: churned\ncache")

    form.update({"split.test": "0.25", "task": "classification", "tuning.trials": "6"})
    saved = requests.post(f"{console}/pipelines/churn/spec", data=form, timeout=30)
    assert saved.status_code == 200 and 'id="saved"' in saved.text
    spec = yaml.safe_load(store.get_bytes("pipelines/churn.yaml"))
    assert spec["split"] == {"test": 0.25} and spec["tuning"] == {"trials": 6}
    assert spec["cache"] is False  # fields the form does not show survive a save

    api = requests.put(f"{console}/api/pipelines/churn/spec", data="models: 3\n", timeout=30)
    assert api.status_code == 422 and api.json()["field"] == "models"


def test_upload_drops_the_file_where_the_watcher_looks(console: str, store: Store) -> None:
    body = iris_frame()[0].to_csv(index=False).encode()
    answer = requests.post(
        f"{console}/api/uploads",
        data={"pipeline": "iris"},
        files={"file": ("flowers.csv", body)},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["key"] == "incoming/iris/flowers.csv"
    assert store.get_bytes("incoming/iris/flowers.csv") == body
    waiting = requests.get(f"{console}/start/wait", params=answer.json(), timeout=30)
    assert "waiting for the watcher" in waiting.text  # no watcher in this test

    bad = requests.post(
        f"{console}/start",
        data={"pipeline": "../etc"},
        files={"file": ("x.csv", body)},
        timeout=30,
    )
    assert bad.status_code == 422 and "pipeline name &#39;../etc&#39; is not allowed" in bad.text
