"""Predictors of metrics from architecture features (torch-free).

Every predictor has ``fit(X, y)`` and ``predict(X) -> (mean, std)``; ``std``
is the predictor's own uncertainty (zeros where it has none). Models come
from scikit-learn. Create them by name with :func:`create_predictor`.
"""

from lightnas.predictors.models import PREDICTORS, Predictor, WarpedPredictor, create_predictor

__all__ = ["PREDICTORS", "Predictor", "WarpedPredictor", "create_predictor"]
