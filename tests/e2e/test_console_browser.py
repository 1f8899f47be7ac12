"""The console in headless Chromium: edit a spec, upload a file, watch the run, read its report,
and roll the model back, against the whole stack started with `cauce up`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.datasets import cancer_frame
from tests.e2e.browser import chromium, fill, find, screenshot, wait_text
from tests.e2e.conftest import Stack, running_stack
from tests.e2e.helpers import wait_served

PIPELINE = "screening"
WEAK_MODELS = "- estimator: logistic_regression\n  search: {C: [0.00001]}\n"


def _edit_spec(browser: WebDriver, console: str, models: str) -> None:
    """Set the target and the candidates; a bad value is refused beside its field first."""
    browser.get(f"{console}/pipelines/{PIPELINE}/spec")
    fill(browser, "f-target", "diagnosis")
    fill(browser, "f-split.test", "2")
    fill(browser, "f-models", models)
    find(browser, "#save-spec").click()
    wait_text(browser, '[data-field="split.test"]', "Input should be less than 0.9")
    error = find(browser, '[data-field="split.test"]')  # the spec page is not live
    field = find(browser, "#f-split\\.test").rect
    middle = error.rect["y"] + error.rect["height"] / 2
    assert field["y"] <= middle <= field["y"] + field["height"]  # on the field's line,
    assert error.rect["x"] >= field["x"] + field["width"]  # right beside it
    fill(browser, "f-split.test", "")
    find(browser, "#save-spec").click()
    wait_text(browser, "#saved", "Saved.")


def _upload(browser: WebDriver, console: str, data: Path) -> str:
    """Upload through the start page and land on the run's page; return the run id."""
    browser.get(f"{console}/start")
    fill(browser, "pipeline", PIPELINE)
    find(browser, "#file").send_keys(str(data))
    find(browser, "#upload").click()
    WebDriverWait(browser, 60).until(lambda d: "/runs/" in d.current_url)
    return browser.current_url.rsplit("/", 1)[-1]


def _two_runs_done(browser: WebDriver) -> list[tuple[str, str]] | Literal[False]:
    """Each row's run id and text once the page shows two runs, the newest finished."""
    try:
        rows = browser.find_elements(By.CSS_SELECTOR, ".run-row")
        if len(rows) == 2 and rows[0].find_element(By.CSS_SELECTOR, ".state").text == "succeeded":
            return [(str(row.get_attribute("data-run-id")), row.text) for row in rows]
    except StaleElementReferenceException:
        pass  # the live table was replaced while we read it
    return False


def _failed_run_shows_why(browser: WebDriver, stack: Stack, console: str) -> None:
    """A file too short to train on fails at ingest; the runs page and the run say why."""
    stack.store.put_bytes(f"incoming/{PIPELINE}/short.csv", b"mean_radius,diagnosis\n1,benign\n")
    browser.get(f"{console}/runs")
    row = wait_text(browser, ".run-row:first-child", "failed", timeout=60)
    assert "ingest:" in row and "rows" in row
    screenshot(browser, "console-runs")
    find(browser, ".run-row:first-child a").click()
    assert "ingest:" in wait_text(browser, "#run-error", "Failed.")
    assert "failed" in find(browser, '.tl-row[data-stage="ingest"]').text


def _check_report(browser: WebDriver) -> None:
    metrics = find(browser, "#metrics").text
    assert "accuracy" in metrics and "roc_auc" in metrics
    confusion = find(browser, "#confusion").text
    assert "benign" in confusion and "malignant" in confusion
    captions = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#plots figcaption")]
    assert captions == ["ROC curve", "Precision-recall curve", "Feature importance"]
    assert "hist_gradient_boosting" in find(browser, "#trials-table").text
    assert "diagnosis (target)" in find(browser, "#profile-table").text


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of this module's own, so its models do not show in other tests' listings."""
    with running_stack(tmp_path_factory.mktemp("console-home")) as running:
        yield running


def test_upload_watch_report_and_roll_back(stack: Stack, tmp_path: Path) -> None:
    console = stack.settings.console_url
    data = tmp_path / "cancer.csv"
    cancer_frame().to_csv(data, index=False)
    with chromium() as browser:
        _edit_spec(browser, console, WEAK_MODELS)
        first = _upload(browser, console, data)
        browser.execute_script("window.notReloaded = true")
        wait_text(browser, "#run-state", "succeeded")  # the page follows the run by itself
        assert browser.execute_script("return window.notReloaded") is True
        assert "Gate passed: no production model yet" in find(browser, "#gate").text
        assert "logistic_regression" in find(browser, "#trials-table").text

        _edit_spec(browser, console, "")  # back to every default candidate: a better model
        browser.get(f"{console}/runs?pipeline={PIPELINE}")
        browser.execute_script("window.notReloaded = true")
        stack.store.put_bytes(f"incoming/{PIPELINE}/again.csv", data.read_bytes())
        rows = WebDriverWait(browser, 180, poll_frequency=0.5).until(_two_runs_done)
        second = rows[0][0]
        assert [run_id for run_id, _ in rows] == [second, first]
        assert "v2 → production" in rows[0][1]
        assert browser.execute_script("return window.notReloaded") is True

        browser.get(f"{console}/runs/{second}")
        _check_report(browser)
        assert "Production v1" in find(browser, "#metrics").text
        screenshot(browser, "console-run")
        _failed_run_shows_why(browser, stack, console)

        browser.get(f"{console}/models")
        section = f"#p-{PIPELINE}"
        assert "production → v2" in find(browser, f"{section} .aliases").text
        find(browser, f'{section} tr[data-version="1"] a.button').click()
        wait_text(browser, "h1", f"Move production of {PIPELINE} to v1?")
        fill(browser, "reason", "v2 flags too many benign cases")
        find(browser, "#confirm").click()
        wait_text(browser, "#moved", f"production of {PIPELINE} now points at v1")
        assert "production → v1" in find(browser, f"{section} .aliases").text
        history = find(browser, f"{section} details.history").text
        assert "v2 flags too many benign cases" in history
        screenshot(browser, "console-models")

    wait_served(stack.settings.serve_url, PIPELINE, 1)  # the prediction service follows
