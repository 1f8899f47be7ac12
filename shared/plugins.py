"""Plugins: feature steps and estimators from installed packages, found through entry points.

A plugin is an ordinary Python package installed beside cauce. Its `pyproject.toml` names each
step or estimator under the entry-point groups `cauce.features` and `cauce.estimators`; the
entry point's name is what a spec writes (`use: acme.holidays`, `estimator: acme.margin_model`)
and it loads a `FeatureStep` or an `Estimator`. Nothing is ever imported from the bucket: a
model that holds a plugin's types is saved and loaded with skops trusting exactly the types the
installed plugins declare (shared/artifacts.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from shared.errors import DataError, SpecError

log = logging.getLogger(__name__)

FEATURES = "cauce.features"
ESTIMATORS = "cauce.estimators"
Kind = Literal["feature", "estimator"]
GROUPS: dict[Kind, str] = {"feature": FEATURES, "estimator": ESTIMATORS}


@dataclass(frozen=True)
class FeatureStep:
    """A feature step: `build(**params)` gives an unfitted scikit-learn transformer that takes
    and returns a pandas frame; it is fitted on the training split only, like the built-in steps.

    `params` validates the spec's `params` (a pydantic model: a bad value names its field);
    `trusted` lists the types (module.Class) skops may load for it; `onnx`, when given,
    registers its converter with skl2onnx so the served model keeps the ONNX fast path.
    """

    build: Callable[..., Any]
    params: type[BaseModel] | None = None
    trusted: tuple[str, ...] = ()
    onnx: Callable[[], None] | None = None
    description: str = ""


@dataclass(frozen=True)
class Estimator:
    """An estimator: `build(task)` gives an unfitted scikit-learn estimator for `task` whose
    get_params() names what a spec may search; `space` is its default search space, in the
    spec's `search` form; `fixed` settings every trial gets; `trusted` and `onnx` as FeatureStep."""

    build: Callable[[str], Any]
    tasks: tuple[str, ...] = ("classification", "regression")
    space: dict[str, Any] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    trusted: tuple[str, ...] = ()
    onnx: Callable[[], None] | None = None
    description: str = ""


@dataclass(frozen=True)
class Plugin:
    """One installed entry point: its name, kind, the package that provides it and what it
    declares."""

    name: str
    kind: Kind
    package: str
    version: str
    declared: FeatureStep | Estimator

    def describe(self) -> dict[str, Any]:
        """What `cauce plugins --json` shows and a model version records."""
        declared = self.declared
        about: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "package": self.package,
            "version": self.version,
            "description": declared.description,
            "trusted": list(declared.trusted),
            "onnx": declared.onnx is not None,
        }
        if isinstance(declared, Estimator):
            about |= {"tasks": list(declared.tasks), "space": declared.space}
        else:
            schema = declared.params.model_json_schema() if declared.params else {}
            about["params"] = schema.get("properties", {})
        return about

    def record(self) -> dict[str, str]:
        """The part a model version keeps: enough to say what a service must install."""
        return {
            "name": self.name,
            "kind": self.kind,
            "package": self.package,
            "version": self.version,
        }


def _load(point: EntryPoint, kind: Kind) -> Plugin | None:
    if "." not in point.name:  # built-in names have no dot, so a plugin's cannot shadow one
        log.error(
            "plugin %s (%s) needs a dotted name such as acme.%s; it is ignored",
            point.name,
            kind,
            point.name,
        )
        return None
    try:
        declared = point.load()
    except Exception:  # one broken plugin must not hide the others
        log.exception("plugin %s (%s) could not be imported; it is ignored", point.name, kind)
        return None
    wanted = FeatureStep if kind == "feature" else Estimator
    if not isinstance(declared, wanted):
        log.error(
            "plugin %s (%s) is a %s, not a shared.plugins.%s; it is ignored",
            point.name,
            kind,
            type(declared).__name__,
            wanted.__name__,
        )
        return None
    dist = point.dist
    return Plugin(
        name=point.name,
        kind=kind,
        package=dist.name if dist else "",
        version=dist.version if dist else "",
        declared=declared,
    )


@cache
def installed() -> dict[Kind, dict[str, Plugin]]:
    """Every installed plugin by kind and name, read once per process."""
    found: dict[Kind, dict[str, Plugin]] = {"feature": {}, "estimator": {}}
    for kind, group in GROUPS.items():
        for point in sorted(entry_points(group=group), key=lambda p: p.name):
            plugin = _load(point, kind)
            if plugin is not None:
                found[kind][plugin.name] = plugin
    return found


def _listing(kind: Kind) -> str:
    names = sorted(installed()[kind])
    return ", ".join(names) if names else "none"


def feature_step(name: str, *, field: str) -> Plugin:
    """The installed feature step `name`; SpecError with what is installed when it is not."""
    plugin = installed()["feature"].get(name)
    if plugin is None:
        raise SpecError(
            f"{field}: no installed feature step {name!r}; installed feature steps: "
            f"{_listing('feature')} (a plugin is a package installed beside cauce: README, "
            "Your own steps)",
            field=field,
        )
    return plugin


def estimator(name: str, *, task: str, field: str) -> Plugin:
    """The installed estimator `name` for `task`; SpecError naming what is installed when not."""
    plugin = installed()["estimator"].get(name)
    if plugin is None:
        raise SpecError(
            f"{field}: no installed estimator {name!r}; installed plugin estimators: "
            f"{_listing('estimator')}",
            field=field,
        )
    declared = plugin.declared
    assert isinstance(declared, Estimator)
    if task not in declared.tasks:
        raise SpecError(
            f"{field}: {name} supports {', '.join(declared.tasks)}, not {task}", field=field
        )
    return plugin


def step_params(plugin: Plugin, params: dict[str, Any], *, field: str) -> dict[str, Any]:
    """The spec's params for a feature step, checked by the step's own model; SpecError naming
    the bad field."""
    declared = plugin.declared
    assert isinstance(declared, FeatureStep)
    if declared.params is None:
        if params:
            raise SpecError(f"{field}: {plugin.name} takes no params", field=field)
        return {}
    try:
        return declared.params.model_validate(params).model_dump()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise SpecError(f"{field}: {problems}", field=f"{field}.{where}") from exc


def build_step(name: str, params: dict[str, Any]) -> Any:
    """An unfitted transformer of the installed step `name` with checked params."""
    plugin = feature_step(name, field="features.steps")
    declared = plugin.declared
    assert isinstance(declared, FeatureStep)
    return declared.build(**step_params(plugin, params, field=f"features.steps.{name}"))


def trusted_types() -> tuple[str, ...]:
    """Every type the installed plugins declare for skops (and nothing more)."""
    found = installed()
    return tuple(
        sorted(
            {
                t
                for kind in found.values()
                for plugin in kind.values()
                for t in plugin.declared.trusted
            }
        )
    )


def register_converters(names: Iterable[str] | None = None) -> None:
    """Register the ONNX converters the installed plugins (or those named) provide."""
    for kind in installed().values():
        for plugin in kind.values():
            if plugin.declared.onnx is not None and (names is None or plugin.name in names):
                plugin.declared.onnx()


def without_converter(records: Iterable[dict[str, Any]]) -> list[str]:
    """The names, among a version's plugins, of those that declare no ONNX converter."""
    found = installed()
    return [
        r["name"]
        for r in records
        if (plugin := found.get(r.get("kind", "feature"), {}).get(r["name"])) is not None
        and plugin.declared.onnx is None
    ]


def require(records: Iterable[dict[str, Any]]) -> None:
    """Raise DataError naming each plugin a model version needs that is not installed here."""
    records = list(records)
    if not records:
        return
    found = installed()
    missing = [r for r in records if r.get("name") not in found.get(r.get("kind", "feature"), {})]
    if missing:
        needs = ", ".join(f"{r['name']} (package {r.get('package') or '?'})" for r in missing)
        raise DataError(
            f"this model needs plugins that are not installed here: {needs}; install them "
            "beside cauce (pip install, or the image's EXTRA_PACKAGES) and restart",
            field="plugins",
        )


def used_by(spec: Any) -> list[dict[str, str]]:
    """The plugins a resolved spec names (feature steps, then estimators), as records."""
    found = installed()
    names: list[tuple[Kind, str]] = [("feature", step.use) for step in spec.features.steps]
    names += [("estimator", model.estimator) for model in spec.models]
    return [found[kind][name].record() for kind, name in names if name in found[kind]]
