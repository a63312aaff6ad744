"""The trial protocol: budget before training, failures kept, duplicates reused, counts."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from bitnas.errors import BudgetError
from bitnas.evaluators import CallableEvaluator, EvalResult
from bitnas.search import Problem, counts, optimize
from bitnas.spaces import Architecture, Budget, bitops
from tests.conftest import SpyEvaluator, small_space


def new_study(problem, seed=0):
    study = optuna.create_study(
        directions=problem.directions, sampler=optuna.samplers.RandomSampler(seed=seed)
    )
    study.set_metric_names(problem.metric_names)
    return study


def test_tight_budget_never_trains_over_budget():
    spy = SpyEvaluator()
    space = small_space()
    costs = sorted(bitops(a) for a in space.grid())
    budget = costs[len(costs) // 10]  # only ~10% of the space fits
    problem = Problem(space=space, evaluator=spy, budget=Budget(budget))
    study = new_study(problem)
    optimize(study, problem, 10, progress=False)
    assert spy.seen and all(bitops(a) <= budget for a in spy.seen)
    rejected = [t for t in study.trials if "rejected" in t.user_attrs]
    assert rejected, "a 10% budget must have rejected some proposals"
    for t in rejected:
        assert t.state == TrialState.PRUNED
        assert t.constraints[Budget.CONSTRAINT] > 0
        assert t.user_attrs["cost"]["bitops"] > budget
        assert "over budget" in t.user_attrs["rejected"]
    c = counts(study.trials)
    assert c["finished"] == 10 and c["rejected"] == len(rejected)


def test_budget_below_cheapest_is_refused_before_any_trial():
    spy = SpyEvaluator()
    problem = Problem(space=small_space(), evaluator=spy, budget=Budget(100))
    study = new_study(problem)
    with pytest.raises(BudgetError, match=r"below the cheapest architecture .* at [\d,]+ BitOps"):
        optimize(study, problem, 3, progress=False)
    assert not study.trials and not spy.seen


def test_early_stopped_result_is_pruned_not_complete():
    problem = Problem(
        space=small_space(),
        evaluator=CallableEvaluator(
            lambda a, seed, report: EvalResult(
                metrics={"val_accuracy": 0.3}, stopped=True, epochs=1
            )
        ),
    )
    study = new_study(problem)
    optimize(study, problem, 2, progress=False)
    assert [t.state for t in study.trials] == [TrialState.PRUNED] * 2
    assert counts(study.trials)["finished"] == 2


def test_attributes_recorded_on_each_trial(problem, spy):
    study = new_study(problem)
    optimize(study, problem, 3, progress=False)
    t = study.get_trials(states=(TrialState.COMPLETE,))[0]
    arch = Architecture.from_json(t.user_attrs["architecture"])
    assert problem.space.from_params(t.params) == arch
    assert t.user_attrs["cost_model"] == "bitnas-bitops/1"
    assert t.user_attrs["cost"]["bitops"] == bitops(arch) == t.values[1]
    assert t.user_attrs["densities"] == [0.25] * len(arch.layers)
    assert t.user_attrs["event_bitops"] == pytest.approx(0.25 * bitops(arch))
    assert t.user_attrs["test_accuracy"] == 0.5
    assert study.metric_names == ["val_accuracy", "bitops"]


class _Stubborn(optuna.samplers.RandomSampler):
    """Always proposes the largest option: the most expensive architecture, forever."""

    def sample_independent(self, study, trial, param_name, param_distribution):
        if isinstance(param_distribution, optuna.distributions.CategoricalDistribution):
            return max(param_distribution.choices)
        return param_distribution.high


def test_stuck_sampler_falls_back_to_feasible_draws():
    spy = SpyEvaluator()
    problem = Problem(space=small_space(), evaluator=spy, budget=Budget(30_000), seed=0)
    study = optuna.create_study(directions=problem.directions, sampler=_Stubborn(seed=0))
    optimize(study, problem, 3, progress=False)
    assert len(spy.seen) == 3 and all(bitops(a) <= 30_000 for a in spy.seen)
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert all(t.user_attrs.get("proposed_by") == "feasible-fallback" for t in done)
    assert counts(study.trials)["rejected"] == 30


def test_running_trials_of_a_dead_run_are_closed_and_live_ones_kept():
    import os
    import subprocess
    import sys

    from bitnas.search.trials import OWNER, close_abandoned

    study = optuna.create_study(directions=["maximize", "minimize"])
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    host = OWNER.split(":")[0]
    gone, mine, foreign = study.ask(), study.ask(), study.ask()
    gone.set_user_attr("owner", f"{host}:{dead}")
    mine.set_user_attr("owner", OWNER)
    foreign.set_user_attr("owner", f"elsewhere:{dead}")
    reused = study.ask()  # a live PID (ours) that started at another time: a reused PID
    reused.set_user_attr("owner", f"{host}:{os.getpid()}:1")
    assert close_abandoned(study) == 2
    states = [t.state for t in study.trials]
    assert states == [TrialState.FAIL, TrialState.RUNNING, TrialState.RUNNING, TrialState.FAIL]
    assert (
        study.trials[0]
        .user_attrs["error"]
        .startswith(f"abandoned: the run that owned it (pid {dead})")
    )


def test_a_failure_retried_to_the_end_is_counted_retried_not_failed():
    """A run killed mid-trial leaves it RUNNING; the next run closes it FAIL and trains its
    architecture first: the counts then say it was retried, no longer that a re-run would."""
    import subprocess
    import sys

    from bitnas.search.trials import OWNER, close_abandoned, propose
    from bitnas.studies.report import format_counts

    problem = Problem(space=small_space(), evaluator=SpyEvaluator(), budget=Budget(60_000))
    study = optuna.create_study(
        directions=problem.directions, sampler=optuna.samplers.RandomSampler(seed=0)
    )
    optimize(study, problem, 2, progress=False)
    p = propose(study, problem)  # the killed run's trial: recorded, never told
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    p.trial.set_user_attr("owner", f"{OWNER.split(':')[0]}:{dead}")
    assert close_abandoned(study) == 1
    assert counts(study.trials)["failed"] == 1
    before = counts(study.trials)
    optimize(study, problem, 1, progress=False)  # trains the abandoned architecture first
    after = counts(study.trials)
    assert (after["failed"], after["retried"], after["finished"]) == (0, 1, 3)
    assert "since retried" in format_counts(after) and "re-run retries" not in format_counts(after)
    added = {k: after[k] - before[k] for k in after}
    assert format_counts(added) == (
        "1 finished trials (1 complete), 1 failed and since retried to the end"
    )


def test_a_resumed_run_counts_what_it_trained_retried_and_closed():
    """After a dead run, the next run's summary names what it did itself: the trial it closed,
    the retry of that trial's architecture among the trials it trained (the retry was
    enqueued before the run's view began: it is still this run's), and a failure of its own
    that it then trained to the end is retried, not pending."""
    import subprocess
    import sys

    from bitnas.evaluators import CallableEvaluator, EvalResult
    from bitnas.search.trials import OWNER, propose
    from bitnas.studies.report import format_counts
    from tests.conftest import synthetic_accuracy

    problem = Problem(space=small_space(), evaluator=SpyEvaluator(), budget=Budget(60_000))
    study = optuna.create_study(
        directions=problem.directions, sampler=optuna.samplers.RandomSampler(seed=0)
    )
    optimize(study, problem, 2, progress=False)
    p = propose(study, problem)  # the killed run's trial: recorded, never told
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    p.trial.set_user_attr("owner", f"{OWNER.split(':')[0]}:{dead}")
    added = optimize(study, problem, 3, progress=False)
    assert (added["finished"], added["retries"], added["closed"]) == (3, 1, 1)
    assert format_counts(added).startswith(
        "3 finished trials (3 complete), 1 of them retrying a failed trial, "
        "1 closed (left running by a dead earlier run)"
    )
    assert optimize(study, problem, 0, progress=False)["closed"] == 0  # nothing left to close

    # a failure of this run, proposed again and trained to the end in the same run
    calls: list[str] = []

    def once_flaky(arch, *, seed, report):
        calls.append(arch.key())
        if len(calls) == 1:
            raise RuntimeError("transient")
        return EvalResult(metrics={"val_accuracy": synthetic_accuracy(arch), "test_accuracy": 0.5})

    flaky = Problem(space=small_space(), evaluator=CallableEvaluator(once_flaky),
                    budget=Budget(60_000))  # fmt: skip
    s2 = optuna.create_study(directions=flaky.directions, sampler=optuna.samplers.RandomSampler(0))
    first = propose(s2, flaky)  # enqueue that architecture twice: it fails, then trains
    s2.enqueue_trial(first.trial.params)
    s2.tell(first.trial, state=optuna.trial.TrialState.FAIL)
    s2.enqueue_trial(first.trial.params)
    added = optimize(s2, flaky, 2, progress=False)
    assert (added["failed"], added["retried"]) == (0, 1), added
    assert "re-run retries" not in format_counts(added)
    assert "1 failed and since retried to the end" in format_counts(added)
