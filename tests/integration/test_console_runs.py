"""The console's runs pages over real HTTP against real SeaweedFS, with no worker running."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import requests

from services.console import create_app
from shared.client.listing import newest_ids
from shared.config import Settings
from shared.storage import Store
from tests.console_support import ago, seed_run
from tests.integration.serve_support import running


@pytest.fixture
def console(settings: Settings, store: Store) -> Iterator[str]:
    """The console app served over HTTP on a free port; yields its base URL."""
    with running(create_app(settings, store)) as url:
        yield url


def _all_pages(url: str, **params: str) -> list[str]:
    seen: list[str] = []
    cursor = ""
    for _ in range(100):
        body = requests.get(
            f"{url}/api/runs", params={**params, "before": cursor, "limit": "7"}, timeout=30
        ).json()
        seen += [run["run_id"] for run in body["runs"]]
        if not body["next_before"]:
            return seen
        cursor = body["next_before"]
    raise AssertionError("pagination did not end")


def test_pages_walk_every_run_newest_first(console: str, store: Store) -> None:
    """Runs spread over years, days and a burst within one second all appear once, in order."""
    moments = [ago(days=700), ago(days=30), ago(days=2), ago(hours=5)]
    moments += [ago(minutes=3) + timedelta(milliseconds=i) for i in range(30)]
    ids = sorted(seed_run(store, when=moment) for moment in moments)
    assert _all_pages(console) == ids[::-1]
    assert newest_ids(store, before=ids[10], count=3) == [ids[9], ids[8], ids[7]]
    assert newest_ids(store, before=ids[0], count=3) == []

    page = requests.get(f"{console}/runs", timeout=30)
    assert page.status_code == 200
    assert page.text.index(ids[-1]) < page.text.index(ids[-2])  # newest first
    assert 'id="older"' in page.text and ids[0] not in page.text  # 25 a page


def test_filters_by_pipeline_and_state(console: str, store: Store) -> None:
    expected: dict[tuple[str, str], list[str]] = {}
    for index in range(24):
        pipeline = ("churn", "prices", "fraud")[index % 3]
        state = ("succeeded", "failed", "running", "queued")[index % 4]
        run_id = seed_run(store, when=ago(minutes=60 - index), pipeline=pipeline, state=state)
        expected.setdefault((pipeline, state), []).append(run_id)
    churn = sorted(r for (p, _), ids in expected.items() if p == "churn" for r in ids)
    assert _all_pages(console, pipeline="churn") == churn[::-1]
    failed = sorted(r for (_, s), ids in expected.items() if s == "failed" for r in ids)
    assert _all_pages(console, state="failed") == failed[::-1]
    both = _all_pages(console, pipeline="fraud", state="running")
    assert both == sorted(expected[("fraud", "running")])[::-1]

    html = requests.get(f"{console}/runs", params={"state": "failed"}, timeout=30).text
    assert html.count('class="run-row"') == len(failed) and "succeeded</span>" not in html
    bad = requests.get(f"{console}/api/runs", params={"state": "done"}, timeout=30)
    assert bad.status_code == 422 and bad.json()["field"] == "state"


def test_run_page_shows_the_failure_and_escapes_it(console: str, store: Store) -> None:
    run_id = seed_run(
        store, when=ago(minutes=1), state="failed", error="<script>alert(1)</script> is bad"
    )
    page = requests.get(f"{console}/runs/{run_id}", timeout=30)
    assert page.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt; is bad" in page.text
    assert "<script>alert(1)</script>" not in page.text
    assert "(field <code>target</code>)" in page.text and 'id="run-state">failed' in page.text
    detail = requests.get(f"{console}/api/runs/{run_id}", timeout=30).json()
    assert detail["state"] == "failed" and detail["error_field"] == "target"
    assert detail["error"].startswith("ingest: <script>")

    missing = requests.get(f"{console}/runs/01ARZ3NDEKTSV4RRFFQ69G5FAV", timeout=30)
    assert missing.status_code == 404
    assert requests.get(f"{console}/api/runs/nope", timeout=30).json()["error"]


def test_regression_report_draws_points_and_residuals(console: str, store: Store) -> None:
    run_id = seed_run(store, when=ago(minutes=2))
    report = {
        "metrics": {"rmse": 50.0, "mae": 40.0, "r2": 0.5, "rows": 3},
        "champion_version": 1,
        "champion_metrics": {"rmse": 55.0, "mae": 41.0, "r2": 0.4, "rows": 3},
        "gate": {"passed": True, "reason": "candidate rmse 50 beats production 55"},
        "test_rows": 3,
        "plots": {
            "points": {"actual": [100.0, 150.0, 200.0], "predicted": [110.0, 140.0, 230.0]},
            "importance": {
                "method": "permutation",
                "scoring": "r2",
                "features": [{"name": "bmi", "mean": 0.3, "std": 0.01}],
                "rows": 3,
            },
            "sample": {"test_rows": 3, "plot_rows": 3, "importance_rows": 3},
        },
    }
    store.put_json(f"runs/{run_id}/evaluate/report.json", report)
    earlier = seed_run(store, when=ago(minutes=9))
    status = store.get_json(f"runs/{run_id}/preprocess/status.json")
    store.put_json(f"runs/{run_id}/preprocess/status.json", {**status, "cached_from": earlier})
    page = requests.get(f"{console}/runs/{run_id}", timeout=30).text
    assert '<span class="tl-state state-text-cached">cached</span>' in page
    assert f'reused the result of run <a href="/runs/{earlier}">' in page
    for title in ("Predicted vs actual", "Residuals", "Feature importance"):
        assert f"<figcaption>{title}</figcaption>" in page
    assert page.count('class="dot"') == 6 and "ROC curve" not in page
    assert '<td class="num better">50.0000</td>' in page  # lower rmse is better
    assert "Production v1" in page and "drop in r2 when the column is shuffled" in page
    assert "Plots drawn from 3 of the 3 test rows, feature importance from 3" in page


def test_the_report_says_how_many_test_rows_its_plots_were_drawn_from(
    console: str, store: Store
) -> None:
    run_id = seed_run(store, when=ago(minutes=2))
    report = {
        "metrics": {"accuracy": 0.9, "rows": 40000},
        "gate": {"passed": True, "reason": "no production model yet"},
        "test_rows": 40000,
        "plots": {
            "roc": [],
            "pr": [],
            "importance": {
                "method": "permutation",
                "scoring": "accuracy",
                "features": [{"name": "tenure", "mean": 0.1, "std": 0.01}],
            },
            "sample": {"test_rows": 40000, "plot_rows": 5000, "importance_rows": 1000},
        },
    }
    store.put_json(f"runs/{run_id}/evaluate/report.json", report)
    page = requests.get(f"{console}/runs/{run_id}", timeout=30).text
    assert (
        '<p class="muted" id="plot-sample">Plots drawn from 5000 of the 40000 test rows, '
        "feature importance from 1000 (seeded samples); the metrics above use every test row."
        "</p>"
    ) in page
    del report["plots"]["sample"]  # a report written before reports stated their samples
    store.put_json(f"runs/{run_id}/evaluate/report.json", report)
    assert 'id="plot-sample"' not in requests.get(f"{console}/runs/{run_id}", timeout=30).text
