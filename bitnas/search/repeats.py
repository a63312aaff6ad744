"""Repeated proposals: stored out of the way of the front, shown to samplers as before.

A proposal of an architecture the study already trained is not trained again: it re-tells
that trial's result, because a sampler learns from its own repeats (TPE's densities, NSGA-II's
population and generations, GP's and the known-cost sampler's observations). Stored COMPLETE,
such repeats would stand in every reader's list of results: optuna-dashboard's Best Trials and
Pareto plot, ``study.best_trials`` and the dashboard's count of COMPLETE trials would show an
architecture once per repeat.

So a repeat is stored PRUNED, with the values it re-tells kept in its ``repeat_values`` user
attribute (beside ``duplicate_of``, the trial that trained the architecture): the stored
COMPLETE trials are exactly the trained ones, and every reader of the storage (the dashboard,
``study.best_trials``, ``bitnas pareto``) sees the same front. The study's sampler is wrapped
in ``RepeatsShown``: every sampler call gets a view of the study in which each repeat is
COMPLETE with its values again, so a sampler receives exactly the trials it received when
repeats were stored COMPLETE (``tests/search/test_repeats.py`` checks that proposals are
unchanged). Optuna has no hook for this (a sampler reads trials straight from
``study._get_trials``), hence the view.
"""

from __future__ import annotations

import copy
from collections.abc import Container, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

__all__ = ["ATTR_REPEAT_VALUES", "RepeatsShown", "as_sampled", "is_repeat", "show_repeats"]

#: The values a repeat re-tells (those of the trial that trained its architecture).
ATTR_REPEAT_VALUES = "repeat_values"


def is_repeat(t: FrozenTrial) -> bool:
    """A stored repeat of a trained (COMPLETE) trial's result."""
    return t.state == TrialState.PRUNED and ATTR_REPEAT_VALUES in t.user_attrs


def as_sampled(t: FrozenTrial) -> FrozenTrial:
    """``t`` as samplers see it: a repeat COMPLETE with the values it re-tells."""
    if not is_repeat(t):
        return t
    shown = copy.copy(t)
    shown.state = TrialState.COMPLETE
    shown.values = [float(v) for v in t.user_attrs[ATTR_REPEAT_VALUES]]
    return shown


class _StudyView:
    """A study whose trial lists show repeats COMPLETE (``as_sampled``); everything else,
    the storage included, is the study's own."""

    def __init__(self, study: optuna.Study, shown: dict[int, FrozenTrial]) -> None:
        self._study = study
        self._shown = shown

    def _as_sampled(self, t: FrozenTrial) -> FrozenTrial:
        if not is_repeat(t):
            return t
        # a finished repeat never changes: copy it once, not at every sampler call
        cached = self._shown.get(t._trial_id)
        if cached is None:
            cached = self._shown[t._trial_id] = as_sampled(t)
        return cached

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(
        self,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
        use_cache: bool = False,
    ) -> list[FrozenTrial]:
        wanted: tuple[TrialState, ...] | None = (
            None if states is None else tuple(s for s in TrialState if s in states)
        )
        asked = wanted
        if wanted is not None and TrialState.COMPLETE in wanted and TrialState.PRUNED not in wanted:
            asked = (*wanted, TrialState.PRUNED)  # repeats are stored PRUNED
        trials = self._study._get_trials(deepcopy=deepcopy, states=asked, use_cache=use_cache)
        shown = [self._as_sampled(t) for t in trials]
        return shown if wanted is None else [t for t in shown if t.state in wanted]

    def get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        return self._get_trials(deepcopy=deepcopy, states=states, use_cache=False)

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials(deepcopy=True)


class RepeatsShown(optuna.samplers.BaseSampler):
    """``inner``, given in every call a view of the study where repeats are COMPLETE."""

    def __init__(self, inner: optuna.samplers.BaseSampler) -> None:
        self.inner = inner
        self._shown: dict[int, FrozenTrial] = {}  # trial id -> the repeat as shown

    def __getattr__(self, name: str) -> Any:  # the inner sampler's own attributes
        if name in ("inner", "_shown"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _view(self, study: optuna.Study) -> optuna.Study:
        return _StudyView(study, self._shown)  # type: ignore[return-value]

    def __str__(self) -> str:
        return str(self.inner)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self.inner.infer_relative_search_space(self._view(study), trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self.inner.sample_relative(self._view(study), trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self.inner.sample_independent(
            self._view(study), trial, param_name, param_distribution
        )

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.inner.before_trial(self._view(study), trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        if state == TrialState.PRUNED and ATTR_REPEAT_VALUES in trial.user_attrs:
            values = [float(v) for v in trial.user_attrs[ATTR_REPEAT_VALUES]]
            state = TrialState.COMPLETE
        self.inner.after_trial(self._view(study), trial, state, values)


def show_repeats(study: optuna.Study) -> None:
    """Wrap ``study``'s sampler in ``RepeatsShown`` (once)."""
    if not isinstance(study.sampler, RepeatsShown):
        study.sampler = RepeatsShown(study.sampler)
