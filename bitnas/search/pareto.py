"""Pareto dominance, as pure functions over objective vectors.

Optuna computes fronts only over trials inside a study (and its helpers are private), while
reports and exports need them over plain arrays, hence this small kernel.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["dominates", "pareto_mask"]


def _as_min(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    signs = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    out: np.ndarray = np.asarray(values, dtype=float) * signs
    return out


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[str]) -> bool:
    """True if ``a`` is no worse than ``b`` in every objective and better in one."""
    x, y = _as_min(np.array([a, b]), directions)
    return bool(np.all(x <= y) and np.any(x < y))


def pareto_mask(
    values: np.ndarray | Sequence[Sequence[float]], directions: Sequence[str]
) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``values`` ([n, m]).

    Duplicated points are all kept (none dominates its copy).
    """
    v = _as_min(np.asarray(values, dtype=float).reshape(-1, len(directions)), directions)
    n = len(v)
    mask = np.ones(n, dtype=bool)
    for i in range(n):
        no_worse = np.all(v <= v[i], axis=1)
        better = np.any(v < v[i], axis=1)
        if np.any(no_worse & better):
            mask[i] = False
    return mask
