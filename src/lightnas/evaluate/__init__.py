"""Evaluators: turn an architecture into a metric dictionary."""

from lightnas.evaluate.base import Evaluator, FunctionEvaluator

__all__ = ["Evaluator", "FunctionEvaluator"]
