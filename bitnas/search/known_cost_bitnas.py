"""The known-cost sampler on a bitnas problem: candidates from the space (enumerated when
small, generated and repaired to the budget when not), features from the architecture, cost
and budget from the problem."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution

from bitnas.search.known_cost import CandidateSpace, KnownCostSampler, key_of
from bitnas.search.known_cost._candidates import ENUMERATE_LIMIT, Completed
from bitnas.search.problem import Problem
from bitnas.spaces.architecture import Architecture
from bitnas.spaces.cost import in_bits, macs, params, weight_bits

__all__ = ["ENUMERATE_LIMIT", "ArchitectureSpace", "architecture_features", "known_cost_sampler"]

T = TypeVar("T")
#: Random builds that collect the space's parameter distributions and feature ranges.
PROBES = 256
#: Architectures kept built (beyond it the cache starts afresh).
ARCH_CACHE = 100_000


def architecture_features(arch: Architecture) -> list[float]:
    """What the accuracy surrogate sees of an architecture beyond its raw parameters, in
    terms that mean the same in any space (per-layer or shared bits, any depth): size
    (log MACs, weights, weight memory), precision weighted by where the work is (MACs-weighted
    weight bits and input bits), the weakest layer's precision, depth, timesteps and the levels
    an activation can express (T steps of b bits: T * (2^b - 1) + 1)."""
    hidden = [layer for layer in arch.layers if layer.abits is not None]
    widths = [float(layer.out_ch) for layer in hidden] or [float(arch.num_classes)]
    m = np.array(macs(arch), dtype=float)
    share = m / m.sum()
    wb = np.array([layer.wbits for layer in arch.layers], dtype=float)
    ib = np.array(in_bits(arch), dtype=float)
    abits = [float(layer.abits or 0) for layer in hidden] or [0.0]
    t = arch.timesteps
    levels = [t * (2 ** int(a) - 1) + 1 for a in abits]
    return [
        float(len(arch.layers)),
        math.log2(min(widths)),
        math.log2(sum(widths) / len(widths)),
        math.log2(m.sum()),
        math.log2(sum(params(arch))),
        math.log2(weight_bits(arch)),
        float(share @ np.log2(wb)),
        float(share @ np.log2(ib)),
        math.log2(wb.min()),
        math.log2(wb[0]),
        math.log2(wb[-1]),
        min(abits),
        sum(abits) / len(abits),
        math.log2(t),
        math.log2(min(levels)),
        sum(math.log2(v) for v in levels) / len(levels),
        float(arch.input_encoding == "rate"),
    ]


def _numeric(options: Sequence[Any]) -> bool:
    return all(isinstance(o, (int, float)) and not isinstance(o, bool) for o in options)


#: (name, choices) -> (ordered options, distribution): made once, not at every build
_OPTIONS: dict[tuple[str, tuple[Any, ...]], tuple[tuple[Any, ...], BaseDistribution]] = {}


class _Completing:
    """A chooser that keeps given values where valid and draws the others; records each
    parameter's value, ordered options and Optuna distribution."""

    def __init__(self, given: Mapping[str, Any], rng: np.random.Generator) -> None:
        self.given, self.rng = given, rng
        self.params: dict[str, Any] = {}
        self.options: dict[str, tuple[Any, ...]] = {}
        self.dists: dict[str, BaseDistribution] = {}

    @staticmethod
    def _described(name: str, choices: Sequence[Any]) -> tuple[tuple[Any, ...], BaseDistribution]:
        k = (name, tuple(choices))
        if k not in _OPTIONS:
            opts = tuple(sorted(choices)) if _numeric(choices) else tuple(choices)
            _OPTIONS[k] = (opts, CategoricalDistribution(list(choices)))
        return _OPTIONS[k]

    def integer(self, name: str, low: int, high: int) -> int:
        if low == high:
            return low
        v = self.given.get(name)
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
            v = int(self.rng.integers(low, high + 1))
        self.params[name], self.options[name] = v, tuple(range(low, high + 1))
        self.dists[name] = IntDistribution(low, high)
        return v

    def categorical(self, name: str, choices: Sequence[T]) -> T:
        if len(choices) == 1:
            return choices[0]
        v = self.given.get(name)
        if v not in choices:
            v = choices[int(self.rng.integers(len(choices)))]
        self.params[name] = v
        self.options[name], self.dists[name] = self._described(name, choices)
        return v  # type: ignore[return-value]


class ArchitectureSpace(CandidateSpace):
    """A bitnas search space as the known-cost sampler sees it (conditional parameters:
    per-layer ones exist only for layers that exist). Features: ``architecture_features``
    and each raw parameter (numeric ones scaled over their options, absent ones at -0.25,
    the others as category codes), each summary scaled over the range seen in random draws."""

    def __init__(self, problem: Problem, seed: int = 0) -> None:
        self.problem = problem
        self._archs: dict[str, Architecture] = {}
        self._dists: dict[str, BaseDistribution] = {}
        self._opts: dict[str, tuple[Any, ...]] = {}
        self._last: tuple[Mapping[str, Any] | None, Architecture | None] = (None, None)
        rng = np.random.default_rng(seed)
        listed = self.enumerate()
        probes = listed if listed is not None and len(listed) <= 4 * PROBES else None
        if probes is None:
            probes = [self.complete({}, rng)[0] for _ in range(PROBES)]
        else:
            for p in probes:
                self.complete(p, rng)
        names = sorted(self._opts)
        self._names = names
        self.is_categorical = np.array(
            [not _numeric(self._opts[n]) for n in names]
            + [False] * len(self._summary_raw(probes[0]))
        )
        s = np.array([self._summary_raw(p) for p in probes])
        self._s_lo, self._s_span = s.min(0), np.where(np.ptp(s, 0) > 0, np.ptp(s, 0), 1.0)

    def arch(self, params: Mapping[str, Any]) -> Architecture:
        if params is self._last[0] and self._last[1] is not None:  # just completed
            return self._last[1]
        k = key_of(params)
        a = self._archs.get(k)
        if a is None:
            a = self.problem.space.from_params(params)
            if len(self._archs) >= ARCH_CACHE:
                self._archs.clear()
            self._archs[k] = a
        return a

    def complete(self, params: Mapping[str, Any], rng: np.random.Generator) -> Completed:
        c = _Completing(params, rng)
        arch = self.problem.space.build(c)
        for n, d in c.dists.items():
            if n not in self._dists:
                self._dists[n], self._opts[n] = d, c.options[n]
        if len(self._archs) >= ARCH_CACHE:
            self._archs.clear()
        self._archs[key_of(c.params)] = arch
        # the candidate just completed is costed (budget repair) and featurised next: kept
        # by identity, that skips re-keying it (JSON of every parameter) each time
        self._last = (c.params, arch)
        return c.params, c.options

    def cost(self, params: Mapping[str, Any]) -> float:
        return float(self.problem.cost(self.arch(params)))

    def _summary_raw(self, params: Mapping[str, Any]) -> list[float]:
        return [*architecture_features(self.arch(params)), math.log(self.cost(params))]

    def features(self, params: Mapping[str, Any]) -> np.ndarray:
        raw = []
        for n in self._names:
            o, v = self._opts[n], params.get(n)
            if not _numeric(o):
                raw.append(float(o.index(v)) if v in o else float(len(o)))
            elif v is None:
                raw.append(-0.25)
            else:
                lg = [math.log(x) if o[0] > 0 else float(x) for x in (o[0], o[-1], v)]
                raw.append((lg[2] - lg[0]) / ((lg[1] - lg[0]) or 1.0))
        s = (np.array(self._summary_raw(params)) - self._s_lo) / self._s_span
        return np.concatenate([np.array(raw), s])

    def distributions(self) -> dict[str, BaseDistribution]:
        return dict(self._dists)

    def size(self) -> float:
        return float(self.problem.space.size())

    def enumerate(self) -> list[dict[str, Any]] | None:
        if self.problem.space.size() > ENUMERATE_LIMIT:
            return None
        out = []
        for p, a in self.problem.space.grid_with_params():
            self._archs[key_of(p)] = a
            out.append(p)
        return out


def known_cost_sampler(
    problem: Problem, *, seed: int, cost_axis: str = "log", reference: float | None = 0.0
) -> KnownCostSampler:
    """A ``KnownCostSampler`` over ``problem``'s space, cost and budget. ``cost_axis`` and
    ``reference`` default to the hypervolume bitnas reports (``bitnas.search.pareto``: log
    cost, accuracy reference 0)."""
    from bitnas.errors import SpecError

    try:
        space = ArchitectureSpace(problem, seed=seed)
        return KnownCostSampler(
            budget=problem.budget.bitops,
            space=space,
            reference=reference,
            cost_axis=cost_axis,  # type: ignore[arg-type]
            seed=seed,
        )
    except ValueError as e:
        raise SpecError(f"the known-cost sampler cannot use this space: {e}") from None
