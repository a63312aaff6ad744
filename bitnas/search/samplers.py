"""Optuna samplers, selectable by name. Every one reads Optuna 5's ``trial.set_constraint``
records directly (the old ``constraints_func`` argument is deprecated in Optuna 5)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

from bitnas._registry import Registry

if TYPE_CHECKING:
    import optuna

__all__ = ["SAMPLERS", "make_sampler"]

SamplerFactory = Callable[[int], "optuna.samplers.BaseSampler"]
SAMPLERS: Registry[SamplerFactory] = Registry("sampler")


def _quiet() -> None:
    import optuna

    # Multivariate TPE and friends are flagged experimental; the flag is noise for users.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


@SAMPLERS.register("tpe")
def _tpe(seed: int) -> optuna.samplers.BaseSampler:
    import optuna

    _quiet()
    # multivariate + group models the conditional per-layer parameters jointly, which needs
    # far fewer trials than independent TPE on NAS spaces.
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)


@SAMPLERS.register("nsga2")
def _nsga2(seed: int) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.NSGAIISampler(seed=seed, population_size=20)


@SAMPLERS.register("nsga3")
def _nsga3(seed: int) -> optuna.samplers.BaseSampler:
    import optuna

    _quiet()
    return optuna.samplers.NSGAIIISampler(seed=seed, population_size=20)


@SAMPLERS.register("gp")
def _gp(seed: int) -> optuna.samplers.BaseSampler:
    import optuna

    _quiet()
    return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)


@SAMPLERS.register("random")
def _random(seed: int) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


@SAMPLERS.register("qmc")
def _qmc(seed: int) -> optuna.samplers.BaseSampler:
    import optuna

    _quiet()
    return optuna.samplers.QMCSampler(
        seed=seed, scramble=True, warn_independent_sampling=False, warn_asynchronous_seeding=False
    )


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """The sampler registered as ``name``, seeded; an unknown name lists the valid ones."""
    return SAMPLERS.get(name)(seed)
