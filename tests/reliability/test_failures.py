"""A trial that raises, returns a NaN/inf objective or diverges in training ends FAIL with its
reason stored; the study goes on, and the summary counts the failures."""

from __future__ import annotations

import pytest
from optuna.trial import TrialState

from bitnas.errors import EvaluationError
from bitnas.evaluators import CallableEvaluator, DataSpec, EvalResult, TrainedEvaluator, TrainSpec
from bitnas.search import Problem, counts, optimize
from bitnas.search.local import MAX_CONSECUTIVE_FAILURES
from bitnas.spaces import Architecture
from bitnas.studies.report import format_counts
from tests.conftest import small_space
from tests.search.test_trials import new_study


def test_nan_inf_and_raising_trials_fail_with_their_reason_and_the_study_goes_on():
    outcomes = iter([float("nan"), 0.6, float("inf"), RuntimeError("loader crashed"), 0.7, 0.8])

    def flaky(arch: Architecture, *, seed: int, report: object) -> EvalResult:
        v = next(outcomes)
        if isinstance(v, Exception):
            raise v
        return EvalResult(metrics={"val_accuracy": v})

    problem = Problem(space=small_space(), evaluator=CallableEvaluator(flaky))
    study = new_study(problem)
    added = optimize(study, problem, 3, progress=False)
    states = [t.state for t in study.trials]
    fail, ok = TrialState.FAIL, TrialState.COMPLETE
    assert states == [fail, ok, fail, fail, ok, ok]
    errors = [t.user_attrs.get("error") for t in study.trials]
    assert errors[0] == "EvaluationError: metric `val_accuracy` is not finite: nan"
    assert errors[2] == "EvaluationError: metric `val_accuracy` is not finite: inf"
    assert errors[3] == "RuntimeError: loader crashed"
    # one failed architecture was proposed again and trained to the end: nothing is left to
    # retry for it, and the summary says so (the other two still await a re-run)
    keys = [t.user_attrs.get("arch_key") for t in study.trials]
    retried = sum(
        1
        for i, t in enumerate(study.trials)
        if t.state == fail and keys[i] in {keys[j] for j in range(len(keys)) if states[j] == ok}
    )
    # the run's own summary says the same: its retried failure is no longer pending
    assert (added["finished"], added["failed"], added["retried"]) == (3, 3 - retried, retried)
    assert format_counts(counts(study.trials)).startswith(
        f"3 finished trials (3 complete), {3 - retried} failed (a re-run retries them)"
        + (f", {retried} failed and since retried to the end" if retried else "")
    )


@pytest.mark.slow
def test_training_that_diverges_fails_with_the_epoch_and_loss():
    """Real training with an absurd learning rate: the loss becomes NaN within one epoch."""
    ev = TrainedEvaluator(
        data=DataSpec(name="digits"), train=TrainSpec(epochs=3, lr=1e30, optimizer="sgd")
    )
    space = small_space(depth=(1, 1), width=(32,), wbits=(32,), abits=(32,), timesteps=(1,))
    problem = Problem(space=space, evaluator=ev)
    study = new_study(problem)
    with pytest.raises(EvaluationError, match=f"{MAX_CONSECUTIVE_FAILURES} trials failed in a row"):
        optimize(study, problem, 1, progress=False)
    (first, *_) = study.trials
    assert first.state == TrialState.FAIL
    assert first.user_attrs["error"].startswith(
        "EvaluationError: training diverged: loss is nan at epoch 1"
    )
    assert counts(study.trials)["failed"] == MAX_CONSECUTIVE_FAILURES
