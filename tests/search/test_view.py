"""StudyView: running totals equal to what a full scan of the study says, after every change."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from bitnas.evaluators import CallableEvaluator, EvalResult
from bitnas.search import Problem, counts, open_storage, optimize
from bitnas.search.trials import OWNER, evaluated_keys, failed_for_itself
from bitnas.search.view import StudyView
from bitnas.spaces import Budget, bitops
from tests.conftest import small_space, synthetic_accuracy
from tests.search.test_trials import new_study


def flaky(arch, *, seed, report):  # fails for what some architectures are
    if arch.widths[0] == 16 and arch.timesteps == 4:
        raise RuntimeError("this one always fails")
    return EvalResult(metrics={"val_accuracy": synthetic_accuracy(arch)}, stopped=arch.depth == 2)


def same_as_scan(view: StudyView, stopped: bool = False) -> None:
    trials = view.study.get_trials(deepcopy=False)
    assert view.counts() == counts(trials)
    assert view.n_trials == len(trials)
    want = {k: t.number for k, t in evaluated_keys(trials, stopped).items()}
    assert {k: view.trained[k].number for k in view.trained} == want
    assert len(view.trained) == len(want)
    failed = {t.user_attrs["arch_key"] for t in trials if failed_for_itself(t)}
    assert view.failed == failed
    assert [t.number for t in view.running] == [
        t.number for t in trials if not t.state.is_finished()
    ]


@pytest.mark.parametrize("kind", ["memory", "journal", "sqlite"])  # each is read its own way
def test_totals_follow_the_study_through_every_outcome(kind, tmp_path):
    space = small_space()
    costs = sorted(bitops(a) for a in space.grid())
    budget = costs[len(costs) // 2]
    problem = Problem(space=space, evaluator=CallableEvaluator(flaky), budget=Budget(budget))
    if kind == "memory":
        study = new_study(problem)
    else:
        url = f"{kind}:///{tmp_path}/s.{kind}"
        study = optuna.create_study(
            storage=open_storage(url),
            directions=problem.directions,
            sampler=optuna.samplers.RandomSampler(seed=0),
        )
    view = StudyView(study)
    same_as_scan(view)
    for _ in range(4):  # rejections, failures, pruned, duplicates of the small space
        optimize(study, problem, 3, progress=False)
        view.refresh()
        same_as_scan(view)
    c = view.counts()
    assert c["rejected"] and c["failed"] and c["pruned"] and c["complete"], c
    view.refresh()  # nothing new: nothing counted twice
    same_as_scan(view)


def test_a_trial_running_at_one_look_is_counted_when_it_finishes():
    problem = Problem(space=small_space(), evaluator=CallableEvaluator(flaky))
    study = new_study(problem)
    optimize(study, problem, 2, progress=False)
    other = study.ask()  # another run's trial, under way
    other.set_user_attr("owner", "elsewhere:1:1")
    view = StudyView(study, stopped=True)
    assert [t.number for t in view.running] == [other.number]
    optimize(study, problem, 2, progress=False)
    view.refresh()
    same_as_scan(view, stopped=True)
    assert view.counts()["running"] == 1
    study.tell(other, [0.5, 10.0])
    view.refresh()
    same_as_scan(view, stopped=True)
    assert view.counts()["running"] == 0
    assert view.study.trials[other.number].state == TrialState.COMPLETE


def test_added_counts_only_this_process_trials_since_the_view():
    problem = Problem(space=small_space(), evaluator=CallableEvaluator(flaky))
    study = new_study(problem)
    optimize(study, problem, 2, progress=False)
    view = StudyView(study)
    theirs = study.ask()
    theirs.set_user_attr("owner", "elsewhere:1:1")
    study.tell(theirs, [0.5, 10.0])
    optimize(study, problem, 3, progress=False)
    view.refresh()
    mine = [t for t in study.trials[view.start :] if t.user_attrs.get("owner") == OWNER]
    added = view.added()
    assert added.pop("retries") == 0  # no trial of this run re-trained a failed architecture
    assert added == counts(mine) and added["finished"] == 3


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_asks_take_waiting_trials_from_the_view_in_order_and_once(kind, tmp_path, monkeypatch):
    """A run's ``study.ask`` pops WAITING trials from its view (Optuna's own pop lists every
    trial of the study): in number order, each by one process only, none when none waits."""
    url = f"sqlite:///{tmp_path}/w.db" if kind == "sqlite" else f"journal:///{tmp_path}/w.log"
    storage = open_storage(url)
    mine = optuna.create_study(storage=storage, study_name="w", directions=["maximize"])
    other = optuna.load_study(study_name="w", storage=open_storage(url, create=False))
    for x in range(3):
        mine.enqueue_trial({"x": x})
    view, other_view = StudyView(mine), StudyView(other)
    scans = []
    real = type(mine._storage).get_all_trials

    def get_all_trials(self, study_id, deepcopy=True, states=None):  # type: ignore[no-untyped-def]
        if states is not None and TrialState.WAITING in states:
            scans.append(states)
        return real(self, study_id, deepcopy=deepcopy, states=states)

    monkeypatch.setattr(type(mine._storage), "get_all_trials", get_all_trials)
    first = mine.ask()
    second = other.ask()  # another process: the next waiting one, not the same
    third = mine.ask()
    assert [first.number, second.number, third.number] == [0, 1, 2]
    assert [t.suggest_int("x", 0, 9) for t in (first, second, third)] == [0, 1, 2]
    fresh = mine.ask()  # nothing waits: a new trial
    assert fresh.number == 3
    assert "fixed_params" not in mine._storage.get_trial(fresh._trial_id).system_attrs
    assert scans == []  # Optuna's scan of every trial never ran
    assert view.pop_waiting() is None and other_view.pop_waiting() is None
    states = [t.state for t in mine.get_trials(deepcopy=False)]
    assert states == [TrialState.RUNNING] * 4
    # the run over, the study's asks are Optuna's own again
    view.close()
    other_view.close()
    mine.enqueue_trial({"x": 5})
    assert mine.ask().number == 4
    assert scans and "_pop_waiting_trial_id" not in mine.__dict__


def test_a_run_leaves_the_study_without_its_view(tmp_path):
    problem = Problem(space=small_space(), evaluator=CallableEvaluator(flaky))
    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path}/r.db"),
                                directions=problem.directions)  # fmt: skip
    optimize(study, problem, 3, progress=False)
    assert "_pop_waiting_trial_id" not in study.__dict__
