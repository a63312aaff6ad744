"""A Ray driver's view of a study shared with other runs (bitnas/search/sharing.py), without
Ray: what it reuses, what it leaves to another run, when it has room, when it gives way."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from optuna.trial import TrialState

from bitnas.search import counts
from bitnas.search.sharing import SharedStudy
from bitnas.search.trials import _started, propose
from bitnas.search.view import StudyView
from tests.reliability.test_concurrent import one_arch_problem, running_elsewhere
from tests.search.test_trials import new_study


@pytest.fixture
def other_run():
    """A live process of this host standing in for another run (a Ray driver)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield f"{socket.gethostname()}:{proc.pid}:{_started(proc.pid)}", proc
    proc.kill()
    proc.wait()


def shared(study, target):
    return SharedStudy(study, StudyView(study), target, stopped=False)


def test_an_architecture_another_run_trains_is_left_to_it(other_run):
    owner, _ = other_run
    problem = one_arch_problem()
    study = new_study(problem)
    theirs = running_elsewhere(study, problem, owner)
    here = shared(study, target=2)
    here.look()
    assert here.room(own_pending=0)  # 0 finished + 1 of theirs under way < 2
    mine = propose(study, problem)
    what, twin = here.twin(mine)
    assert (what, twin.number) == ("busy", theirs.trial.number)
    here.leave_to(mine, twin)
    t = study.trials[mine.trial.number]
    assert t.state == TrialState.FAIL and "another run is training it" in t.user_attrs["spare"]
    assert counts(study.trials)["spare"] == 1 and counts(study.trials)["finished"] == 0
    # once theirs is done, a proposal of it is a repeat to reuse, and the target is covered
    study.tell(theirs.trial, [0.9, theirs.cost])
    again = propose(study, problem)
    what, twin = here.twin(again)
    assert (what, twin.number) == ("reuse", theirs.trial.number)


def test_room_counts_other_runs_trials_and_this_runs_own(other_run):
    owner, _ = other_run
    problem = one_arch_problem()
    study = new_study(problem)
    running_elsewhere(study, problem, owner)
    here = shared(study, target=2)
    here.look()
    assert here.room(own_pending=0) and not here.room(own_pending=1)
    assert not here.reached()


def test_the_higher_of_two_proposals_for_the_last_place_gives_way(other_run):
    owner, _ = other_run
    problem = one_arch_problem()
    study = new_study(problem)
    running_elsewhere(study, problem, owner)  # trial 0, another run's, toward a target of 1
    here = shared(study, target=1)
    mine = propose(study, problem)
    assert here.spare(mine, own_pending=0)
    assert study.trials[mine.trial.number].user_attrs["spare"].startswith("not trained")
