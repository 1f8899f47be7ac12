"""The example estimator: scikit-learn's Huber regression under the plugin's own name, with the
ONNX converter of linear regressors registered for it, so cauce serves it through ONNX."""

from __future__ import annotations

from sklearn.linear_model import HuberRegressor


class RobustRegressor(HuberRegressor):
    """Huber regression (outliers in the target pull the fit less than in least squares)."""


def register_onnx() -> None:
    """Teach skl2onnx to convert RobustRegressor as the linear model it is."""
    from skl2onnx import update_registered_converter
    from skl2onnx.operator_converters.linear_regressor import convert_sklearn_linear_regressor
    from skl2onnx.shape_calculators.linear_regressor import calculate_linear_regressor_output_shapes

    update_registered_converter(
        RobustRegressor,
        "CauceExampleRobustRegressor",
        calculate_linear_regressor_output_shapes,
        convert_sklearn_linear_regressor,
    )
