"""The local runner: failures kept and retried, interrupts closed, duplicates bounded."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from bitnas.errors import EvaluationError, SpecError
from bitnas.evaluators import CallableEvaluator, EvalResult
from bitnas.search import Problem, counts, optimize
from bitnas.search.local import MAX_CONSECUTIVE_DUPLICATES, MAX_CONSECUTIVE_FAILURES
from bitnas.search.trials import FALLBACK_AFTER, evaluated_keys, propose, tell_failure
from bitnas.spaces import Architecture
from tests.conftest import SpyEvaluator, small_space
from tests.search.test_trials import new_study


def test_failing_trial_is_kept_and_study_goes_on():
    calls = []

    def flaky(arch: Architecture, *, seed: int, report: object) -> EvalResult:
        calls.append(arch)
        if len(calls) == 2:
            raise RuntimeError("worker exploded")
        return EvalResult(metrics={"val_accuracy": 0.5})

    problem = Problem(space=small_space(), evaluator=CallableEvaluator(flaky))
    study = new_study(problem)
    optimize(study, problem, 4, progress=False)
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(failed) == 1
    assert failed[0].user_attrs["error"] == "RuntimeError: worker exploded"
    assert "worker exploded" in failed[0].user_attrs["traceback"]
    # a failed trial does not count toward the target: 4 finished were still reached
    c = counts(study.trials)
    assert (c["finished"], c["complete"], c["failed"], c["running"]) == (4, 4, 1, 0)
    assert len(calls) == 5


def test_non_finite_objective_fails_and_a_broken_evaluator_stops_the_run():
    problem = Problem(
        space=small_space(),
        evaluator=CallableEvaluator(lambda a, seed, report: {"val_accuracy": float("nan")}),
    )
    study = new_study(problem)
    with pytest.raises(EvaluationError, match=r"10 trials failed in a row; the last one \(#9\)"):
        optimize(study, problem, 2, progress=False)
    assert [t.state for t in study.trials] == [TrialState.FAIL] * MAX_CONSECUTIVE_FAILURES
    assert "not finite" in study.trials[0].user_attrs["error"]


def test_configuration_error_stops_at_once():
    def bad(arch, *, seed, report):
        raise SpecError("`device` is cuda but no CUDA device is available")

    problem = Problem(space=small_space(), evaluator=CallableEvaluator(bad))
    study = new_study(problem)
    with pytest.raises(SpecError, match="no CUDA device"):
        optimize(study, problem, 3, progress=False)
    assert [t.state for t in study.trials] == [TrialState.FAIL]


def test_interrupt_closes_the_trial_and_is_not_counted():
    def interrupted(arch, *, seed, report):
        raise KeyboardInterrupt

    problem = Problem(space=small_space(), evaluator=CallableEvaluator(interrupted))
    study = new_study(problem)
    with pytest.raises(KeyboardInterrupt):
        optimize(study, problem, 3, progress=False)
    (t,) = study.trials
    assert t.state == TrialState.FAIL and t.user_attrs["error"].startswith("interrupted")
    assert counts(study.trials)["finished"] == 0


def test_duplicate_architecture_is_reused_not_retrained():
    spy = SpyEvaluator()
    space = small_space(depth=(1, 1), width=(16,), wbits=(2,), abits=(1, 2), timesteps=(1,))
    assert space.size() == 2
    problem = Problem(space=space, evaluator=spy)
    study = new_study(problem)
    added = optimize(study, problem, 8, progress=False)
    # only 2 architectures exist: the run ends early, flagged, after a streak of duplicates
    assert len(spy.seen) == 2 and added["finished"] == 2 and added["exhausted"] == 1
    dups = [t for t in study.trials if "duplicate_of" in t.user_attrs]
    assert len(dups) == added["duplicate"] >= MAX_CONSECUTIVE_DUPLICATES
    for t in dups:
        src = study.trials[t.user_attrs["duplicate_of"]]
        # stored PRUNED (off the front), the values kept for the sampler (bitnas.search.repeats)
        assert t.state == TrialState.PRUNED and t.user_attrs["repeat_values"] == src.values
        assert t.user_attrs["architecture"] == src.user_attrs["architecture"]
        assert t.user_attrs["densities"] == src.user_attrs["densities"]
        assert "train_seconds" not in t.user_attrs


def test_a_sampler_stuck_on_a_trained_architecture_gets_unseen_ones():
    """A converged sampler (NSGA-II's population on a small space) keeps proposing what the
    study has: every ``FALLBACK_AFTER`` repeats in a row the run trains a feasible
    architecture not trained yet, instead of ending as if the space were exhausted."""
    spy = SpyEvaluator()
    problem = Problem(space=small_space(), evaluator=spy)
    study = new_study(problem)
    optimize(study, problem, 1, progress=False)
    first = study.trials[0]
    study.sampler = optuna.samplers.PartialFixedSampler(
        first.params, optuna.samplers.RandomSampler(seed=1)
    )
    added = optimize(study, problem, 3, progress=False)
    assert added["finished"] == 3 and added["exhausted"] == 0
    new = study.trials[1:]
    repeats = [t for t in new if t.user_attrs.get("duplicate_of") == 0]
    fresh = [t for t in new if t.user_attrs.get("proposed_by") == "unseen-fallback"]
    assert len(repeats) == 3 * FALLBACK_AFTER and len(fresh) == 3
    assert len(spy.seen) == len({a.key() for a in spy.seen}) == 4


def test_the_unseen_draw_skips_trained_failed_and_running_architectures():
    space = small_space(depth=(1, 1), width=(16,), wbits=(2,), abits=(1, 2), timesteps=(1, 4))
    grid = list(space.grid_with_params())
    assert len(grid) == 4
    problem = Problem(space=space, evaluator=SpyEvaluator())
    study = new_study(problem)
    props = []
    for params, _ in grid:
        study.enqueue_trial(params)
        props.append(propose(study, problem))
    trained, failed, running, abandoned = props
    study.tell(trained.trial, [0.5, trained.cost])
    tell_failure(study, failed, ValueError("diverged"))
    abandoned.trial.set_user_attr("error", "abandoned: the run that owned it (pid 1) is gone")
    study.tell(abandoned.trial, state=TrialState.FAIL)
    seen = evaluated_keys(study.get_trials())
    # only the abandoned one is left to draw: it failed for its run, not for what it is
    for _ in range(8):  # each draw has its own seed: a draw ignoring one passes 8 in 3^8
        p = propose(study, problem, seen, unseen=True)
        assert p.trial.user_attrs["proposed_by"] == "unseen-fallback"
        assert p.arch.key() == abandoned.arch.key() != running.arch.key()
        tell_failure(study, p, KeyboardInterrupt())  # "interrupted": still drawable


def test_failed_trials_are_retried_by_the_next_run():
    state = {"fail": True}

    def sometimes(arch: Architecture, *, seed: int, report: object) -> EvalResult:
        if state["fail"]:
            raise RuntimeError("disk full")
        return EvalResult(metrics={"val_accuracy": 0.7})

    problem = Problem(space=small_space(), evaluator=CallableEvaluator(sometimes))
    study = new_study(problem)
    with pytest.raises(EvaluationError, match="disk full"):
        optimize(study, problem, 3, progress=False)
    assert counts(study.trials)["finished"] == 0
    state["fail"] = False
    added = optimize(study, problem, 3 - counts(study.trials)["finished"], progress=False)
    assert added["finished"] == 3 and counts(study.trials)["failed"] == MAX_CONSECUTIVE_FAILURES


def test_nothing_to_train_loads_nothing():
    # a study (or sweep cell) at its target: re-running it must not load data or train
    class Unloadable(SpyEvaluator):
        def prepare(self) -> None:
            raise SpecError("prepare must not run with nothing to train")

    spy = Unloadable()
    problem = Problem(space=small_space(), evaluator=spy)
    study = new_study(problem)
    assert optimize(study, problem, 0, progress=False)["finished"] == 0
    assert spy.seen == [] and study.trials == []
    with pytest.raises(SpecError, match="must not run"):
        optimize(study, problem, 1, progress=False)
