"""Repeats are stored out of the front's way (PRUNED, values in ``repeat_values``) while every
sampler is shown them COMPLETE, exactly as when they were stored COMPLETE."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState
from optuna_dashboard._pareto_front import get_pareto_front_trials

from bitnas.search import Problem, front_trials, make_sampler, optimize
from bitnas.search import trials as trials_mod
from bitnas.search.repeats import ATTR_REPEAT_VALUES, RepeatsShown, as_sampled, is_repeat
from bitnas.spaces import Budget, bitops
from tests.conftest import SpyEvaluator, small_space

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _problem() -> Problem:
    space = small_space(depth=(1, 2), width=(16,), wbits=(2, 8), abits=(1, 4), timesteps=(1,))
    costs = sorted(bitops(a) for a in space.grid())
    return Problem(space=space, evaluator=SpyEvaluator(), budget=Budget(costs[len(costs) // 2]))


def _study(name: str, seed: int = 0) -> optuna.Study:
    problem = _problem()
    return optuna.create_study(
        directions=problem.directions, sampler=make_sampler(name, seed, problem)
    )


def _old_tell_duplicate(study: optuna.Study, p: trials_mod.Proposal) -> optuna.trial.FrozenTrial:
    """How a repeat was stored before: COMPLETE, with the values copied."""
    src = p.duplicate_of
    assert src is not None and src.values is not None
    for k in trials_mod.MEASURED_ATTRS:
        if k in src.user_attrs:
            p.trial.set_user_attr(k, src.user_attrs[k])
    for step, v in src.intermediate_values.items():
        p.trial.storage.set_trial_intermediate_value(p.trial._trial_id, step, v)
    p.trial.set_user_attr(trials_mod.ATTR_DUPLICATE, src.number)
    return study.tell(p.trial, list(src.values))


def test_repeats_are_pruned_with_their_values_and_the_stored_front_has_no_repeat():
    problem = _problem()
    study = optuna.create_study(
        directions=problem.directions, sampler=optuna.samplers.RandomSampler(seed=0)
    )
    optimize(study, problem, 15, progress=False)  # stored COMPLETE, 11 repeats would join the front
    trials = study.trials
    repeats = [t for t in trials if "duplicate_of" in t.user_attrs]
    assert repeats, "the tiny space must make the sampler repeat itself"
    for t in repeats:
        src = trials[t.user_attrs["duplicate_of"]]
        assert t.state == TrialState.PRUNED and is_repeat(t)
        assert t.user_attrs[ATTR_REPEAT_VALUES] == src.values
        assert as_sampled(t).state == TrialState.COMPLETE and as_sampled(t).values == src.values
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    keys = [t.user_attrs["arch_key"] for t in complete]
    assert len(keys) == len(set(keys)) == len(problem.evaluator.seen)  # type: ignore[attr-defined]
    # every reader of the storage sees bitnas's front: optuna-dashboard's Best Trials (its own
    # front of the COMPLETE trials, which keeps ties) and Optuna's best_trials
    front = {t.number for t in front_trials(study)}
    assert {t.number for t in get_pareto_front_trials(trials, study.directions)} == front
    assert {t.number for t in study.best_trials} == front
    assert isinstance(study.sampler, RepeatsShown)


@pytest.mark.parametrize("name", ["tpe", "nsga2", "random", "gp", "known-cost", "qmc"])
def test_every_sampler_proposes_what_it_proposed_when_repeats_were_complete(name, monkeypatch):
    """The same seeded study, run with repeats stored COMPLETE (the old protocol, no view)
    and with repeats stored PRUNED behind the view: the same architectures in the same
    order, so every sampler learns from repeats exactly what it learnt before."""
    trials = 8 if name == "gp" else 15
    new = _study(name)
    optimize(new, _problem(), trials, progress=False)
    assert any(is_repeat(t) for t in new.trials) or name == "known-cost"

    with monkeypatch.context() as m:
        m.setattr(trials_mod, "tell_duplicate", _old_tell_duplicate)
        m.setattr(trials_mod, "show_repeats", lambda study: None)
        import bitnas.search.local as local

        m.setattr(local, "tell_duplicate", _old_tell_duplicate)
        old = _study(name)
        optimize(old, _problem(), trials, progress=False)
    assert not any(is_repeat(t) for t in old.trials)
    assert not isinstance(old.sampler, RepeatsShown)
    assert [t.params for t in new.trials] == [t.params for t in old.trials]
    assert [as_sampled(t).values for t in new.trials] == [t.values for t in old.trials]
