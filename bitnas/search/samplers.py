"""Optuna samplers, selectable by name. Every one reads Optuna 5's ``trial.set_constraint``
records directly (the old ``constraints_func`` argument is deprecated in Optuna 5)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

from bitnas._registry import Registry

if TYPE_CHECKING:
    import optuna

    from bitnas.search.problem import Problem

__all__ = ["SAMPLERS", "make_sampler"]

#: name -> ``factory(seed, problem)``; only problem-aware samplers use ``problem``.
SamplerFactory = Callable[[int, "Problem | None"], "optuna.samplers.BaseSampler"]
SAMPLERS: Registry[SamplerFactory] = Registry("sampler")


def _quiet() -> None:
    import optuna

    # Multivariate TPE and friends are flagged experimental; the flag is noise for users.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


@SAMPLERS.register("tpe")
def _tpe(seed: int, problem: Problem | None = None) -> optuna.samplers.BaseSampler:
    import optuna

    _quiet()
    # multivariate + group models the conditional per-layer parameters jointly, which needs
    # far fewer trials than independent TPE on NAS spaces.
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)


@SAMPLERS.register("nsga2")
def _nsga2(seed: int, problem: Problem | None = None) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.NSGAIISampler(seed=seed, population_size=20)


@SAMPLERS.register("nsga3")
def _nsga3(seed: int, problem: Problem | None = None) -> optuna.samplers.BaseSampler:
    import optuna

    _quiet()
    return optuna.samplers.NSGAIIISampler(seed=seed, population_size=20)


@SAMPLERS.register("gp")
def _gp(seed: int, problem: Problem | None = None) -> optuna.samplers.BaseSampler:
    import optuna

    _quiet()
    return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)


@SAMPLERS.register("random")
def _random(seed: int, problem: Problem | None = None) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


@SAMPLERS.register("qmc")
def _qmc(seed: int, problem: Problem | None = None) -> optuna.samplers.BaseSampler:
    import optuna

    _quiet()
    return optuna.samplers.QMCSampler(
        seed=seed, scramble=True, warn_independent_sampling=False, warn_asynchronous_seeding=False
    )


@SAMPLERS.register("known-cost")
def _known_cost(seed: int, problem: Problem | None = None) -> optuna.samplers.BaseSampler:
    from bitnas.search.known_cost_bitnas import known_cost_sampler

    if problem is None:
        from bitnas.errors import SpecError

        raise SpecError(
            "the known-cost sampler needs the search problem (space, cost and budget): "
            "make it with make_sampler('known-cost', seed, problem)"
        )
    return known_cost_sampler(problem, seed=seed)


def make_sampler(
    name: str, seed: int, problem: Problem | None = None
) -> optuna.samplers.BaseSampler:
    """The sampler registered as ``name``, seeded; an unknown name lists the valid ones.
    ``problem`` is needed by samplers that use the space, cost and budget (``known-cost``)."""
    return SAMPLERS.get(name)(seed, problem)
