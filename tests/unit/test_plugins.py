"""Plugins found through entry points: listed, checked in a spec, fitted, saved and loaded."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shared import plugins
from shared.artifacts import dump_model, load_model, plugins_needed
from shared.errors import DataError, SpecError
from shared.spec import parse_spec, resolve_spec
from tests.plugin_site import install_example_plugin

CAUCE = str(Path(sys.executable).parent / "cauce")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_example_plugin(tmp_path_factory.mktemp("plugin"))


@pytest.fixture
def installed(site: Path) -> Iterator[Path]:
    """The example plugin importable in this process for one test, gone after."""
    sys.path.insert(0, str(site))
    plugins.installed.cache_clear()
    try:
        yield site
    finally:
        sys.path.remove(str(site))
        for name in [m for m in sys.modules if m.startswith("cauce_example")]:
            del sys.modules[name]
        plugins.installed.cache_clear()


def ratio_frame(rows: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"spend": rng.uniform(1, 100, rows), "visits": rng.integers(1, 20, rows)})
    frame["city"] = rng.choice(["a", "b"], rows)
    frame["y"] = 10 * frame["spend"] / frame["visits"] + rng.normal(0, 0.1, rows)
    return frame


RATIO_SPEC = """
features:
  steps:
    - use: example.ratio
      params: {numerator: spend, denominator: visits}
models: [{estimator: ridge}]
"""


def test_cauce_plugins_lists_the_installed_steps_and_estimators(installed: Path) -> None:
    env = {"PYTHONPATH": str(installed), "PATH": "/usr/bin:/bin"}
    listed = json.loads(
        subprocess.run(
            [CAUCE, "plugins", "--json"], env=env, capture_output=True, text=True, check=True
        ).stdout
    )
    by_name = {p["name"]: p for p in listed}
    assert set(by_name) == {"example.ratio", "example.robust"}
    assert by_name["example.ratio"]["kind"] == "feature"
    assert set(by_name["example.ratio"]["params"]) == {"numerator", "denominator", "name"}
    assert (
        by_name["example.robust"]["tasks"] == ["regression"] and by_name["example.robust"]["onnx"]
    )
    assert by_name["example.robust"]["package"] == "cauce-example-plugin"
    text = subprocess.run(
        [CAUCE, "plugins"], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert "example.ratio" in text and "numerator: string (required)" in text
    bare = subprocess.run(
        [CAUCE, "plugins"],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "no plugins installed" in bare.stdout


def test_a_spec_naming_what_is_not_installed_fails_with_the_list(installed: Path) -> None:
    spec = parse_spec("models: [{estimator: acme.margin}]")  # parsing alone does not look
    with pytest.raises(SpecError) as caught:
        resolve_spec(spec, target="y", task="regression")
    assert caught.value.field == "models[0].estimator"
    assert "acme.margin" in str(caught.value) and "example.robust" in str(caught.value)

    spec = parse_spec("features: {steps: [{use: acme.holidays}]}")
    with pytest.raises(SpecError) as caught:
        resolve_spec(spec, target="y", task="regression")
    assert caught.value.field == "features.steps[0].use" and "example.ratio" in str(caught.value)

    spec = parse_spec("models: [{estimator: example.robust}]")
    with pytest.raises(SpecError, match="supports regression, not classification"):
        resolve_spec(spec, target="y", task="classification")


def test_bad_params_name_the_field(installed: Path) -> None:
    spec = parse_spec("features: {steps: [{use: example.ratio, params: {numerator: spend}}]}")
    with pytest.raises(SpecError) as caught:
        resolve_spec(spec, target="y", task="regression")
    assert caught.value.field == "features.steps[0].params.denominator"
    assert "Field required" in str(caught.value)

    spec = parse_spec("models: [{estimator: example.robust, search: {C: [1, 2]}}]")
    with pytest.raises(SpecError) as caught:
        resolve_spec(spec, target="y", task="regression")
    assert caught.value.field == "models[0].search.C" and "epsilon" in str(caught.value)


def test_a_fitted_step_saves_with_exactly_its_declared_types(installed: Path) -> None:
    from services.preprocess.features import build_features
    from services.train.training import fit_model

    frame = ratio_frame()
    X, y = frame.drop(columns=["y"]), frame["y"]
    spec = resolve_spec(parse_spec(RATIO_SPEC), target="y", task="regression")
    transformer = build_features(X, steps=spec.features.steps).fit(X)
    model = fit_model(
        transformer=transformer, task="regression", estimator="ridge", params={}, X=X, y=y
    )
    data = dump_model(model)
    assert plugins_needed(data) == [
        {
            "name": "example.ratio",
            "kind": "feature",
            "package": "cauce-example-plugin",
            "version": "0.1.0",
        }
    ]
    loaded = load_model(data)
    assert np.allclose(
        loaded.predict(X.head(5)), 10 * X["spend"].head(5) / X["visits"].head(5), atol=1
    )

    # A process without the plugin refuses the same file, naming the type, rather than trust it.
    path = installed.parent / "model.skops"
    path.write_bytes(data)
    code = (
        "import sys; from shared.artifacts import load_model; from shared.errors import DataError\n"
        "try:\n    load_model(open(sys.argv[1], 'rb').read())\n"
        "except DataError as exc:\n    print(exc)\n"
    )
    refused = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    assert "not trusted: cauce_example.steps.Ratio" in refused.stdout


def test_without_the_plugin_the_model_is_refused(site: Path) -> None:
    plugins.installed.cache_clear()
    with pytest.raises(
        DataError,
        match=r"not installed here: example.ratio \(package cauce-example-plugin\)",
    ):
        plugins.require(
            [{"name": "example.ratio", "kind": "feature", "package": "cauce-example-plugin"}]
        )
    plugins.require([])  # a model of built-in parts needs nothing


def test_steps_instead_of_the_built_in_encoding_must_leave_numbers(installed: Path) -> None:
    from services.preprocess.features import build_features

    frame = ratio_frame()
    X = frame.drop(columns=["y"])
    steps = parse_spec(RATIO_SPEC).features.steps
    with pytest.raises(DataError) as caught:
        build_features(X, steps=steps, builtin=False)
    assert caught.value.field == "features.builtin" and "city is not" in str(caught.value)

    numbers = X.drop(columns=["city"])
    transformer = build_features(numbers, steps=steps, builtin=False).fit(numbers)
    out = transformer.transform(numbers.head(2))
    assert list(out.columns) == ["spend", "visits", "spend_per_visits"]
    assert out["spend_per_visits"].tolist() == pytest.approx(
        (numbers["spend"] / numbers["visits"]).head(2).tolist()
    )


def test_no_built_in_encoding_and_no_steps_is_refused_when_the_spec_is_read() -> None:
    with pytest.raises(SpecError, match="features: Value error, builtin: false needs at least"):
        parse_spec("features: {builtin: false}")
