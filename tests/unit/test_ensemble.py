"""Ensemble selection: blends that help are kept, trials that do not are left out."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import r2_score

from services.train.ensemble import (
    blend_weights,
    dump_predictions,
    load_predictions,
    voting_model,
)
from services.train.training import make_estimator


def test_two_trials_with_independent_errors_blend_better_than_either() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=2000)
    one, two = y + rng.normal(size=2000), y + rng.normal(size=2000)
    weights, value = blend_weights([one, two], y, metric="rmse", classes=None)
    assert set(weights) == {0, 1}
    assert 0.3 < weights[0] / sum(weights.values()) < 0.7  # equal errors, about equal weights
    single = float(np.sqrt(np.mean((one - y) ** 2)))
    assert value < single * 0.8  # averaging halves the variance of the error: rmse / sqrt(2)


def test_a_trial_that_only_adds_noise_is_not_added() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(size=500)
    exact, noise = y.copy(), rng.normal(size=500)
    weights, value = blend_weights([exact, noise], y, metric="r2", classes=None)
    assert weights == {0: 1} and value == pytest.approx(1.0)


def test_tied_accuracy_is_decided_by_the_probabilities() -> None:
    # Both trials get every row right; the second is surer of it, so blending it in helps the
    # log loss while the accuracy stays the same.
    y = np.array(["no", "yes"] * 50)
    truth = (y == "yes").astype(float)
    unsure = np.column_stack([1 - (0.4 + 0.2 * truth), 0.4 + 0.2 * truth])
    sure = np.column_stack([1 - (0.05 + 0.9 * truth), 0.05 + 0.9 * truth])
    weights, value = blend_weights([unsure, sure], y, metric="accuracy", classes=["no", "yes"])
    assert value == 1.0 and weights.get(1, 0) > weights[0]


def test_whole_number_classes_are_blended_like_text_ones() -> None:
    y = np.array([0, 1, 2] * 40)
    rng = np.random.default_rng(4)
    noisy = [np.eye(3)[y] * 0.6 + rng.uniform(0, 0.4, size=(120, 3)) for _ in range(3)]
    noisy = [p / p.sum(axis=1, keepdims=True) for p in noisy]
    weights, value = blend_weights(noisy, y, metric="f1_macro", classes=[0, 1, 2])
    assert value == 1.0 and sum(weights.values()) >= 1


def test_a_cross_validated_blend_is_scored_as_its_trials_were() -> None:
    # The mean of the folds' scores, as a trial's score is: the blend starts from the best
    # trial's exact score and never reports less.
    rng = np.random.default_rng(5)
    y = rng.normal(size=103)
    folds = [np.arange(0, 40), np.arange(40, 80), np.arange(80, 103)]  # unequal sizes
    best = y + rng.normal(scale=0.05, size=103)
    fold_mean = float(np.mean([r2_score(y[f], best[f]) for f in folds]))
    weights, value = blend_weights(
        [best, 5 + rng.normal(size=103)], y, metric="r2", classes=None, folds=folds
    )
    assert weights == {0: 1} and value == fold_mean != r2_score(y, best)


def test_a_blend_has_at_most_five_distinct_trials() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(size=1000)
    library = [y + rng.normal(size=1000) for _ in range(12)]
    weights, _ = blend_weights(library, y, metric="rmse", classes=None)
    assert 2 <= len(weights) <= 5 and sum(weights.values()) <= 25


def test_predictions_round_trip_and_never_unpickle() -> None:
    array = np.arange(12, dtype=float).reshape(6, 2)
    assert np.array_equal(load_predictions(dump_predictions(array)), array)
    import io

    pickled = io.BytesIO()
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="allow_pickle"):
        load_predictions(pickled.getvalue())


def test_the_voting_model_averages_its_members_with_their_weights() -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 4))
    y = np.where(X[:, 0] + rng.normal(scale=0.5, size=300) > 0, "a", "b")
    members = [
        (
            "logistic_regression_0",
            make_estimator("classification", "logistic_regression", {}),
            0.75,
        ),
        ("random_forest_1", make_estimator("classification", "random_forest", {}), 0.25),
    ]
    model = voting_model("classification", members).fit(X, y)
    fitted = model.named_estimators_
    expected = 0.75 * fitted["logistic_regression_0"].predict_proba(X) + 0.25 * fitted[
        "random_forest_1"
    ].predict_proba(X)
    assert np.allclose(model.predict_proba(X), expected)
