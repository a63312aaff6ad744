"""bitnas: search neural architectures and their bit allocation under a BitOps budget.

import bitnas
result = bitnas.run("studies/digits.toml")
result.front()
"""

from __future__ import annotations

from bitnas.errors import (
    BitnasError,
    BudgetError,
    EvaluationError,
    RegistryError,
    SpecError,
    StorageError,
)
from bitnas.spaces import Architecture, Budget, bitops, cost_breakdown
from bitnas.studies import StudyResult, StudySpec, load_spec, open_result, run

__version__ = "0.1.0"

__all__ = [
    "Architecture",
    "BitnasError",
    "Budget",
    "BudgetError",
    "EvaluationError",
    "RegistryError",
    "SpecError",
    "StorageError",
    "StudyResult",
    "StudySpec",
    "bitops",
    "cost_breakdown",
    "load_spec",
    "open_result",
    "run",
]
