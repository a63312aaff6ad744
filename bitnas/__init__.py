"""bitnas: search neural architectures and their bit allocation under a BitOps budget.

    import bitnas
    result = bitnas.run("studies/digits.toml")
    result.front()

The heavy parts (optuna, pyarrow, torch) load on first use, so ``import bitnas.spaces`` stays
pure Python + numpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from bitnas.errors import (
    BitnasError,
    BudgetError,
    EvaluationError,
    ExportError,
    RegistryError,
    SpecError,
    StorageError,
)

if TYPE_CHECKING:
    from bitnas.spaces import Architecture, Budget, bitops, cost_breakdown
    from bitnas.studies import StudyResult, StudySpec, load_spec, open_result, run

__version__ = "0.1.0"

_LAZY = {
    "Architecture": "bitnas.spaces",
    "Budget": "bitnas.spaces",
    "bitops": "bitnas.spaces",
    "cost_breakdown": "bitnas.spaces",
    "StudyResult": "bitnas.studies",
    "StudySpec": "bitnas.studies",
    "load_spec": "bitnas.studies",
    "open_result": "bitnas.studies",
    "run": "bitnas.studies",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'bitnas' has no attribute {name!r}")


__all__ = [
    "Architecture",
    "BitnasError",
    "Budget",
    "BudgetError",
    "EvaluationError",
    "ExportError",
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
