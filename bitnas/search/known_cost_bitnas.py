"""The known-cost sampler on a bitnas problem: candidates from the space, features from the
architecture, cost and budget from the problem."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

from bitnas.errors import SpecError
from bitnas.search.known_cost import KnownCostSampler, _key
from bitnas.search.problem import Problem
from bitnas.spaces.architecture import Architecture

__all__ = ["CANDIDATE_POOL", "ENUMERATE_LIMIT", "architecture_features", "known_cost_sampler"]

#: Spaces up to this size are enumerated; larger ones are represented by a fixed pool of
#: ``CANDIDATE_POOL`` feasible architectures drawn uniformly (seeded by the study seed).
ENUMERATE_LIMIT = 100_000
CANDIDATE_POOL = 20_000


def architecture_features(arch: Architecture) -> list[float]:
    """What the accuracy surrogate sees of an architecture: size and precision of its layers
    (log scales), timesteps and the levels an activation can express."""
    hidden = [layer for layer in arch.layers if layer.abits is not None]
    widths = [float(layer.out_ch) for layer in hidden] or [float(arch.num_classes)]
    wbits = [float(layer.wbits) for layer in arch.layers]
    abits = [float(layer.abits or 0) for layer in hidden] or [0.0]
    t = arch.timesteps
    # T steps of b-bit activations express T*(2^b - 1) + 1 levels.
    levels = [t * (2 ** int(a) - 1) + 1 for a in abits]
    return [
        float(len(arch.layers)),
        math.log2(min(widths)),
        math.log2(sum(widths) / len(widths)),
        math.log2(min(wbits)),
        sum(math.log2(w) for w in wbits) / len(wbits),
        min(abits),
        sum(abits) / len(abits),
        math.log2(t),
        math.log2(min(levels)),
        sum(math.log2(v) for v in levels) / len(levels),
        float(arch.input_encoding == "rate"),
    ]


def _distributions(problem: Problem, params: list[dict[str, Any]]) -> dict[str, Any]:
    """The Optuna distributions the space suggests its parameters with (from each distinct
    set of parameter names, replayed through a FixedTrial)."""
    import optuna

    out: dict[str, Any] = {}
    shapes: set[tuple[str, ...]] = set()
    for p in params:
        shape = tuple(sorted(p))
        if shape in shapes:
            continue
        shapes.add(shape)
        ft = optuna.trial.FixedTrial(p)
        problem.space.sample(ft)
        out.update(ft.distributions)
    return out


def known_cost_sampler(problem: Problem, *, seed: int) -> KnownCostSampler:
    """A ``KnownCostSampler`` over ``problem``'s space, cost and budget."""
    space = problem.space
    if space.size() <= ENUMERATE_LIMIT:
        pairs = list(space.grid_with_params())
    else:
        rng = random.Random(seed)
        pairs, seen = [], set()
        for _ in range(CANDIDATE_POOL * 20):
            params, arch = space.sample_uniform_with_params(rng)
            k = _key(params)
            if k not in seen and problem.budget.allows(problem.cost(arch)):
                seen.add(k)
                pairs.append((params, arch))
                if len(pairs) >= CANDIDATE_POOL:
                    break
    archs = {_key(p): a for p, a in pairs}
    costs = {k: float(problem.cost(a)) for k, a in archs.items()}
    feats = {k: architecture_features(a) for k, a in archs.items()}
    if not any(problem.budget.allows(c) for c in costs.values()):
        raise SpecError("the known-cost sampler found no architecture within the budget")

    def lookup(table: dict[str, Any], params: Mapping[str, Any]) -> Any:
        k = _key(params)
        if k not in table:  # a parameter set outside the candidates (another space's trial)
            arch = space.from_params(params)
            archs[k], costs[k], feats[k] = arch, problem.cost(arch), architecture_features(arch)
        return table[k]

    return KnownCostSampler(
        cost=lambda p: lookup(costs, p),
        budget=problem.budget.bitops,
        candidates=[p for p, _ in pairs],
        search_space=_distributions(problem, [p for p, _ in pairs]),
        features=lambda p: lookup(feats, p),
        reference=0.0,  # accuracy: the bitnas hypervolume's reference (search/pareto.py)
        seed=seed,
    )
