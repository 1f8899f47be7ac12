"""The pipeline spec (`pipelines/<name>.yaml`): parsed, validated per field, defaults inferred."""

from __future__ import annotations

import math
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from shared.errors import SpecError
from shared.scoring import DEFAULT_METRIC, METRICS

Task = Literal["classification", "regression"]

# The candidate estimators per task; services/train/training.py implements exactly these. A spec
# that lists no models searches the defaults: all of them (lightgbm since make bench-quality
# scored it at least as well, docs/benchmarks.md).
ESTIMATORS: dict[str, tuple[str, ...]] = {
    "classification": (
        "logistic_regression",
        "random_forest",
        "hist_gradient_boosting",
        "lightgbm",
    ),
    "regression": ("ridge", "random_forest", "hist_gradient_boosting", "lightgbm"),
}
DEFAULT_ESTIMATORS: dict[str, tuple[str, ...]] = dict(ESTIMATORS)


# Each estimator's parameters per task (scikit-learn's get_params() names, checked against
# services/train/training.py by tests/unit/test_spec.py): a model's `search` may tune any of them.
def _names(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_FOREST = _names(
    "bootstrap ccp_alpha criterion max_depth max_features max_leaf_nodes max_samples "
    "min_impurity_decrease min_samples_leaf min_samples_split min_weight_fraction_leaf "
    "monotonic_cst n_estimators n_jobs oob_score random_state verbose warm_start"
)
_BOOSTING = _names(
    "categorical_features early_stopping interaction_cst l2_regularization learning_rate loss "
    "max_bins max_depth max_features max_iter max_leaf_nodes min_samples_leaf monotonic_cst "
    "n_iter_no_change random_state scoring tol validation_fraction verbose warm_start"
)
_LIGHTGBM = _names(
    "boosting_type class_weight colsample_bytree importance_type learning_rate max_depth "
    "min_child_samples min_child_weight min_split_gain n_estimators n_jobs num_leaves objective "
    "random_state reg_alpha reg_lambda subsample subsample_for_bin subsample_freq verbose"
)
PARAMETERS: dict[str, dict[str, tuple[str, ...]]] = {
    "classification": {
        "logistic_regression": _names(
            "C class_weight dual fit_intercept intercept_scaling l1_ratio max_iter n_jobs penalty "
            "random_state solver tol verbose warm_start"
        ),
        "random_forest": tuple(sorted((*_FOREST, "class_weight"))),
        "hist_gradient_boosting": tuple(sorted((*_BOOSTING, "class_weight"))),
        "lightgbm": _LIGHTGBM,
    },
    "regression": {
        "ridge": _names("alpha copy_X fit_intercept max_iter positive random_state solver tol"),
        "random_forest": _FOREST,
        "hist_gradient_boosting": tuple(sorted((*_BOOSTING, "quantile"))),
        "lightgbm": _LIGHTGBM,
    },
}
# One row each for train, validation and test is the least a class needs to appear in all three:
# ingest refuses a dataset with fewer, and preprocess's stratified split relies on it.
MIN_ROWS_PER_CLASS = 3
# A spec is a page of YAML: anything larger, or whose aliases expand to more values than this,
# is refused before it is turned into Python (a 445-byte alias bomb once became 241 MB of JSON).
MAX_SPEC_BYTES = 64 * 1024
MAX_SPEC_VALUES = 10_000
MAX_TRIALS = 1000  # per candidate, whichever sampler plans them
AUTO_TRIALS = 50  # per candidate, for `trials: auto`, which the time budget ends sooner
SEED_MAX = 2**32 - 1  # numpy's seeds, which the split and the random sampler use
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})


class Strict(BaseModel):
    """Spec sections refuse unknown fields, so a typo is reported instead of ignored."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Split(Strict):
    test: float = Field(default=0.2, gt=0, lt=0.9)
    validation: float = Field(default=0.2, gt=0, lt=0.9)
    seed: int = Field(default=42, ge=0, le=SEED_MAX)

    @model_validator(mode="after")
    def _leaves_training_rows(self) -> Split:
        if self.test + self.validation >= 0.9:
            raise ValueError("test + validation must leave at least 10% of rows for training")
        return self


class ModelSpec(Strict):
    estimator: str
    search: dict[str, Any] = Field(default_factory=dict)

    @field_validator("search")
    @classmethod
    def _finite(cls, search: dict[str, Any]) -> dict[str, Any]:
        """Search values are JSON through the whole run, which has no infinity or NaN."""
        for name, space in search.items():
            stack = [space]
            while stack:
                value = stack.pop()
                if isinstance(value, float) and not math.isfinite(value):
                    raise PydanticCustomError(
                        "finite_number",
                        "{name}: {value} is not a finite number",
                        {"name": name, "value": value},
                    )
                if isinstance(value, dict | list):
                    stack.extend(value.values() if isinstance(value, dict) else value)
        return search


class Tuning(Strict):
    # Trials per candidate, or `auto`: trials until the time budget is spent, at most AUTO_TRIALS
    # per candidate (the search ends at the budget, as FLAML's and Vertex AI's do).
    trials: int | Literal["auto"] = 4
    parallelism: int = Field(default=4, ge=1, le=1000)  # trials of one run in flight at once
    # auto: the whole grid when it fits in `trials`, else random draws; tpe: Optuna's TPE,
    # each trial's point asked as it starts from the results so far (services/train/tpe.py).
    sampler: Literal["auto", "grid", "random", "tpe"] = "auto"
    # Seconds the search's trials may take, counted from its plan: a trial still fitting then is
    # stopped, one not started is skipped; the final refit comes on top. None: a minute, and a
    # minute more for each 100,000 training rows, at most an hour (services/train/budget.py).
    budget_seconds: float | None = Field(default=None, gt=0, le=7 * 24 * 3600)
    # How trials are compared: holdout (fitted on the training split, scored on validation), cv
    # (k-fold cross-validation over the training and validation rows together, stratified for
    # classes) or auto: cv when a search has a choice to make (more than one trial) and at most
    # CV_MAX_ROWS training and validation rows, where one split would make the winner partly luck.
    selection: Literal["auto", "holdout", "cv"] = "auto"
    folds: int = Field(default=5, ge=2, le=20)
    # auto: a search over at least 200,000 training rows starts its trials on row subsamples and
    # takes the best third of each rung on to three times the rows (services/train/halving.py).
    halving: Literal["auto", "off"] = "auto"
    # auto: a cross-validated search serves a weighted blend of its best trials when the blend
    # scores better out of fold than its best trial alone (services/train/ensemble.py). Unset:
    # the train workers' CAUCE_ENSEMBLE, auto unless the operator set it.
    ensemble: Literal["auto", "off"] | None = None

    @field_validator("trials", mode="before")
    @classmethod
    def _trials(cls, value: Any) -> Any:
        whole = isinstance(value, int) and not isinstance(value, bool)
        if value == "auto" or (whole and 1 <= value <= MAX_TRIALS):
            return value
        raise PydanticCustomError(
            "trials",
            "a whole number of trials per candidate from 1 to {most}, or auto, got {value}",
            {"most": MAX_TRIALS, "value": repr(value)},
        )

    @field_validator("halving", "ensemble", mode="before")
    @classmethod
    def _switch(cls, value: Any) -> Any:
        """YAML 1.1 reads a bare `off` (and `on`) as a boolean: they mean off and auto here."""
        if isinstance(value, bool):
            return "auto" if value else "off"
        return value


class FeatureStepSpec(Strict):
    use: str  # an installed feature step's entry-point name (shared/plugins.py)
    params: dict[str, Any] = Field(default_factory=dict)


class Features(Strict):
    # Installed feature steps, in order, fitted on the training split before the built-in
    # imputation and encoding, or instead of them with `builtin: false` (the steps then must
    # leave only numbers).
    steps: list[FeatureStepSpec] = Field(default_factory=list)
    builtin: bool = True

    @model_validator(mode="after")
    def _something_makes_features(self) -> Features:
        if not self.builtin and not self.steps:
            raise ValueError("builtin: false needs at least one step to make the features")
        return self


class Monitoring(Strict):
    # The share of prediction requests the service logs (0 turns the log off), with what it
    # answered (services/serve/capture.py); drift compares the last `window_hours` of them
    # with the training data and flags a feature whose stability index passes the threshold.
    sample: float = Field(default=0.1, ge=0, le=1)
    window_hours: float = Field(default=24.0, gt=0, le=24 * 366)
    drift_threshold: float = Field(default=0.2, gt=0)
    # A version's live value of the spec's metric (from feedback joined to the log) worse than
    # this raises metric.below_threshold; unset: reported, never alerted.
    live_threshold: float | None = None


class Validation(Strict):
    # What a new drop whose columns differ from the production model's training data does:
    # fail the run at ingest (the file kept, as for any bad data) or run with a warning.
    on_schema_change: Literal["fail", "warn"] = "warn"
    # A feature whose stability index against the production model's training data passes this
    # fails the run; unset: the shift is reported (warnings over shared.drift.DEFAULT_THRESHOLD).
    max_drift: float | None = Field(default=None, gt=0)


class Gate(Strict):
    min_improvement: float = Field(default=0.0, ge=0)


class PipelineSpec(Strict):
    """Every field is optional; `resolve_spec` fills what the data implies."""

    target: str | None = None
    task: Task | None = None
    metric: str | None = None
    split: Split = Field(default_factory=Split)
    models: list[ModelSpec] | None = None
    tuning: Tuning = Field(default_factory=Tuning)
    gate: Gate = Field(default_factory=Gate)
    features: Features = Field(default_factory=Features)
    monitoring: Monitoring = Field(default_factory=Monitoring)
    validation: Validation = Field(default_factory=Validation)
    cache: bool = True
    # The rows the served model is fitted on once evaluate measured it on the test split:
    # train_validation (the training and validation splits), all (test rows too) or train
    # (the measured model itself). services/deploy/refit.py.
    refit: Literal["train", "train_validation", "all"] = "train_validation"


class ResolvedSpec(PipelineSpec):
    """The spec a run uses (ingest writes it as spec.json): target, task, metric and models set."""

    target: str
    task: Task
    metric: str
    models: list[ModelSpec]


def _field_path(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "spec"


def load_yaml(text: str) -> Any:
    """Spec YAML as Python values: at most MAX_SPEC_BYTES, its aliases expanding to at most
    MAX_SPEC_VALUES values, and a plain `target:` read as the column name it spells (YAML 1.1
    would make `target: on` true and `target: 007` the number 7); SpecError otherwise."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_SPEC_BYTES:
        raise SpecError(
            f"the spec is {size:,} bytes; a spec may be at most {MAX_SPEC_BYTES:,} bytes",
            field="spec",
        )
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        _target_as_text(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_expansion(root: yaml.Node) -> None:
    """Count the values the document holds with every alias expanded, up to MAX_SPEC_VALUES."""
    stack, count = [root], 0
    while stack:
        node = stack.pop()
        count += 1
        if count > MAX_SPEC_VALUES:
            raise SpecError(
                f"the spec holds more than {MAX_SPEC_VALUES:,} values once its aliases (*name) "
                "are expanded; write the values out instead of nesting aliases",
                field="spec",
            )
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            stack.extend(item for pair in node.value for item in pair)


def _target_as_text(root: yaml.Node) -> None:
    if not isinstance(root, yaml.MappingNode):
        return
    for key, value in root.value:
        plain = isinstance(value, yaml.ScalarNode) and value.style is None
        if key.value == "target" and plain and value.value not in _NULLS:
            value.tag = "tag:yaml.org,2002:str"


def parse_spec(text: str | None) -> PipelineSpec:
    """Parse spec YAML; a SpecError names every bad field and what it should be."""
    if not text or not text.strip():
        return PipelineSpec()
    try:
        raw = load_yaml(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"pipeline spec is not valid YAML: {exc}", field="spec") from exc
    if not isinstance(raw, dict):
        raise SpecError("pipeline spec must be a YAML mapping (key: value lines)", field="spec")
    try:
        spec = PipelineSpec.model_validate(raw)
    except ValidationError as exc:
        problems = [f"{_field_path(e['loc'])}: {e['msg']}" for e in exc.errors()]
        first = _field_path(exc.errors()[0]["loc"])
        raise SpecError("invalid pipeline spec: " + "; ".join(problems), field=first) from exc
    if spec.task is not None and spec.models:
        check_models(spec.models, task=spec.task)  # without a task, ingest checks once it knows
    if spec.tuning.sampler == "grid":
        check_grids(spec.models or [])
    return spec


def check_grids(models: list[ModelSpec]) -> None:
    """Check no model's grid (the product of its lists' lengths) holds more than MAX_TRIALS."""
    for index, model in enumerate(models):
        sizes = [len(v) for v in model.search.values() if isinstance(v, list)]
        if math.prod(sizes) > MAX_TRIALS:
            raise SpecError(
                f"models[{index}].search: the grid sampler would plan {math.prod(sizes):,} "
                f"trials, more than the limit of {MAX_TRIALS:,}; list fewer values or use "
                "sampler: random",
                field=f"models[{index}].search",
            )


def is_plugin(name: str) -> bool:
    """Whether an estimator or step name is a plugin's: plugins' names are dotted (acme.model)."""
    return "." in name


def check_models(models: list[ModelSpec], *, task: str, plugins: bool = False) -> None:
    """Check each model names an estimator of `task` and searches only parameters it has; a
    plugin's (a dotted name) is checked against the installed plugins only when `plugins`."""
    for index, model in enumerate(models):
        where = f"models[{index}].estimator"
        if is_plugin(model.estimator):
            if plugins:
                _check_plugin_model(model, task=task, where=f"models[{index}]")
            continue
        if model.estimator not in ESTIMATORS[task]:
            raise SpecError(
                f"{where}: unknown {task} estimator {model.estimator!r}; use one of: "
                f"{', '.join(ESTIMATORS[task])}, or an installed plugin's (cauce plugins)",
                field=where,
            )
        known = PARAMETERS[task][model.estimator]
        for name in model.search:
            if name not in known:
                raise SpecError(
                    f"models[{index}].search.{name}: {model.estimator} has no parameter "
                    f"{name!r}; known parameters: {', '.join(known)}",
                    field=f"models[{index}].search.{name}",
                )


def _check_plugin_model(model: ModelSpec, *, task: str, where: str) -> None:
    from shared import plugins  # the installed packages are read only where a run resolves

    plugin = plugins.estimator(model.estimator, task=task, field=f"{where}.estimator")
    declared = plugin.declared
    assert isinstance(declared, plugins.Estimator)
    known = sorted(declared.build(task).get_params(deep=False))
    for name in model.search:
        if name not in known:
            raise SpecError(
                f"{where}.search.{name}: {model.estimator} has no parameter {name!r}; known "
                f"parameters: {', '.join(known)}",
                field=f"{where}.search.{name}",
            )


def check_features(features: Features) -> None:
    """Check each feature step is installed and its params are what it takes."""
    from shared import plugins

    for index, step in enumerate(features.steps):
        where = f"features.steps[{index}]"
        plugin = plugins.feature_step(step.use, field=f"{where}.use")
        plugins.step_params(plugin, step.params, field=f"{where}.params")


def resolve_spec(spec: PipelineSpec, *, target: str, task: str) -> ResolvedSpec:
    """Fill the target, task, metric and candidate models, checking they fit the task and that
    the plugins it names are installed here."""
    metric = spec.metric or DEFAULT_METRIC[task]
    if metric not in METRICS or METRICS[metric].task != task:
        allowed = ", ".join(sorted(m for m in METRICS if METRICS[m].task == task))
        raise SpecError(
            f"metric {metric!r} does not fit a {task} task; use one of: {allowed}", field="metric"
        )
    models = spec.models or [ModelSpec(estimator=name) for name in DEFAULT_ESTIMATORS[task]]
    check_models(models, task=task, plugins=True)
    check_features(spec.features)
    return ResolvedSpec.model_validate(
        {**dict(spec), "target": target, "task": task, "metric": metric, "models": models}
    )
