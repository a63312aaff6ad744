"""Pareto dominance and hypervolume, as pure functions over objective vectors.

Optuna computes fronts only over trials inside a study (and its helpers are private), while
reports and exports need them over plain arrays, hence this small kernel. The hypervolume
itself is Optuna's exact WFG implementation (``optuna._hypervolume``, the one behind
``plot_hypervolume_history``); only the bitnas convention around it is defined here.

The bitnas hypervolume of an (accuracy, cost) front (``front_hypervolume``) is measured with a
fixed, documented reference point, so numbers of different runs compare:

- accuracy on a linear axis, reference 0 (a classifier that is always wrong);
- cost on a log axis, normalised so that the cheapest architecture of the space is at 0 and
  the budget (the reference) at 1: ``x = log(cost / cost_min) / log(budget / cost_min)``.

The result lies in [0, 1]: 1 would be 100% accuracy at the cheapest cost. Points over budget
contribute nothing. The log axis gives each factor of cost equal weight, as BitOps span orders
of magnitude; on a linear axis the cheap half of a front would be invisible.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["dominates", "front_hypervolume", "hypervolume", "pareto_mask", "pareto_ranks"]


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

    Duplicated points are all kept (none dominates its copy). Two objectives (every bitnas
    study) take one sort, O(n log n); more, or a NaN among the values, the pairwise check,
    O(n^2) (_pareto_mask_pairs, the definition both agree with).
    """
    v = _as_min(np.asarray(values, dtype=float).reshape(-1, len(directions)), directions)
    if v.shape[1] == 2 and not np.isnan(v).any():
        return _pareto_mask_2d(v)
    return _pareto_mask_pairs(v)


def pareto_ranks(
    values: np.ndarray | Sequence[Sequence[float]],
    directions: Sequence[str],
    *,
    depth: int | None = None,
) -> np.ndarray:
    """Non-dominated sorting: each row's layer (0: the Pareto front; 1: the front once layer 0
    is removed; ...), -1 beyond ``depth`` layers (None: every row ranked).

    The layers of NSGA-II (Deb et al. 2002), found by peeling ``pareto_mask`` layer by layer,
    O(L n log n) for two objectives. Optuna sorts the same way inside its NSGA-II sampler but
    only privately and over trials, hence this wrapper over arrays.
    """
    v = np.asarray(values, dtype=float).reshape(-1, len(directions))
    rank = np.full(len(v), -1, dtype=int)
    rest = np.arange(len(v))
    layer = 0
    while len(rest) and (depth is None or layer < depth):
        mask = pareto_mask(v[rest], directions)
        rank[rest[mask]] = layer
        rest = rest[~mask]
        layer += 1
    return rank


def _pareto_mask_pairs(v: np.ndarray) -> np.ndarray:
    """Non-dominated rows of ``v`` (every objective minimised): each row against all."""
    n = len(v)
    mask = np.ones(n, dtype=bool)
    for i in range(n):
        no_worse = np.all(v <= v[i], axis=1)
        better = np.any(v < v[i], axis=1)
        if np.any(no_worse & better):
            mask[i] = False
    return mask


def _pareto_mask_2d(v: np.ndarray) -> np.ndarray:
    """Non-dominated rows of ``v`` ([n, 2], both minimised, no NaN) after one sort by
    (x, y): a point is dominated by a point of equal x and smaller y, or by a point of
    smaller x and no greater y (the least y over all smaller x)."""
    n = len(v)
    mask = np.ones(n, dtype=bool)
    order = np.lexsort((v[:, 1], v[:, 0]))
    best: float | None = None  # the least y over the points of strictly smaller x (none yet)
    i = 0
    while i < n:
        x = v[order[i], 0]
        j = i
        while j < n and v[order[j], 0] == x:
            j += 1
        group = order[i:j]  # equal x, y ascending
        least = v[group[0], 1]
        for k in group:
            y = v[k, 1]
            if y > least or (best is not None and best <= y):
                mask[k] = False
        best = least if best is None else min(best, least)
        i = j
    return mask


def hypervolume(
    values: np.ndarray | Sequence[Sequence[float]],
    reference: Sequence[float],
    directions: Sequence[str],
) -> float:
    """Volume dominated by ``values`` ([n, m]) and bounded by ``reference``; points that do
    not dominate the reference add nothing."""
    from optuna._hypervolume import compute_hypervolume

    v = _as_min(np.asarray(values, dtype=float).reshape(-1, len(directions)), directions)
    ref = _as_min(np.asarray([reference], dtype=float), directions)[0]
    v = v[np.all(v < ref, axis=1)]
    if len(v) == 0:
        return 0.0
    return float(compute_hypervolume(v[pareto_mask(v, ["minimize"] * len(ref))], ref))


def front_hypervolume(
    accuracy: Sequence[float], cost: Sequence[float], *, budget: float, cost_min: float
) -> float:
    """The bitnas hypervolume (module docstring) of points (accuracy, cost) in [0, 1]."""
    if not 0 < cost_min < budget:
        raise ValueError(f"need 0 < cost_min < budget, got {cost_min} and {budget}")
    c = np.asarray(cost, dtype=float)
    a = np.asarray(accuracy, dtype=float)
    if len(c) == 0:
        return 0.0
    x = np.log(np.maximum(c, cost_min) / cost_min) / np.log(budget / cost_min)
    return hypervolume(np.stack([a, x], axis=1), [0.0, 1.0], ["maximize", "minimize"])
