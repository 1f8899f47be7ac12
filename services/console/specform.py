"""The pipeline spec as a form: each field's value, and each field's problem shown beside it."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import ValidationError

from shared import layout
from shared.errors import NotFound, SpecError
from shared.scoring import METRICS
from shared.spec import ESTIMATORS, PipelineSpec, is_plugin, load_yaml
from shared.storage import Store, check_name

# Form inputs by spec path; `models` is edited as a YAML list. Fields the form does not show
# (added to the spec later) are kept as they are when the form is saved.
FIELDS = (
    "target",
    "task",
    "metric",
    "split.test",
    "split.validation",
    "split.seed",
    "tuning.trials",
    "gate.min_improvement",
    "models",
)


def spec_key(pipeline: str) -> str:
    """The key of the pipeline's spec."""
    return layout.spec_key(check_name(pipeline))


def load_spec_text(store: Store, pipeline: str) -> str:
    """The stored spec YAML, or an empty text when the pipeline has none (all defaults)."""
    try:
        return store.get_bytes(spec_key(pipeline)).decode("utf-8", "replace")
    except NotFound:
        return ""


def parse_mapping(text: str) -> dict[str, Any]:
    """The YAML text as a mapping; a SpecError on the whole spec when it is not one."""
    try:
        raw = load_yaml(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise SpecError(f"not valid YAML: {exc}", field="spec") from exc
    if not isinstance(raw, dict):
        raise SpecError("the spec must be a YAML mapping (key: value lines)", field="spec")
    return raw


def form_values(raw: Mapping[str, Any]) -> dict[str, str]:
    """The text each form input shows for the spec `raw`."""
    values = {}
    for path in FIELDS:
        value = _get(raw, path)
        if value is None:
            values[path] = ""
        elif path == "models":
            values[path] = yaml.safe_dump(value, sort_keys=False)
        else:
            values[path] = str(value)
    return values


def _get(raw: Mapping[str, Any], path: str) -> Any:
    head, _, rest = path.partition(".")
    value = raw.get(head)
    if not rest:
        return value
    return value.get(rest) if isinstance(value, dict) else None


def apply_form(raw: Mapping[str, Any], form: Mapping[str, str]) -> dict[str, Any]:
    """The spec `raw` with the form's fields written in; an empty input means the default."""
    result = copy.deepcopy(dict(raw))
    for path in FIELDS:
        text = form.get(path, "").strip()
        head, _, rest = path.partition(".")
        section = result.setdefault(head, {}) if rest else result
        if not isinstance(section, dict):
            section = result[head] = {}
        name = rest or head
        if not text:
            section.pop(name, None)
        elif path in ("target", "task", "metric"):
            section[name] = text
        else:
            try:
                section[name] = load_yaml(text)
            except yaml.YAMLError as exc:
                section[name] = text  # validation names the field
                if path == "models":
                    raise SpecError(f"not valid YAML: {exc}", field=path) from exc
        if rest and not section:
            result.pop(head, None)
    return result


def _form_field(location: tuple[int | str, ...]) -> str:
    path = ".".join(str(part) for part in location if isinstance(part, str))
    if path.startswith("models"):
        return "models"
    return path if path in FIELDS else "spec"


def problems(raw: Mapping[str, Any]) -> dict[str, str]:
    """Each form field's problem (`spec` for the spec as a whole); empty when the spec is valid."""
    found: dict[str, str] = {}
    try:
        PipelineSpec.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"])
            found.setdefault(_form_field(error["loc"]), f"{where}: {error['msg']}")
    for field, message in _fit_problems(raw).items():
        found.setdefault(field, message)
    return found


def _fit_problems(raw: Mapping[str, Any]) -> dict[str, str]:
    """The metric and the estimators checked against the task, as ingest will check them."""
    task, metric, models = raw.get("task"), raw.get("metric"), raw.get("models")
    found = {}
    if isinstance(metric, str) and metric not in METRICS:
        found["metric"] = f"unknown metric {metric!r}; use one of: {', '.join(METRICS)}"
    elif isinstance(metric, str) and task in ESTIMATORS and METRICS[metric].task != task:
        allowed = ", ".join(name for name, m in METRICS.items() if m.task == task)
        found["metric"] = f"metric {metric!r} does not fit a {task} task; use one of: {allowed}"
    if task in ESTIMATORS and isinstance(models, list):
        for index, model in enumerate(models):
            name = model.get("estimator") if isinstance(model, dict) else None
            if isinstance(name, str) and not is_plugin(name) and name not in ESTIMATORS[task]:
                found.setdefault(
                    "models",
                    f"models[{index}].estimator: unknown {task} estimator {name!r}; "
                    f"use one of: {', '.join(ESTIMATORS[task])}",
                )
    return found


def save_spec(store: Store, pipeline: str, raw: Mapping[str, Any]) -> str:
    """Write the spec (already checked) and return its YAML text."""
    text = yaml.safe_dump(dict(raw), sort_keys=False) if raw else ""
    store.put_bytes(spec_key(pipeline), text.encode(), content_type="application/yaml")
    return text
