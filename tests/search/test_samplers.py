"""Contract suite: every registered sampler runs a budgeted bitnas study correctly."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from bitnas.errors import RegistryError
from bitnas.search import SAMPLERS, Problem, make_sampler, optimize
from bitnas.search.trials import FALLBACK_AFTER
from bitnas.spaces import Budget, bitops
from tests.conftest import SpyEvaluator, small_space


def test_unknown_sampler_lists_valid_names():
    with pytest.raises(RegistryError) as e:
        make_sampler("tpee", 0)
    msg = str(e.value)
    assert "unknown sampler 'tpee'" in msg and "did you mean 'tpe'" in msg
    for name in ("tpe", "nsga2", "nsga3", "gp", "random", "qmc", "known-cost"):
        assert name in msg


@pytest.mark.parametrize("name", SAMPLERS.names())
def test_sampler_contract(name):
    spy = SpyEvaluator()
    problem = Problem(space=small_space(), evaluator=spy, budget=Budget(40_000))
    study = optuna.create_study(
        directions=problem.directions, sampler=make_sampler(name, 0, problem)
    )
    study.set_metric_names(problem.metric_names)
    added = optimize(study, problem, 12, progress=False)
    assert added["finished"] == 12
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    trained = [t for t in complete if "duplicate_of" not in t.user_attrs]
    assert len(trained) == len(spy.seen) == 12
    assert all(bitops(a) <= 40_000 for a in spy.seen)
    assert len({a.key() for a in spy.seen}) == len(spy.seen)  # duplicates reused, not retrained
    # no sampler may get stuck on over-budget proposals: the fallback bounds the waste
    assert added["rejected"] <= FALLBACK_AFTER * (len(complete) + 1)
    for t in complete:
        assert t.values[1] == t.user_attrs["cost"]["bitops"] <= 40_000
        assert t.constraints[Budget.CONSTRAINT] <= 0
