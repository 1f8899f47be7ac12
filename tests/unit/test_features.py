"""Splitting rows and building the shared feature transformer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes, load_iris

from services.preprocess.features import build_transformer, split_frame
from shared.errors import DataError, SpecError


def iris() -> pd.DataFrame:
    df = load_iris(as_frame=True).frame
    return df.assign(target=df["target"].map({0: "setosa", 1: "versicolor", 2: "virginica"}))


def split(df: pd.DataFrame, **kwargs: object) -> dict[str, pd.DataFrame]:
    options: dict = {"target": "target", "task": "classification", "test": 0.2}
    options |= {"validation": 0.2, "seed": 7} | kwargs
    return split_frame(df, **options)


def test_split_sizes_cover_every_row_once() -> None:
    parts = split(iris())
    assert [len(parts[k]) for k in ("train", "validation", "test")] == [90, 30, 30]
    indices = np.concatenate([parts[k].index for k in parts])
    assert sorted(indices) == list(range(150))


def test_split_is_stratified() -> None:
    parts = split(iris())
    for part in parts.values():
        shares = part["target"].value_counts(normalize=True)
        assert shares.to_dict() == pytest.approx({c: 1 / 3 for c in shares.index})


def test_split_is_seeded() -> None:
    first, again, other = split(iris()), split(iris()), split(iris(), seed=8)
    assert first["test"].index.equals(again["test"].index)
    assert not first["test"].index.equals(other["test"].index)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_split_takes_the_rows_splitting_the_frame_itself_would(task: str) -> None:
    """Row numbers are split for speed; the parts are the rows, in the order, that scikit-learn's
    own split of the frame gives (the splits runs made before stay the same)."""
    from sklearn.model_selection import train_test_split

    rng = np.random.default_rng(3)
    n = 5000
    df = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "city": rng.choice(["b", "a", "c"], n),
            "label": pd.array(rng.choice(["yes", "no", "maybe"], n, p=[0.5, 0.3, 0.2]), "str"),
            "price": rng.normal(size=n) * 1000,
        }
    )
    target = "label" if task == "classification" else "price"
    parts = split_frame(df, target=target, task=task, test=0.2, validation=0.25, seed=11)
    strata = df[target] if task == "classification" else None
    rest, test = train_test_split(df, test_size=0.2, random_state=11, stratify=strata)
    strata = rest[target] if task == "classification" else None
    train, validation = train_test_split(
        rest, test_size=0.25 / 0.8, random_state=11, stratify=strata
    )
    for name, expected in (("train", train), ("validation", validation), ("test", test)):
        pd.testing.assert_frame_equal(parts[name], expected)


def test_regression_split_is_not_stratified_and_works() -> None:
    df = load_diabetes(as_frame=True).frame
    parts = split(df, task="regression", test=0.25, validation=0.25)
    assert sum(len(p) for p in parts.values()) == len(df)


def test_small_class_is_named() -> None:
    df = pd.concat([iris(), pd.DataFrame({"target": ["rare", "rare"]})], ignore_index=True)
    with pytest.raises(DataError, match=r"class 'rare'.*2 row"):
        split(df.fillna(0.0))


@pytest.mark.parametrize(("test", "validation"), [(0.0, 0.2), (0.5, 0.5), (0.2, 1.2)])
def test_bad_fractions(test: float, validation: float) -> None:
    with pytest.raises(SpecError):
        split(iris(), test=test, validation=validation)


def mixed(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "num": rng.normal(size=n),
            "gappy": np.where(rng.random(n) < 0.2, np.nan, rng.normal(size=n)),
            "color": pd.Series(rng.choice(["red", "blue", None], n), dtype="str"),
            "city": pd.Series([f"city{i % 30}" for i in range(n)], dtype="str"),
            "flag": rng.choice([True, False], n),
            # read_table and shared.runtime.frame give NaN for gaps, never None
            "maybe": pd.Series(rng.choice([True, False, np.nan], n), dtype=object),
            "when": pd.date_range("2024-01-01", periods=n),
        }
    )


def test_transformer_encodes_every_kind_densely() -> None:
    X = mixed()
    transformer = build_transformer(X).fit(X)
    out = transformer.transform(X)
    assert isinstance(out, np.ndarray)
    assert not np.isnan(out).any()
    kinds = {name: cols for name, _, cols in transformer.transformers_ if name != "remainder"}
    assert kinds == {
        "numeric": ["num", "gappy"],
        "onehot": ["color", "flag", "maybe"],
        "ordinal": ["city"],
    }
    # 2 numbers + color (2) + flag (2) + maybe (2) one-hot + 1 ordinal; the date is dropped.
    assert out.shape == (60, 9)


def test_transformer_handles_unseen_and_missing_values() -> None:
    X = mixed()
    transformer = build_transformer(X).fit(X)
    new = X.head(2).copy()
    new["color"] = pd.Series(["green", None], dtype="str", index=new.index)
    new["city"] = pd.Series(["atlantis", None], dtype="str", index=new.index)
    new["num"] = [np.nan, 1.0]
    out = transformer.transform(new)
    assert not np.isnan(out).any()
    assert out[0, -1] == -1  # unknown city gets the ordinal code for unknown


def test_transformer_learns_from_train_only() -> None:
    parts = split(iris())
    X_train = parts["train"].drop(columns="target")
    transformer = build_transformer(X_train).fit(X_train)
    scaler = transformer.named_transformers_["numeric"].named_steps["scale"]
    assert scaler.n_samples_seen_ == len(X_train)
    assert scaler.mean_ == pytest.approx(X_train.mean().to_numpy())
    assert scaler.mean_ != pytest.approx(iris().drop(columns="target").mean().to_numpy())
