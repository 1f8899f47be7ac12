"""Which runtime serves each version, and why not ONNX, as `cauce models` and the console show it
(over real SeaweedFS, the installed command and the console over HTTP)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline

from services.console import create_app
from services.deploy.export import export_checked
from shared.config import Settings
from shared.layout import version_key
from shared.registry import serving_runtime
from shared.signature import input_signature
from shared.storage import Store
from tests.integration.serve_support import deploy, diabetes_xy, fit_diabetes, running
from tests.integration.test_cli_usage import cauce

# What deploy recorded for one of the tables before exports handled gaps.
PARITY_FAILED = {
    "passed": False,
    "rows": 89,
    "tolerance": 0.0001,
    "max_abs_diff": 5397.21,
    "label_agreement": 1.0,
    "file": None,
}


def _record(store: Store, version: int, **fields: Any) -> None:
    key = version_key("prices", version)
    store.put_json(key, {**store.get_json(key), **fields})


@pytest.fixture
def prices(store: Store) -> None:
    """v1 as yesterday's deploy left it (parity failed, no runtime recorded); v2 refused by the
    converter, with the runtime and reason as deploy records them now."""
    X, y = diabetes_xy()
    for run_id in ("r1", "r2"):
        deploy(store, "prices", fit_diabetes(), X, task="regression", target="y", run_id=run_id)
    _record(store, 1, onnx=PARITY_FAILED)
    one_step = Pipeline([("model", Ridge())]).fit(X, y)
    _, refused = export_checked(one_step, X, input_signature(X), classify=False)
    check = {**refused, "file": None}
    _record(store, 2, onnx=check, **serving_runtime({"onnx": check}))


def test_cauce_models_says_skops_and_why(settings: Settings, prices: None) -> None:
    shown = cauce(settings, "models", "prices", "--json")
    assert shown.returncode == 0, shown.stderr
    rows = {m["version"]: m for m in json.loads(shown.stdout)}
    assert rows[1]["runtime"] == rows[2]["runtime"] == "skops"
    assert "max_abs_diff 5397 (tolerance 0.0001 relative)" in rows[1]["runtime_reason"]
    assert rows[2]["runtime_reason"].startswith("no ONNX export: ValueError: only a two-step")
    text = cauce(settings, "models", "prices").stdout.splitlines()
    assert " skops " in text[0] and "served by skops: the ONNX export did not answer" in text[1]
    assert " skops " in text[2] and "served by skops: no ONNX export: ValueError" in text[3]


def test_the_console_shows_the_runtime_and_the_reason(
    settings: Settings, store: Store, prices: None
) -> None:
    with running(create_app(settings, store)) as console:
        page = requests.get(f"{console}/models", timeout=30).text
        api = requests.get(f"{console}/api/models/prices", timeout=30).json()
    assert page.count('<span class="runtime-skops">skops</span>') == 2
    assert "max_abs_diff 5397 (tolerance 0.0001 relative)" in page
    assert "no ONNX export: ValueError: only a two-step pipeline" in page
    assert [v["runtime"] for v in api["versions"]] == ["skops", "skops"]
    assert api["versions"][1]["runtime_reason"].startswith("the ONNX export did not answer")
