"""Where the known-cost sampler's candidates come from.

A ``CandidateSpace`` is what the sampler needs of a search space: complete a partial
parameter set into a valid one (conditional parameters drawn where missing), its exact cost
and its surrogate features. Small spaces are enumerated once; spaces too large for that (a
per-layer bit allocation of a 20-layer network has ~10^19 members) get a fresh pool at every
ask, generated from the current front:

- local moves: one parameter changed to a neighbouring value (one layer's bits or width, the
  depth -- a layer added or removed --, the timesteps), the rest completed;
- crossover: each parameter taken from one of two front members;
- feasible random draws;

every one repaired to the budget by lowering numeric choices one step at a time until it fits
(HAQ's "action wall"), so every candidate is feasible by construction. ``ProductSpace`` covers a
plain Optuna study over fixed distributions; bitnas's conditional spaces implement the same
interface (``bitnas.search.known_cost_bitnas``).
"""

from __future__ import annotations

import abc
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution

__all__ = ["CandidateSpace", "Completed", "ProductSpace", "key_of"]

Params = Mapping[str, Any]
#: A valid parameter set with, per parameter, the options it had (numeric ones ascending).
Completed = tuple[dict[str, Any], dict[str, tuple[Any, ...]]]

#: Spaces up to this size are enumerated once; larger ones get a generated pool per ask.
ENUMERATE_LIMIT = 100_000
#: Steps of budget repair tried before a draw is given up.
MAX_REPAIR_STEPS = 200


def key_of(params: Params) -> str:
    """The identity of a parameter set (order-independent)."""
    return json.dumps({k: params[k] for k in sorted(params)}, default=str)


def _numeric(options: Sequence[Any]) -> bool:
    return all(isinstance(o, (int, float)) and not isinstance(o, bool) for o in options)


class CandidateSpace(abc.ABC):
    """The sampler's view of a search space. Subclasses provide ``complete``, ``cost`` and
    ``features`` (with ``is_categorical``); the moves, crossover and repair are shared."""

    #: per feature column: True if it holds integer category codes (Hamming distance)
    is_categorical: np.ndarray
    #: the feature column holding the scaled log cost, the regressor of the model's trend
    #: (every space here puts it last)
    log_cost_column: int = -1

    @abc.abstractmethod
    def complete(self, params: Params, rng: np.random.Generator) -> Completed:
        """A valid parameter set that keeps every value of ``params`` the space allows
        there, the other parameters drawn uniformly; with the options of each parameter."""

    @abc.abstractmethod
    def cost(self, params: Params) -> float:
        """The exact cost of a valid parameter set (> 0)."""

    @abc.abstractmethod
    def features(self, params: Params) -> np.ndarray:
        """The surrogate's feature vector of a valid parameter set."""

    @abc.abstractmethod
    def distributions(self) -> dict[str, BaseDistribution]:
        """The Optuna distribution every parameter of the space is suggested with."""

    def size(self) -> float:
        """The number of parameter sets (``math.inf`` if unknown or unbounded)."""
        return math.inf

    def enumerate(self) -> list[dict[str, Any]] | None:
        """Every parameter set, or None if the space is too large to list."""
        return None

    # -- shared operations -----------------------------------------------------------------
    def mutate(
        self, params: Params, options: Mapping[str, Sequence[Any]], rng: np.random.Generator
    ) -> Completed | None:
        """One parameter moved to a neighbouring option (numeric: one step up or down;
        otherwise any other option), the rest kept where still valid."""
        names = [n for n, o in options.items() if len(o) > 1]
        if not names:
            return None
        name = names[int(rng.integers(len(names)))]
        opts = options[name]
        i = list(opts).index(params[name])
        if _numeric(opts):
            j = i + (1 if rng.random() < 0.5 else -1)
            j = min(max(j, 0), len(opts) - 1)
            if j == i:
                j = i + 1 if i == 0 else i - 1
        else:
            j = int(rng.integers(len(opts) - 1))
            j += j >= i
        return self.complete({**params, name: opts[j]}, rng)

    def floor(self, done: Completed, rng: np.random.Generator) -> Completed:
        """Every numeric choice lowered to its least option, again after each completion
        (a lower depth changes which choices there are), until nothing changes: the
        cheapest member that agrees with ``done``'s other choices."""
        params, options = done
        for _ in range(MAX_REPAIR_STEPS):
            low = {n: o[0] for n, o in options.items() if _numeric(o) and params[n] != o[0]}
            if not low:
                break
            params, options = self.complete({**params, **low}, rng)
        return params, options

    def crossover(self, a: Params, b: Params, rng: np.random.Generator) -> Completed:
        """Each parameter from ``a`` or ``b`` at random (one missing in either is drawn by
        ``complete``)."""
        child = {}
        for name in set(a) | set(b):
            src = a if (name in a and (name not in b or rng.random() < 0.5)) else b
            child[name] = src[name]
        return self.complete(child, rng)

    def repair(
        self,
        done: Completed,
        budget: float | None,
        rng: np.random.Generator,
        keep: Mapping[str, Any] | None = None,
    ) -> Completed | None:
        """Lower numeric choices (not in ``keep``), chosen at random, one step each, until
        the cost fits ``budget``; None if nothing is left to lower. Far over the budget
        several choices are lowered per step (a share of them growing with the excess), so
        a random draw of a per-layer space at 10x the budget is repaired in a few builds
        instead of one build per lowered choice."""
        if budget is None:
            return done
        params, options = done
        for _ in range(MAX_REPAIR_STEPS):
            c = self.cost(params)
            if c <= budget:
                return params, options
            lower = [
                n
                for n, o in options.items()
                if len(o) > 1 and _numeric(o) and n not in (keep or {}) and o[0] != params[n]
            ]
            if not lower:
                return None
            k = min(len(lower), max(1, int(len(lower) * (1.0 - budget / c) / 2)))
            step = dict(params)
            for i in rng.choice(len(lower), size=k, replace=False):
                o = list(options[lower[i]])
                step[lower[i]] = o[o.index(params[lower[i]]) - 1]
            params, options = self.complete(step, rng)
        return None


def _options(name: str, dist: BaseDistribution) -> tuple[Any, ...]:
    if isinstance(dist, CategoricalDistribution):
        ch = tuple(dist.choices)
        return tuple(sorted(ch)) if _numeric(ch) else ch
    if isinstance(dist, IntDistribution):
        step = 1 if dist.log else dist.step
        n = (dist.high - dist.low) // step + 1
        if n <= 4096:
            return tuple(range(dist.low, dist.high + 1, step))
    raise ValueError(
        f"KnownCostSampler needs a finite space: parameter {name!r} is {dist!r}; use "
        "categorical or integer parameters (or pass `candidates`)"
    )


class ProductSpace(CandidateSpace):
    """Every combination of fixed Optuna distributions (a plain study's search space).

    Features: each numeric parameter's log value scaled to [0, 1] over its options, each
    other parameter as a category code, and the log cost; or ``features(params)`` if given
    (numeric, treated as continuous), the log cost appended.
    """

    def __init__(
        self,
        search_space: Mapping[str, BaseDistribution],
        cost: Callable[[Params], float],
        features: Callable[[Params], Sequence[float]] | None = None,
    ) -> None:
        self._dists = dict(search_space)
        self._opts = {n: _options(n, d) for n, d in self._dists.items()}
        self._cost = cost
        self._features = features
        self._log_cost = (0.0, 1.0)
        # parameters sharing one list of options (the operation of each edge of a cell, the
        # bits of each layer): how often each option occurs among them is a feature that
        # generalises across positions, as the number of 3x3 convolutions in a cell does
        groups: dict[tuple[Any, ...], list[str]] = {}
        for n, o in self._opts.items():
            groups.setdefault(o, []).append(n)
        self._groups = [(o, ns) for o, ns in groups.items() if len(ns) > 1 and len(o) > 1]
        if features is None:
            cat = [not _numeric(o) for o in self._opts.values()]
            cat += [False] * sum(len(o) for o, _ in self._groups)
        else:
            cat = [False] * len(features(self.complete({}, np.random.default_rng(0))[0]))
        self.is_categorical = np.array([*cat, False])

    def set_cost_range(self, lo: float, hi: float) -> None:
        """Scale the log-cost feature to [0, 1] over [lo, hi]."""
        self._log_cost = (math.log(lo), max(math.log(hi) - math.log(lo), 1e-12))

    def distributions(self) -> dict[str, BaseDistribution]:
        return dict(self._dists)

    def size(self) -> float:
        return float(math.prod(len(o) for o in self._opts.values()))

    def enumerate(self) -> list[dict[str, Any]] | None:
        if self.size() > ENUMERATE_LIMIT:
            return None
        import itertools

        names = list(self._opts)
        return [
            dict(zip(names, combo, strict=True))
            for combo in itertools.product(*(self._opts[n] for n in names))
        ]

    def complete(self, params: Params, rng: np.random.Generator) -> Completed:
        out = {}
        for n, o in self._opts.items():
            v = params.get(n)
            out[n] = v if v in o else o[int(rng.integers(len(o)))]
        return out, dict(self._opts)

    def cost(self, params: Params) -> float:
        return float(self._cost(params))

    def features(self, params: Params) -> np.ndarray:
        lo, span = self._log_cost
        c = (math.log(self.cost(params)) - lo) / span
        if self._features is not None:
            return np.array([*map(float, self._features(params)), c])
        f = []
        for n, o in self._opts.items():
            v = params[n]
            if not _numeric(o):
                f.append(float(o.index(v)))
            elif len(o) == 1:
                f.append(0.0)
            else:
                pos = (
                    [math.log(x) if x > 0 else x for x in (o[0], o[-1], v)]
                    if o[0] > 0
                    else [
                        float(o[0]),
                        float(o[-1]),
                        float(v),
                    ]
                )
                f.append((pos[2] - pos[0]) / ((pos[1] - pos[0]) or 1.0))
        for o, ns in self._groups:
            vals = [params[n] for n in ns]
            f += [vals.count(v) / len(ns) for v in o]
        return np.array([*f, c])
