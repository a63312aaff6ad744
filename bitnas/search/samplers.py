"""Optuna samplers, selectable by name. Every one reads Optuna 5's ``trial.set_constraint``
records directly (the old ``constraints_func`` argument is deprecated in Optuna 5)."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

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


class _PrunedCurvesHidden:
    """A view of a study whose PRUNED trials carry no intermediate values (see ``_tpe``)."""

    def __init__(self, study: optuna.Study) -> None:
        self._study = study

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(self, *args: Any, **kwargs: Any) -> list[optuna.trial.FrozenTrial]:
        from optuna.trial import TrialState

        trials: list[optuna.trial.FrozenTrial] = self._study._get_trials(*args, **kwargs)
        return [
            _without_curve(t) if t.state == TrialState.PRUNED and t.intermediate_values else t
            for t in trials
        ]


def _without_curve(t: optuna.trial.FrozenTrial) -> optuna.trial.FrozenTrial:
    t = copy.copy(t)
    t.intermediate_values = {}
    return t


@SAMPLERS.register("tpe")
def _tpe(seed: int, problem: Problem | None = None) -> optuna.samplers.BaseSampler:
    import optuna

    _quiet()

    class TPE(optuna.samplers.TPESampler):
        """Optuna's TPE, able to sample in a multi-objective study with early-stopped trials.

        Optuna 5's TPE ranks a PRUNED trial by its last intermediate value through
        ``study.direction``, which raises in a multi-objective study; bitnas records the
        curve of every trial as intermediate values, so TPE is shown PRUNED trials without
        them (ranked together, after the completed ones, as TPE ranks pruned trials with no
        curve).
        """

        def _sample(
            self,
            study: optuna.Study,
            trial: optuna.trial.FrozenTrial,
            search_space: dict[str, Any],
        ) -> dict[str, Any]:
            if len(study.directions) > 1:
                study = _PrunedCurvesHidden(study)  # type: ignore[assignment]
            out: dict[str, Any] = super()._sample(study, trial, search_space)
            return out

    # multivariate + group models the conditional per-layer parameters jointly, which needs
    # far fewer trials than independent TPE on NAS spaces.
    return TPE(seed=seed, multivariate=True, group=True)


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
