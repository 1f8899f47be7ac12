"""cauce's example plugin: what cauce finds through this package's entry points."""

from __future__ import annotations

from pydantic import BaseModel, Field

from cauce_example.models import RobustRegressor, register_onnx
from cauce_example.steps import Ratio
from shared.plugins import Estimator, FeatureStep


class RatioParams(BaseModel):
    """What a spec passes to `example.ratio`."""

    numerator: str
    denominator: str
    name: str = Field(default="", description="the new column's name; numerator_per_denominator")


ratio = FeatureStep(
    build=Ratio,
    params=RatioParams,
    trusted=("cauce_example.steps.Ratio",),
    description="Adds numerator / denominator as a new column (a gap where the denominator is 0).",
)

robust = Estimator(
    build=lambda task: RobustRegressor(),
    tasks=("regression",),
    space={"epsilon": {"uniform": [1.1, 2.0]}, "alpha": {"loguniform": [0.00001, 1.0]}},
    fixed={"max_iter": 500},
    trusted=("cauce_example.models.RobustRegressor",),
    onnx=register_onnx,
    description="Huber regression: a linear model that outliers in the target pull less.",
)
