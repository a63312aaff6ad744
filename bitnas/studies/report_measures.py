"""What ``bitnas report`` computes of its records, as pure functions of them: the Pareto front,
its knee, the hypervolume history, and the iso-budget cells (best trial per family and budget).

Definitions (they are also written into every report):

- *Front*: the non-dominated feasible trials in (validation accuracy up, dense BitOps down).
- *Knee*: with the front's log10(dense BitOps) and accuracy each scaled to [0, 1] over the
  front, the front point farthest above the chord joining the cheapest and the most accurate
  point (needs three points or more).
- *Hypervolume*: of the feasible trials so far, the bitnas hypervolume
  (``bitnas.search.pareto.front_hypervolume``: accuracy x log BitOps, reference (0, budget));
  the reference cost is the study's budget (or the dearest feasible trial when it has none),
  the log axis starts at half the cheapest trial's cost, so the hypervolume lies in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import mean

import numpy as np

from bitnas.search.pareto import pareto_mask
from bitnas.spaces.allocation import ORDER
from bitnas.studies.report_records import Record, Source

__all__ = ["IsoCell", "hypervolume_history", "iso_budget", "knee", "pareto_front"]


def pareto_front(recs: Sequence[Record]) -> list[Record]:
    """Non-dominated feasible records (one per architecture, the earliest), cheapest first."""
    unique: dict[str, Record] = {}
    for r in sorted(recs, key=lambda r: (r.study, r.number)):
        if r.feasible:
            unique.setdefault(r.key, r)
    pts = list(unique.values())
    if not pts:
        return []
    mask = pareto_mask(np.array([[r.val, r.bitops] for r in pts]), ["maximize", "minimize"])
    return sorted(
        (r for r, k in zip(pts, mask, strict=True) if k), key=lambda r: (r.bitops, -r.val)
    )


def knee(front: Sequence[Record]) -> Record | None:
    """The knee of a front (see the module docstring), or None for fewer than three points
    or a front with no point above its chord."""
    if len(front) < 3:
        return None
    x = np.log10(np.array([r.bitops for r in front]))
    y = np.array([r.val for r in front])
    span_x, span_y = float(np.ptp(x)), float(np.ptp(y))
    if span_x == 0.0 or span_y == 0.0:
        return None
    x, y = (x - x.min()) / span_x, (y - y.min()) / span_y
    # chord from the cheapest (x=0) to the most accurate point; distance above it
    i0, i1 = 0, int(np.argmax(y))
    dx, dy = x[i1] - x[i0], y[i1] - y[i0]
    dist = (dx * (y - y[i0]) - dy * (x - x[i0])) / math.hypot(dx, dy)
    best = int(np.argmax(dist))
    return front[best] if dist[best] > 1e-12 else None


def hypervolume_history(
    recs: Sequence[Record], budget: float, cost_min: float
) -> list[tuple[int, float]]:
    """(trial number, hypervolume of the feasible trials up to it) for each record: the
    bitnas hypervolume of ``bitnas.search.pareto.front_hypervolume`` (accuracy x log BitOps,
    reference (0, ``budget``), cost normalised from ``cost_min``), the measure
    ``bench/search_quality.py`` uses too."""
    from bitnas.search.pareto import front_hypervolume

    # Only the non-dominated points so far are kept (the hypervolume of a set is that of its
    # front): a dominated trial leaves the value as it was, and a new front point costs one
    # hypervolume over the front, not over every trial before it (quadratic in the trials:
    # 250 s for a 1,000-trial study's report).
    acc: list[float] = []
    cost: list[float] = []
    out = []
    hv = 0.0
    for r in sorted(recs, key=lambda r: r.number):
        if r.feasible and not any(
            a >= r.val and c <= r.bitops for a, c in zip(acc, cost, strict=True)
        ):
            keep = [
                (a, c) for a, c in zip(acc, cost, strict=True) if not (r.val >= a and r.bitops <= c)
            ]
            acc = [a for a, _ in keep] + [r.val]
            cost = [c for _, c in keep] + [r.bitops]
            hv = front_hypervolume(acc, cost, budget=budget, cost_min=cost_min)
        out.append((r.number, hv))
    return out


def _hv_frame(s: Source) -> tuple[float, float]:
    """(reference cost, lowest cost) of a study's hypervolume: its budget (or its dearest
    feasible trial) and its cheapest trial, a little lower so the cheapest point counts."""
    feasible = [r.bitops for r in s.records if r.feasible] or [1.0]
    ref = s.budget or max(feasible)
    lo = min(min(r.bitops for r in s.records) if s.records else ref, ref) / 2
    return ref, lo


@dataclass(frozen=True)
class IsoCell:
    """Best trial of one family at one budget, per seed (one entry without a seed sweep)."""

    allocation: str
    budget: float
    best: tuple[Record | None, ...]
    n: tuple[int, ...]

    @property
    def found(self) -> list[Record]:
        return [r for r in self.best if r is not None]

    @property
    def mean_val(self) -> float | None:
        f = self.found
        return mean(r.val for r in f) if f else None


def iso_budget(
    sources: Sequence[Source], budgets: Sequence[float], allocations: Sequence[str] = ORDER
) -> list[IsoCell]:
    """Best validation accuracy per (family, budget), per seed group of sources.

    A source that is a sweep cell contributes only to its own family and budget; a plain study
    contributes every feasible trial of the family within the budget."""
    out = []
    for b in budgets:
        for a in allocations:
            groups: dict[int | None, list[Record]] = {}
            for s in sources:
                if s.allocation is not None and (s.allocation != a or s.budget != b):
                    continue
                groups.setdefault(s.seed, [])
                groups[s.seed] += [
                    r for r in s.records if r.allocation == a and r.feasible and r.bitops <= b
                ]
            if not groups:
                groups[None] = []
            bests = tuple(
                max(g, key=lambda r: (r.val, -r.bitops)) if g else None for g in groups.values()
            )
            out.append(IsoCell(a, b, bests, tuple(len(g) for g in groups.values())))
    return out
