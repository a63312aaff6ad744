"""The candidates the known-cost sampler scores at one ask, and what it knows of each.

Enumerated spaces (at most ``ENUMERATE_LIMIT`` members) keep their feasible members; an ask
scores every untried one, or, past ``POOL_MAX`` of them, a random ``POOL_MAX`` plus the untried
neighbours of the front. Larger spaces are never listed: each ask generates moves around the
front, crossovers and feasible random draws (``CandidateSpace``), all repaired to the budget.
Either way an ask's cost is bounded by the pool, not by the space or the study.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bitnas.search.known_cost._candidates import CandidateSpace, Completed, ProductSpace, key_of

__all__ = ["POOL_MAX", "Pool"]

#: Candidates scored per ask, at most (plus the front's neighbours in enumerated spaces).
POOL_MAX = 2000
#: Generated pools: front members used as parents, moves per parent, crossovers, random draws.
PARENTS, MOVES, CROSSOVERS, DRAWS = 8, 10, 16, 32
#: Moves per parent looked up among an enumerated space's members (the rest is sampled).
LISTED_MOVES = 4
#: Random draws that estimate the cost range of a space too large to enumerate, and how
#: many of them are lowered to the floor (``CandidateSpace.floor``) for its cheapest members.
COST_PROBES = 256
FLOOR_PROBES = 32
#: Entries kept for generated candidates (beyond it the cache starts afresh).
CACHE_MAX = 200_000


@dataclass(frozen=True)
class _Entry:
    params: dict[str, Any]
    options: dict[str, tuple[Any, ...]] | None  # None: not derived yet (``Pool._options``)
    cost: float
    features: np.ndarray


def _agrees(params: Mapping[str, Any], fixed: Mapping[str, Any]) -> bool:
    return all(params.get(k, v) == v for k, v in fixed.items())


class Pool:
    """Candidates of ``space`` within ``budget``, their normalised costs on ``axis`` and
    features; ``candidates`` (parameter dicts) replaces the space's own enumeration."""

    def __init__(
        self,
        space: CandidateSpace,
        budget: float | None,
        axis: str,
        rng: np.random.Generator,
        candidates: list[dict[str, Any]] | None = None,
    ) -> None:
        self.space = space
        self.budget = budget
        self.axis = axis
        self.rng = rng
        self._cache: dict[str, _Entry | None] = {}
        self._ids: dict[str, int] = {}
        self._xa = np.zeros(0)
        self._fa = np.zeros((0, 0))
        self._floors: list[Completed] = []
        listed = candidates if candidates is not None else space.enumerate()
        if listed is not None:
            if not listed:
                raise ValueError("KnownCostSampler: no candidates")
            raw = [(key_of(p), dict(p), space.cost(p)) for p in listed]
            costs = np.array([c for _, _, c in raw])
            if not np.all(np.isfinite(costs)) or np.any(costs <= 0):
                raise ValueError("KnownCostSampler: cost(params) must be finite and > 0")
            ok = [r for r in raw if self.fits(r[2])]
            lo = float(costs.min())
            if not ok:
                raise ValueError(
                    f"KnownCostSampler: no candidate within the budget of {budget:,} "
                    f"(cheapest {lo:,})"
                )
            self._listed: list[str] | None = [k for k, _, _ in ok]
            self._listed_params = {k: p for k, p, _ in ok}
            hi = float(costs.max())
        else:
            self._listed = None
            self._listed_params = {}
            probes = [space.complete({}, rng) for _ in range(COST_PROBES)]
            # the cheapest members: the axis starts at the space's least cost, not at the
            # cheapest random draw (on the log axis a candidate below the axis's 0 is worth
            # no more than one at 0, so the search never went there: on the per-layer digits
            # space the draws' minimum was 2-13% above the least cost, and the runs that
            # missed the cheap end lost log hypervolume to TPE)
            floors: dict[str, Completed] = {}
            for d in probes[:FLOOR_PROBES]:
                f = space.floor(d, rng)
                floors.setdefault(key_of(f[0]), f)
            # ... which every generated pool then offers while they are untried
            self._floors = [f for f in floors.values() if self.fits(space.cost(f[0]))]
            costs = np.array([space.cost(p) for p, _ in [*probes, *floors.values()]])
            lo, hi = float(costs.min()), float(costs.max())
            if not any(space.repair(d, budget, rng) for d in probes[:32]):
                raise ValueError(
                    f"KnownCostSampler: no candidate within the budget of {budget:,} found by "
                    f"repairing random draws (cheapest drawn {lo:,})"
                )
        top = float(budget) if budget is not None else hi
        self._lo, self._top = min(lo, top), top
        if isinstance(space, ProductSpace):
            space.set_cost_range(self._lo, max(self._top, hi))
        for k in self._listed or ():  # every member's numbers now, not in the first asks
            self._entry(k)

    # -- what is known of a key ------------------------------------------------------------
    def fits(self, cost: float) -> bool:
        return self.budget is None or cost <= self.budget

    def _register(self, key: str, e: _Entry) -> None:
        """Give ``key`` an id whose normalised cost and features sit in growing arrays, so
        an ask reads a pool's numbers by fancy indexing instead of per-key Python."""
        n = len(self._ids)
        if n == len(self._xa):
            grow = max(1024, n)
            self._xa = np.concatenate([self._xa, np.zeros(grow)])
            width = len(e.features)
            fa = np.zeros((n + grow, width))
            fa[:n] = self._fa[:n] if len(self._fa) else 0.0
            self._fa = fa
        self._xa[n] = self._x(e.cost)
        self._fa[n] = e.features
        self._ids[key] = n

    def _entry(self, key: str) -> _Entry | None:
        if key in self._cache:
            return self._cache[key]
        params = self._listed_params.get(key)
        if params is None:
            try:  # a key is the JSON of its parameters: a trial not chosen here still counts
                params = json.loads(key)
            except ValueError:
                params = None
        e = None
        if key in self._listed_params:  # listed candidates are members as they are; their
            # options are derived only if they become parents (``_options``)
            p = dict(self._listed_params[key])
            e = _Entry(p, None, self.space.cost(p), self.space.features(p))
        elif isinstance(params, dict):
            done, options = self.space.complete(params, self.rng)
            if key_of(done) == key:  # a valid member of the space
                e = _Entry(done, options, self.space.cost(done), self.space.features(done))
        self._store(key, e)
        return e

    def _store(self, key: str, e: _Entry | None) -> None:
        if len(self._cache) >= CACHE_MAX:  # start afresh: keys are re-derived on demand
            self._cache.clear()
            self._ids.clear()
        self._cache[key] = e
        if e is not None:
            self._register(key, e)

    def _options(self, e: _Entry) -> dict[str, tuple[Any, ...]]:
        if e.options is not None:
            return e.options
        _, options = self.space.complete(e.params, self.rng)
        return {n: o for n, o in options.items() if n in e.params}

    def known(self, key: str) -> bool:
        return self._entry(key) is not None

    def params_of(self, key: str) -> dict[str, Any]:
        e = self._entry(key)
        assert e is not None
        return dict(e.params)

    def _x(self, cost: float) -> float:
        if self.axis == "linear":
            return min(max(cost / self._top, 0.0), 1.0)
        span = math.log(self._top / self._lo) if self._top > self._lo else 1.0
        return min(max(math.log(cost / self._lo) / span, 0.0), 1.0) if cost > 0 else 0.0

    def _idx(self, keys: Sequence[str]) -> np.ndarray:
        for k in keys:
            if k not in self._ids:
                self._entry(k)
        return np.fromiter((self._ids[k] for k in keys), dtype=int, count=len(keys))

    def ids(self, keys: Sequence[str]) -> np.ndarray:
        """Row numbers of ``keys`` in the arrays ``x_at`` and ``features_at`` read: look a
        pool's keys up once, then read its numbers by indexing."""
        return self._idx(keys)

    def x_at(self, ids: np.ndarray) -> np.ndarray:
        out: np.ndarray = self._xa[ids]
        return out

    def features_at(self, ids: np.ndarray) -> np.ndarray:
        out: np.ndarray = self._fa[ids]
        return out

    def x_of(self, keys: Sequence[str]) -> np.ndarray:
        """Normalised costs (0: the cheapest, 1: the budget) on the acquisition's axis."""
        return self.x_at(self._idx(keys))

    def features_of(self, keys: Sequence[str]) -> np.ndarray:
        return self.features_at(self._idx(keys))

    # -- what is proposed ------------------------------------------------------------------
    def _add(self, out: dict[str, None], done: Any, taken: Collection[str], fixed: Any) -> None:
        if done is None:
            return
        done = self.space.repair(done, self.budget, self.rng, keep=fixed)
        if done is None or not _agrees(done[0], fixed):
            return
        k = key_of(done[0])
        if k in taken or k in out:
            return
        e = self._cache.get(k)
        if e is None:
            p, o = done
            e = _Entry(p, o, self.space.cost(p), self.space.features(p))
            self._store(k, e)
        if self.fits(e.cost):
            out[k] = None

    def _draws(self, n: int, taken: Collection[str], fixed: Mapping[str, Any]) -> list[str]:
        out: dict[str, None] = {}
        for _ in range(n):
            self._add(out, self.space.complete(dict(fixed), self.rng), taken, fixed)
        return list(out)

    def _untried(self, taken: Collection[str], fixed: Mapping[str, Any]) -> list[str]:
        assert self._listed is not None
        return [
            k
            for k in self._listed
            if k not in taken and (not fixed or _agrees(self._listed_params[k], fixed))
        ]

    def startup(
        self, taken: Collection[str], fixed: Mapping[str, Any], strata: int
    ) -> dict[str, Any] | None:
        """A random untried feasible candidate from a random stratum of normalised cost."""
        keys = (
            self._untried(taken, fixed)
            if self._listed is not None
            else self._draws(2 * DRAWS, taken, fixed)
        )
        if not keys:
            return None
        x = self.x_of(keys)
        s = int(self.rng.integers(strata))
        lo, hi = s / strata, (s + 1) / strata
        inside = [k for k, v in zip(keys, x, strict=True) if lo <= v < hi or (hi >= 1 and v >= lo)]
        pick = inside or keys
        return self.params_of(pick[int(self.rng.integers(len(pick)))])

    def candidates(
        self, taken: Collection[str], fixed: Mapping[str, Any], front: Sequence[str]
    ) -> list[str]:
        """The untried feasible candidates to score now (empty: none is left)."""
        parents = list(front)
        if len(parents) > PARENTS:
            parents = [parents[i] for i in self.rng.choice(len(parents), PARENTS, replace=False)]
        if self._listed is not None:
            untried = self._untried(taken, fixed)
            if len(untried) <= POOL_MAX:
                return untried
            pick = self.rng.choice(len(untried), POOL_MAX, replace=False)
            out = dict.fromkeys(untried[i] for i in pick)
            listed = self._listed_params
            for p in parents:
                e = self._entry(p)
                if e is None:
                    continue
                opts = self._options(e)
                for _ in range(LISTED_MOVES):
                    m = self.space.mutate(e.params, opts, self.rng)
                    k = key_of(m[0]) if m is not None else None
                    if k in listed and k not in taken and _agrees(listed[k], fixed):
                        out[k] = None
            return list(out)
        out = {}
        entries = [e for e in (self._entry(p) for p in parents) if e is not None]
        for e in entries:
            opts = self._options(e)
            for _ in range(MOVES):
                self._add(out, self.space.mutate(e.params, opts, self.rng), taken, fixed)
        for _ in range(CROSSOVERS if len(entries) > 1 else 0):
            i, j = self.rng.choice(len(entries), 2, replace=False)
            self._add(
                out,
                self.space.crossover(entries[i].params, entries[j].params, self.rng),
                taken,
                fixed,
            )
        for f in self._floors:
            self._add(out, f, taken, fixed)
        out.update(dict.fromkeys(self._draws(DRAWS, set(taken) | set(out), fixed)))
        return list(out)

    def best_tried(
        self, values: Mapping[str, float], fixed: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """The feasible tried candidate of best value (agreeing with ``fixed``), for an
        exhausted space; None if there is none."""
        ok = [
            (v, k)
            for k, v in values.items()
            if (e := self._entry(k)) is not None and self.fits(e.cost) and _agrees(e.params, fixed)
        ]
        if not ok:
            if self._listed:
                good = [k for k in self._listed if _agrees(self._listed_params[k], fixed)]
                return dict(self._listed_params[good[0]]) if good else None
            return None
        return self.params_of(max(ok)[1])
