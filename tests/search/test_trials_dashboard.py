"""What the trial protocol records for optuna-dashboard: the legacy constraint record that
its feasibility reads, flat per-layer attributes, and the architecture artifact."""

from __future__ import annotations

import json

import optuna
import pytest
from optuna.samplers.nsgaii._constraints_evaluation import _constrained_dominates
from optuna.trial import TrialState

from bitnas.search import Problem, make_sampler, optimize
from bitnas.search.artifacts import arch_filename, open_artifact_store
from bitnas.search.repeats import is_repeat
from bitnas.search.trials import LEGACY_CONSTRAINTS_KEY
from bitnas.spaces import Architecture, Budget, bitops
from tests.conftest import SpyEvaluator, small_space

DIRECTIONS = [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]


def _tight_problem(**kw):
    space = small_space()
    costs = sorted(bitops(a) for a in space.grid())
    return Problem(
        space=space, evaluator=SpyEvaluator(), budget=Budget(costs[len(costs) // 4]), **kw
    )


@pytest.mark.parametrize("sampler", ["tpe", "nsga2"])
def test_rejected_trials_carry_the_legacy_record_and_samplers_still_run(sampler):
    problem = _tight_problem()
    study = optuna.create_study(directions=problem.directions, sampler=make_sampler(sampler, 1))
    study.set_metric_names(problem.metric_names)
    # 45 finished: NSGA-II (population 20) selects parents by constrained dominance twice
    optimize(study, problem, 45, progress=False)
    trials = study.get_trials()
    # what the sampler sees COMPLETE: trained trials and repeats (stored PRUNED, shown to
    # samplers COMPLETE: bitnas.search.repeats); the small feasible space is exhausted first
    assert sum(t.state == TrialState.COMPLETE or is_repeat(t) for t in trials) >= 45
    rejected = [t for t in trials if "rejected" in t.user_attrs]
    assert rejected, "a 25% budget must reject some proposals"
    for t in trials:
        excess = t.constraints[Budget.CONSTRAINT]
        # what optuna-dashboard 0.21 reads (`system_attrs["constraints"]`, a list)
        assert t.system_attrs[LEGACY_CONSTRAINTS_KEY] == [excess]
        assert (excess > 0) == ("rejected" in t.user_attrs) == (not t.user_attrs["feasible"])
        # Optuna 5 reads both records; they agree, so feasibility is unchanged
        assert set(t.constraints.values()) == {excess}
    feasible = next(t for t in trials if t.state == TrialState.COMPLETE)
    # NSGA-II's selection still puts a feasible trial ahead of an infeasible one
    infeasible = rejected[0]
    fake = optuna.trial.create_trial(
        values=[1.0, 1.0],  # better on both objectives, but over budget
        system_attrs=infeasible.system_attrs,
    )
    assert _constrained_dominates(feasible, fake, DIRECTIONS)
    assert not _constrained_dominates(fake, feasible, DIRECTIONS)


def test_every_trial_gets_flat_layer_attrs_and_its_architecture_artifact(tmp_path):
    store = open_artifact_store(tmp_path / "a")
    problem = _tight_problem(artifacts=store)
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(directions=problem.directions, storage=storage)
    study.set_metric_names(problem.metric_names)
    optimize(study, problem, 6, progress=False)
    trials = study.get_trials()
    assert any("rejected" in t.user_attrs for t in trials)
    for t in trials:
        arch = Architecture.from_json(t.user_attrs["architecture"])
        assert t.user_attrs["widths"] == list(arch.widths)
        assert t.user_attrs["wbits"] == list(arch.wbits)
        assert t.user_attrs["abits"] == list(arch.abits)
        metas = optuna.artifacts.get_all_artifact_meta(t, storage=storage)
        assert [m.filename for m in metas] == [arch_filename(t.number)]
        with store.open_reader(metas[0].artifact_id) as f:
            assert Architecture.from_dict(json.load(f)) == arch
