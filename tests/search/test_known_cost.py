from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, IntDistribution

from bitnas.evaluators import CallableEvaluator, EvalResult
from bitnas.search import Problem, make_sampler, optimize
from bitnas.search.known_cost import (
    KnownCostSampler,
    expected_improvement_2d,
    front_segments,
)
from bitnas.search.pareto import front_hypervolume
from bitnas.search.trials import ATTR_DUPLICATE, ATTR_KEY, ATTR_REJECTED
from bitnas.spaces import Budget, bitops
from tests.conftest import small_space, synthetic_accuracy

SPACE = {
    "width": IntDistribution(8, 64, step=8),
    "bits": CategoricalDistribution([1, 2, 4, 8]),
    "act": CategoricalDistribution(["relu", "spike"]),
}


def _cost(p):
    return p["width"] * p["bits"] * (2 if p["act"] == "spike" else 1)


def _acc(p):
    return 1 - 1 / (1 + 0.02 * p["width"] * math.log2(1 + p["bits"])) - 0.05 * (p["act"] == "relu")


def _objective(trial):
    p = {
        "width": trial.suggest_int("width", 8, 64, step=8),
        "bits": trial.suggest_categorical("bits", [1, 2, 4, 8]),
        "act": trial.suggest_categorical("act", ["relu", "spike"]),
    }
    return _acc(p), _cost(p)


def test_front_segments_and_closed_form_ehvi():
    edges, best = front_segments([0.5, 0.2, 0.7], [0.6, 0.4, 0.5], reference=0.0)
    # staircase: 0 until 0.2, 0.4 until 0.5, then 0.6 (0.7's 0.5 is dominated)
    assert edges.tolist() == [0.0, 0.2, 0.5, 1.0]
    assert best.tolist() == [0.0, 0.4, 0.6]
    # with no uncertainty, the improvement is the area the new point adds
    gain = expected_improvement_2d(np.array([0.1]), np.array([0.5]), np.array([1e-9]), edges, best)
    assert gain[0] == pytest.approx(0.1 * 0.5 + 0.3 * 0.1)
    # with uncertainty it equals the Monte Carlo mean of the improvement
    rng = np.random.default_rng(0)
    mu, sd, x = 0.45, 0.1, 0.3
    draws = rng.normal(mu, sd, 400_000)
    mc = (0.2 * np.maximum(0, draws - 0.4) + 0.5 * np.maximum(0, draws - 0.6)).mean()
    exact = expected_improvement_2d(np.array([x]), np.array([mu]), np.array([sd]), edges, best)
    assert exact[0] == pytest.approx(mc, rel=0.01)


def test_any_optuna_study_within_budget_without_duplicates():
    budget = 160
    sampler = KnownCostSampler(cost=_cost, budget=budget, search_space=SPACE, seed=0)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    feasible = [
        p
        for p in (
            dict(width=w, bits=b, act=a)
            for w, b, a in itertools.product(range(8, 65, 8), [1, 2, 4, 8], ["relu", "spike"])
        )
        if _cost(p) <= budget
    ]
    n = len(feasible)
    study.optimize(_objective, n_trials=n)
    params = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(params)) == n  # no duplicate: every feasible point exactly once
    assert all(_cost(t.params) <= budget for t in study.trials)  # nothing over budget
    assert n > 20


def test_finds_the_true_front_faster_than_random():
    budget = 160
    cands = [
        dict(width=w, bits=b, act=a)
        for w, b, a in itertools.product(range(8, 65, 8), [1, 2, 4, 8], ["relu", "spike"])
    ]
    feas = [p for p in cands if _cost(p) <= budget]
    lo = min(_cost(p) for p in feas)
    truth = front_hypervolume(
        [_acc(p) for p in feas], [_cost(p) for p in feas], budget=budget, cost_min=lo
    )

    def trials_to_99(sampler):
        study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
        seen: set = set()
        acc, cost = [], []
        for _ in range(200):
            t = study.ask()
            p = {
                "width": t.suggest_int("width", 8, 64, step=8),
                "bits": t.suggest_categorical("bits", [1, 2, 4, 8]),
                "act": t.suggest_categorical("act", ["relu", "spike"]),
            }
            study.tell(t, [_acc(p), _cost(p)])
            key = tuple(sorted(p.items()))
            if key in seen or _cost(p) > budget:
                continue  # duplicates and over-budget points cost no training in bitnas
            seen.add(key)
            acc.append(_acc(p))
            cost.append(_cost(p))
            if front_hypervolume(acc, cost, budget=budget, cost_min=lo) >= 0.99 * truth:
                return len(acc)
        return len(feas) + 1

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kc = [
            trials_to_99(KnownCostSampler(_cost, budget, search_space=SPACE, seed=s))
            for s in range(3)
        ]
        rnd = [trials_to_99(optuna.samplers.RandomSampler(seed=s)) for s in range(3)]
    assert np.mean(kc) < 0.6 * np.mean(rnd), (kc, rnd)


def test_running_trials_are_not_proposed_again():
    sampler = KnownCostSampler(
        cost=_cost, budget=160, search_space=SPACE, seed=1, n_startup_trials=2
    )
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.optimize(_objective, n_trials=4)
    running = [study.ask() for _ in range(5)]  # asked in parallel, not told yet
    got = [_objective(t) and tuple(sorted(t.params.items())) for t in running]
    done = {tuple(sorted(t.params.items())) for t in study.trials if t.state.is_finished()}
    assert len(set(got)) == 5 and not set(got) & done


def test_exhausted_space_falls_back_with_a_warning():
    space = {"w": IntDistribution(1, 3)}
    sampler = KnownCostSampler(cost=lambda p: p["w"], budget=2, search_space=space, seed=0)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.optimize(lambda t: (t.suggest_int("w", 1, 3), t.params["w"]), n_trials=2)
    assert sorted(t.params["w"] for t in study.trials) == [1, 2]
    with pytest.warns(UserWarning, match="every feasible candidate"):
        study.optimize(lambda t: (t.suggest_int("w", 1, 3), t.params["w"]), n_trials=1)


def test_a_trial_closed_before_it_ran_is_not_a_failure_of_its_candidate():
    """Two FAILs rule a candidate out (it would fail again); a FAIL bitnas closed before
    training (``spare``: another run took the last place) says nothing about it."""
    space = {"w": IntDistribution(1, 3)}
    sampler = KnownCostSampler(cost=lambda p: p["w"], budget=2, search_space=space, seed=0)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.enqueue_trial({"w": 1})
    study.optimize(lambda t: (t.suggest_int("w", 1, 3), t.params["w"]), n_trials=1)

    def ask_and_fail(**attrs):
        t = study.ask()
        w = t.suggest_int("w", 1, 3)
        for k, v in attrs.items():
            t.set_user_attr(k, v)
        study.tell(t, state=optuna.trial.TrialState.FAIL)
        return w

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "every feasible candidate" fallback
        assert [ask_and_fail(spare="not trained") for _ in range(3)] == [2, 2, 2]
        assert [ask_and_fail(), ask_and_fail()] == [2, 2]  # two real failures: ruled out
    with pytest.warns(UserWarning, match="every feasible candidate"):
        ask_and_fail()


def test_refuses_an_infinite_space_and_an_empty_budget():
    with pytest.raises(ValueError, match="finite"):
        KnownCostSampler(
            cost=lambda p: 1.0, search_space={"x": optuna.distributions.FloatDistribution(0, 1)}
        )
    with pytest.raises(ValueError, match="no candidate within the budget"):
        KnownCostSampler(cost=_cost, budget=1, search_space=SPACE)


def test_bitnas_problem_never_rejected_nor_duplicated():
    space = small_space(depth=(1, 2), width=(16, 32), wbits=(2, 8), abits=(1, 4), timesteps=(1, 4))
    costs = sorted(bitops(a) for a in space.grid())
    budget = Budget(bitops=costs[len(costs) // 2])

    def fn(arch, *, seed, report):
        return EvalResult(metrics={"val_accuracy": synthetic_accuracy(arch)})

    problem = Problem(space=space, evaluator=CallableEvaluator(fn), budget=budget, seed=0)
    study = optuna.create_study(
        directions=problem.directions, sampler=make_sampler("known-cost", 0, problem)
    )
    feasible = sum(1 for c in costs if c <= budget.bitops)
    optimize(study, problem, min(30, feasible), progress=False)
    trials = study.get_trials(deepcopy=False)
    assert not [t for t in trials if ATTR_REJECTED in t.user_attrs]
    assert not [t for t in trials if ATTR_DUPLICATE in t.user_attrs]
    keys = [t.user_attrs[ATTR_KEY] for t in trials]
    assert len(keys) == len(set(keys)) == min(30, feasible)


def test_make_sampler_needs_the_problem():
    from bitnas.errors import SpecError

    with pytest.raises(SpecError, match="needs the search problem"):
        make_sampler("known-cost", 0)


def test_trials_asked_before_any_is_told_get_different_candidates():
    sampler = KnownCostSampler(cost=_cost, budget=160, search_space=SPACE, seed=3)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.optimize(_objective, n_trials=10)
    trials = [study.ask() for _ in range(4)]
    # parameters suggested one by one, interleaved across the open trials
    for name in ("width", "bits", "act"):
        for t in trials:
            d = SPACE[name]
            if name == "width":
                t.suggest_int(name, d.low, d.high, step=d.step)
            else:
                t.suggest_categorical(name, d.choices)
    got = [tuple(sorted(t.params.items())) for t in trials]
    done = {tuple(sorted(t.params.items())) for t in study.trials if t.state.is_finished()}
    assert len(set(got)) == 4 and not set(got) & done


def test_an_objective_with_more_parameters_is_still_learnt_from():
    sampler = KnownCostSampler(cost=_cost, budget=160, search_space=SPACE, seed=0)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)

    def objective(t):
        acc, cost = _objective(t)
        t.suggest_categorical("optimizer", ["adam", "sgd"])  # not a candidate parameter
        return acc, cost

    study.optimize(objective, n_trials=25)
    keys = [
        tuple(sorted((k, v) for k, v in t.params.items() if k != "optimizer")) for t in study.trials
    ]
    assert len(set(keys)) == 25  # matched on the candidate parameters: no repeats


def test_a_partly_enqueued_trial_gets_a_matching_feasible_candidate():
    for seed in range(6):
        sampler = KnownCostSampler(cost=_cost, budget=128, search_space=SPACE, seed=seed)
        study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
        study.optimize(_objective, n_trials=10)
        study.enqueue_trial({"width": 64})
        study.optimize(_objective, n_trials=1)
        t = study.trials[-1]
        assert t.params["width"] == 64 and _cost(t.params) <= 128


def test_a_float_parameter_falls_back_to_random_with_a_warning():
    sampler = KnownCostSampler(cost=lambda p: 1.0 + p["x"], seed=0)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    with pytest.warns(UserWarning, match="finite space"):
        study.optimize(lambda t: (t.suggest_float("x", 0, 1), 1.0 + t.params["x"]), n_trials=3)
    assert len(study.trials) == 3


def test_negative_objective_values_are_still_told_apart():
    # a maximised -loss: all values below 0, the old default reference; the sampler must
    # still model them rather than enumerate cheapest first
    sampler = KnownCostSampler(
        cost=_cost, budget=160, search_space=SPACE, seed=0, n_startup_trials=4
    )
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.optimize(lambda t: (_objective(t)[0] - 2.0, _cost(t.params)), n_trials=12)
    costs = [_cost(t.params) for t in study.trials[4:]]
    assert costs != sorted(costs)


def test_an_exhausted_space_ends_the_run_without_an_over_budget_proposal():
    """Asking for more trials than there are feasible architectures: every feasible one is
    trained once, the sampler then re-proposes tried ones (answered as repeats), nothing over
    budget is ever proposed, and the run ends "exhausted"."""
    space = small_space(depth=(1, 1), width=(16, 32), wbits=(2, 8), abits=(1,), timesteps=(1, 4))
    costs = sorted(bitops(a) for a in space.grid())
    budget = Budget(bitops=costs[len(costs) // 2])
    feasible = sum(1 for c in costs if c <= budget.bitops)

    def fn(arch, *, seed, report):
        return EvalResult(metrics={"val_accuracy": synthetic_accuracy(arch)})

    problem = Problem(space=space, evaluator=CallableEvaluator(fn), budget=budget, seed=0)
    sampler = make_sampler("known-cost", 0, problem)
    study = optuna.create_study(directions=problem.directions, sampler=sampler)
    with pytest.warns(UserWarning, match="every feasible candidate"):
        added = optimize(study, problem, feasible + 5, progress=False)
    trials = study.get_trials(deepcopy=False)
    assert added["exhausted"] == 1
    assert not [t for t in trials if ATTR_REJECTED in t.user_attrs]  # never over budget
    trained = {t.user_attrs[ATTR_KEY] for t in trials if ATTR_DUPLICATE not in t.user_attrs}
    assert len(trained) == feasible
    assert sampler.exhausted


def test_a_space_too_large_to_enumerate_gets_feasible_generated_candidates():
    """A per-layer space of ~10^12 architectures: no enumeration, every proposal within the
    budget (repaired), never a repeat, and better than random after the start-up trials."""
    space = small_space(
        depth=(2, 8),
        width=(16, 32, 64, 128),
        width_per_layer=True,
        wbits=(1, 2, 4, 8),
        abits=(1, 2, 4),
        timesteps=(1, 2),
    )
    assert space.size() > 10**12
    budget = Budget(bitops=300_000)

    def fn(arch, *, seed, report):
        return EvalResult(metrics={"val_accuracy": synthetic_accuracy(arch)})

    cheapest = bitops(space.extremes(bitops)[0])

    def front_hv(name):
        problem = Problem(space=space, evaluator=CallableEvaluator(fn), budget=budget, seed=1)
        study = optuna.create_study(
            directions=problem.directions, sampler=make_sampler(name, 1, problem)
        )
        optimize(study, problem, 30, progress=False)
        trials = study.get_trials(deepcopy=False)
        done = [t.values for t in trials if t.values is not None]
        hv = front_hypervolume(
            [v[0] for v in done], [v[1] for v in done], budget=budget.bitops, cost_min=cheapest
        )
        return trials, hv

    trials, kc_hv = front_hv("known-cost")
    assert not [t for t in trials if ATTR_REJECTED in t.user_attrs]
    keys = [t.user_attrs[ATTR_KEY] for t in trials]
    assert len(keys) == len(set(keys)) == 30
    _, random_hv = front_hv("random")
    assert kc_hv > random_hv


def test_budget_repair_lowers_choices_until_the_candidate_fits():
    from bitnas.search.known_cost import ProductSpace

    space = ProductSpace(SPACE, _cost)
    rng = np.random.default_rng(0)
    done = space.complete({"width": 64, "bits": 8, "act": "spike"}, rng)  # cost 1024
    fixed = space.repair(done, 100, rng)
    assert fixed is not None and _cost(fixed[0]) <= 100
    assert fixed[0]["act"] == "spike"  # only numeric choices are lowered
    assert space.repair(done, 1, rng) is None  # nothing fits: given up, not over budget
