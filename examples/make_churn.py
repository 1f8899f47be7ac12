"""Regenerate examples/churn.csv, the demo's bundled dataset (synthetic, seeded, no download)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def churn_frame(rows: int = 2000, seed: int = 7) -> pd.DataFrame:
    """A telecom-churn-like table: numbers, categories, a boolean, some gaps, a yes/no target."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 73, rows)
    contract = rng.choice(["month-to-month", "one-year", "two-year"], rows, p=[0.55, 0.25, 0.2])
    internet = rng.choice(["fiber", "dsl", "none"], rows, p=[0.45, 0.35, 0.2])
    monthly = np.round(rng.normal(65, 20, rows).clip(18, 120) + (internet == "fiber") * 15, 2)
    calls = rng.poisson(1.5, rows)
    senior = rng.random(rows) < 0.16
    logit = (
        -1.2
        - 0.05 * tenure
        + 0.025 * monthly
        + 0.45 * calls
        + 0.5 * senior
        + np.select([contract == "month-to-month", contract == "one-year"], [1.4, 0.2], -0.8)
    )
    churned = rng.random(rows) < 1 / (1 + np.exp(-logit))
    frame = pd.DataFrame(
        {
            "tenure_months": tenure,
            "monthly_charges": monthly,
            "total_charges": np.round(monthly * tenure * rng.normal(1, 0.03, rows), 2),
            "contract": contract,
            "internet": internet,
            "payment_method": rng.choice(["card", "bank", "check", "wallet"], rows),
            "support_calls": calls,
            "senior": senior,
            "churned": np.where(churned, "yes", "no"),
        }
    )
    gaps = rng.random(rows) < 0.03
    frame.loc[gaps, "total_charges"] = np.nan
    return frame


if __name__ == "__main__":
    churn_frame().to_csv(Path(__file__).with_name("churn.csv"), index=False)
