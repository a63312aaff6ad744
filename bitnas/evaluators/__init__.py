"""Evaluators: turn an Architecture into metrics (trained models, measured activity).

Torch is imported only by the modules that train (``model``, ``training``, ...), so the
configuration types here load without it.
"""

from __future__ import annotations

from bitnas._registry import Registry
from bitnas.evaluators._base import CallableEvaluator, EvalResult, Evaluator, Report
from bitnas.evaluators.config import DataSpec, TrainSpec
from bitnas.evaluators.datasets import DATASETS, DatasetInfo, dataset_info
from bitnas.evaluators.limits import LimitedEvaluator, TrialLimits, limited
from bitnas.evaluators.table import TableEvaluator, build_table, read_table
from bitnas.evaluators.trained import TrainedEvaluator

#: Evaluator kind (``[evaluator] kind`` in a study file) -> class.
EVALUATORS: Registry[type[Evaluator]] = Registry("evaluator")
EVALUATORS.add("trained", TrainedEvaluator)
EVALUATORS.add("table", TableEvaluator)

__all__ = [
    "DATASETS",
    "EVALUATORS",
    "CallableEvaluator",
    "DataSpec",
    "DatasetInfo",
    "EvalResult",
    "Evaluator",
    "LimitedEvaluator",
    "Report",
    "TableEvaluator",
    "TrainSpec",
    "TrainedEvaluator",
    "TrialLimits",
    "build_table",
    "dataset_info",
    "limited",
    "read_table",
]
