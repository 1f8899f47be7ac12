"""Model files as skops archives: only the types our pipelines (and the installed plugins' declared
types) are made of are saved or loaded."""

from __future__ import annotations

import zipfile
from typing import Any

from shared.errors import DataError
from shared.plugins import installed, trusted_types

# Every type found in fitted pipelines of each training candidate (numeric, one-hot, ordinal,
# boolean and category columns; binary, multiclass and regression targets; small data and data
# large enough for early stopping), read from the skops schema of real dumps. skops already
# trusts most of these by default; naming them all keeps us safe if that default ever narrows.
# Regenerate by dumping such pipelines and listing the classes in their schema.json.
ALLOWED_TYPES: tuple[str, ...] = (
    "collections.OrderedDict",
    # LightGBM's model: the Booster's text is parsed by LightGBM's C++ code, and only ever after
    # the version's signed manifest and the file's sha256 checked (shared/registry.py).
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMClassifier",
    "lightgbm.sklearn.LGBMRegressor",
    "numpy.dtype",
    "numpy.float64",
    "numpy.int64",
    "numpy.ndarray",
    "numpy.random._generator.Generator",
    "numpy.uint64",
    "sklearn._loss._loss.CyHalfBinomialLoss",
    "sklearn._loss._loss.CyHalfMultinomialLoss",
    "sklearn._loss._loss.CyHalfSquaredError",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.Interval",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.MultinomialLogit",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.loss.HalfMultinomialLoss",
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.RandomForestRegressor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._voting.VotingClassifier",
    "sklearn.ensemble._voting.VotingRegressor",
    "sklearn.impute._base.SimpleImputer",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.linear_model._ridge.Ridge",
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._encoders.OneHotEncoder",
    "sklearn.preprocessing._encoders.OrdinalEncoder",
    "sklearn.preprocessing._label.LabelEncoder",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._tree.Tree",
    "sklearn.utils._bunch.Bunch",  # a voting ensemble's named_estimators_ (a dict)
    "shared.dates.DateParts",  # cauce's own: date columns as numbers (shared/dates.py)
)


def trusted() -> list[str]:
    """The types a skops file may hold here: cauce's own and those the installed plugins declare."""
    return [*ALLOWED_TYPES, *trusted_types()]


def _foreign(data: bytes) -> set[str]:
    import skops.io as sio  # with scikit-learn: loaded by the processes that use a skops file

    return set(sio.get_untrusted_types(data=data)) - set(ALLOWED_TYPES)


def _disallowed(data: bytes) -> list[str]:
    return sorted(_foreign(data) - set(trusted_types()))


def plugins_needed(data: bytes) -> list[dict[str, str]]:
    """The installed plugins whose declared types a skops file holds, as version records keep
    them (a plugin that declares none of them is not needed to load it)."""
    foreign = _foreign(data)
    return [
        plugin.record()
        for kind in installed().values()
        for plugin in kind.values()
        if foreign & set(plugin.declared.trusted)
    ]


def dump_model(obj: Any) -> bytes:
    """Serialise a fitted pipeline with skops, refusing any type outside ALLOWED_TYPES."""
    import skops.io as sio

    data = sio.dumps(obj)
    refused = _disallowed(data)
    if refused:
        raise ValueError(
            f"refusing to save a model containing types outside the allow-list: "
            f"{', '.join(refused)}; a plugin's types are saved only when the plugin declares "
            "them (shared.plugins, trusted); cauce's own go in shared.artifacts.ALLOWED_TYPES "
            "after review"
        )
    return data


def load_model(data: bytes) -> Any:
    """Load a skops model archive, raising DataError if it is not one or holds unknown types."""
    if not data:
        raise DataError("the model file is empty; retrain to produce a new one", field="model")
    try:
        refused = _disallowed(data)
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise DataError(
            f"the model file is not a skops archive ({exc}); retrain to produce a new one",
            field="model",
        ) from exc
    if refused:
        raise DataError(
            f"the model file contains types that are not trusted: {', '.join(refused)}; "
            "it was not produced by cauce's training with the plugins installed here, so it "
            "will not be loaded",
            field="model",
        )
    import skops.io as sio

    return sio.loads(data, trusted=trusted())
