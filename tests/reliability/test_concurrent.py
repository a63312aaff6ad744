"""Two runs on one study at once: on a journal file (or a database server) they share it, stop
at its target and train each architecture once; on a SQLite file the second is refused with a
message naming the storages made for several writers."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import bitnas.search.coordination as coordination_module
import bitnas.search.local as local_module
from bitnas.errors import StorageError
from bitnas.search import Problem, counts, open_storage, optimize, trials_table
from bitnas.search.repeats import as_sampled
from bitnas.search.storage import exclusive_writer
from bitnas.search.trials import (
    _started,
    close_abandoned,
    in_flight_elsewhere,
    propose,
    target_covered,
    wait_for_twin,
)
from bitnas.studies import load_spec
from tests.conftest import SpyEvaluator, small_space, small_study_toml
from tests.search.test_trials import new_study

ROOT = Path(__file__).resolve().parents[2]


def start_run(f: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen(
        [sys.executable, "-m", "bitnas", "run", str(f), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )  # fmt: skip


@pytest.mark.slow
def test_two_runs_on_one_journal_study_share_it(tmp_path):
    log = tmp_path / "shared.log"
    f = tmp_path / "shared.toml"
    f.write_text(
        small_study_toml("shared", bitops="60_000", epochs=12, storage=f"journal:///{log}")
        .replace("trials = 5", "trials = 8")
    )  # fmt: skip
    runs = [start_run(f), start_run(f)]
    outs = [p.communicate(timeout=300) for p in runs]
    for p, (out, err) in zip(runs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
        assert "now 8 finished trials" in out, out
    # each run reports what it added itself: together, the target
    added = [int(re.search(r"added (\d+) finished trials", out).group(1)) for out, _ in outs]
    assert sum(added) == 8 and all(a > 0 for a in added), added
    study = optuna.load_study(study_name="shared", storage=open_storage(f"journal:///{log}"))
    trials = study.get_trials()
    c = counts(trials)
    # the target is the study's: two runs on one host stop at it together, not at 2 x 8
    assert c["finished"] == 8 and c["running"] == 0
    assert [t.number for t in trials] == list(range(len(trials)))  # nothing lost
    trained = [
        t for t in trials if t.state == TrialState.COMPLETE and "duplicate_of" not in t.user_attrs
    ]
    keys = [t.user_attrs["arch_key"] for t in trained]
    assert len(keys) == len(set(keys)) == 8, "an architecture was trained twice"
    pids = {p.pid for p in runs}
    owners = {int(t.user_attrs["owner"].split(":")[1]) for t in trained}
    assert owners == pids, "both runs trained trials, at the same time"
    for t in trials:  # every duplicate points at the trial that trained its architecture
        if "duplicate_of" in t.user_attrs:
            src = trials[t.user_attrs["duplicate_of"]]
            assert src.user_attrs["arch_key"] == t.user_attrs["arch_key"]
            # a repeat is stored PRUNED with the values it re-tells (bitnas.search.repeats)
            assert src.values == as_sampled(t).values


def test_a_second_run_on_a_sqlite_file_is_refused(tmp_path):
    db = tmp_path / "one.db"
    f = tmp_path / "one.toml"
    f.write_text(small_study_toml("one", bitops="60_000", epochs=1, storage=f"sqlite:///{db}"))
    url = f"sqlite:///{db}"
    with exclusive_writer(url):  # a run holds the file
        p = start_run(f)
        out, err = p.communicate(timeout=120)
        assert p.returncode == 2 and "Traceback" not in err
        assert f"storage {url} is in use by another `bitnas run` (pid {os.getpid()} on" in err
        assert "journal file (--storage journal:///runs/study.log)" in err
        assert "database server URL" in err
        assert not db.exists(), "the refused run wrote nothing"
        import bitnas

        with pytest.raises(StorageError, match="takes one run at a time"):
            bitnas.run(load_spec(f), progress=False)
    # released when the holder ends: the same run now goes through
    p = start_run(f)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0 and "now 5 finished trials" in out, err[-2000:]


@pytest.fixture
def other_run():
    """A live process of this host standing in for another `bitnas run`."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield f"{socket.gethostname()}:{proc.pid}:{_started(proc.pid)}", proc
    proc.kill()
    proc.wait()


def one_arch_problem():
    space = small_space(depth=(1, 1), width=(16,), wbits=(2,), abits=(1,), timesteps=(1,))
    return Problem(space=space, evaluator=SpyEvaluator())


def running_elsewhere(study, problem, owner):
    """Trial #0: the only architecture, RUNNING in another run."""
    p = propose(study, problem)
    p.trial.set_user_attr("owner", owner)
    return p


def test_an_architecture_another_run_trains_is_waited_for_then_reused(other_run):
    owner, _ = other_run
    problem = one_arch_problem()
    study = new_study(problem)
    theirs = running_elsewhere(study, problem, owner)
    mine = propose(study, problem)
    # the lower number trains: #0 does not wait for #1
    assert wait_for_twin(study, theirs, 0.05) is None
    threading.Timer(0.5, lambda: study.tell(theirs.trial, [0.9, theirs.cost])).start()
    t0 = time.monotonic()
    twin = wait_for_twin(study, mine, 0.05)
    assert twin is not None and twin.number == 0 and time.monotonic() - t0 >= 0.4


def test_a_twin_whose_run_died_is_closed_and_trained_here(other_run):
    owner, proc = other_run
    problem = one_arch_problem()
    study = new_study(problem)
    running_elsewhere(study, problem, owner)
    mine = propose(study, problem)
    threading.Timer(0.3, proc.kill).start()
    assert wait_for_twin(study, mine, 0.05) is None
    assert study.trials[0].state == TrialState.FAIL
    assert study.trials[0].user_attrs["error"].startswith("abandoned")


def test_a_run_counts_other_runs_trials_toward_the_target(other_run):
    owner, _ = other_run
    problem = one_arch_problem()
    study = new_study(problem)
    theirs = running_elsewhere(study, problem, owner)
    threading.Timer(0.5, lambda: study.tell(theirs.trial, [0.9, theirs.cost])).start()
    optimize(study, problem, 1, progress=False)
    # the other run's trial reached the target: this run trained nothing and added nothing
    assert problem.evaluator.seen == [] and len(study.trials) == 1
    assert counts(study.trials)["finished"] == 1


def test_a_lower_trial_still_recording_its_architecture_is_waited_for(other_run):
    """The race CI once hit: run A asks trial #0, run B asks #1 for the same architecture and
    checks for a twin before A has recorded #0's architecture. B must wait for #0's record
    (then for #0), not train at once: A, the lower number, never waits for B."""
    owner, _ = other_run
    problem = one_arch_problem()
    study = new_study(problem)
    theirs = study.ask()  # asked, its architecture not recorded yet
    study._storage.set_trial_user_attr(theirs._trial_id, "owner", owner)
    mine = propose(study, problem)
    # on its way: a run counting toward the study's target counts it
    assert in_flight_elsewhere(study.get_trials()) == 1
    recorded = threading.Event()

    def record_then_finish():
        study._storage.set_trial_user_attr(theirs._trial_id, "arch_key", mine.arch.key())
        recorded.set()
        threading.Timer(0.3, lambda: study.tell(theirs, [0.9, mine.cost])).start()

    threading.Timer(0.3, record_then_finish).start()
    twin = wait_for_twin(study, mine, 0.05)
    assert recorded.is_set(), "returned before the lower trial said what it trains"
    assert twin is not None and twin.number == 0 and twin.state == TrialState.COMPLETE


def test_a_lower_trial_recording_another_architecture_is_waited_for_only_until_then(monkeypatch):
    problem = one_arch_problem()
    study = new_study(problem)
    theirs = study.ask()  # enqueued trials carry attributes before their owner: not "no attrs"
    study._storage.set_trial_user_attr(theirs._trial_id, "retry_of", 7)
    mine = propose(study, problem)
    assert in_flight_elsewhere(study.get_trials()) == 1  # young, no owner yet: on its way
    recorded = threading.Event()

    def record():
        study._storage.set_trial_user_attr(theirs._trial_id, "arch_key", "other")
        recorded.set()

    threading.Timer(0.3, record).start()
    assert wait_for_twin(study, mine, 0.05) is None  # train it here...
    assert recorded.is_set()  # ...once #0 said what it is
    # a lower trial that has had no owner for longer than a run takes to write one is not
    # waited for past that age, and the next look closes it as abandoned
    monkeypatch.setattr(coordination_module, "ORPHAN_AFTER_S", 0.5)
    study2 = new_study(problem)
    stale = study2.ask()
    study2._storage.set_trial_user_attr(stale._trial_id, "retry_of", 7)
    late = propose(study2, problem)
    t0 = time.monotonic()
    assert wait_for_twin(study2, late, 0.05) is None
    assert 0.2 <= time.monotonic() - t0 < 10
    # the waiting run's own look at the storage closed it
    assert study2.trials[0].state == TrialState.FAIL
    assert study2.trials[0].user_attrs["error"].startswith("abandoned")
    assert in_flight_elsewhere(study2.get_trials()) == 0 and close_abandoned(study2) == 0


def test_a_trial_another_run_asked_first_takes_the_last_place(other_run, monkeypatch):
    """Both runs saw the target one short, then both asked: the higher number gives way
    (closed "spare", not trained) instead of overshooting the target."""
    owner, _ = other_run
    problem = one_arch_problem()
    study = new_study(problem)
    real_propose = local_module.propose
    theirs = []

    def other_run_asks_first(*args, **kwargs):
        if not theirs:  # between this run's look at the target and its ask
            theirs.append(study.ask())
            study._storage.set_trial_user_attr(theirs[0]._trial_id, "owner", owner)
            threading.Timer(0.3, lambda: study.tell(theirs[0], [0.9, 1.0])).start()
        return real_propose(*args, **kwargs)

    monkeypatch.setattr(local_module, "propose", other_run_asks_first)
    added = optimize(study, problem, 1, progress=False)
    assert problem.evaluator.seen == [], "this run trained past the study's target"
    mine = study.trials[1]
    assert mine.state == TrialState.FAIL and mine.user_attrs["spare"].startswith("not trained")
    assert added["finished"] == 0 and added["spare"] == 1 and added["failed"] == 0
    assert counts(study.trials)["finished"] == 1
    # the export says why, in its own column (not as an over-budget rejection)
    rows = trials_table(study).to_pylist()
    assert rows[1]["spare"] == mine.user_attrs["spare"] and rows[1]["rejected"] is None


def test_only_lower_trials_under_way_in_other_runs_make_a_trial_spare(other_run):
    owner, _ = other_run
    problem = one_arch_problem()
    study = new_study(problem)
    first = propose(study, problem)  # #0, this run's
    running_elsewhere(study, problem, owner)  # #1, recorded, another live run's
    last = propose(study, problem)  # #2, this run's
    trials = study.get_trials()
    # the lowest number never gives way: #1 is after #0
    assert not target_covered(trials, first, 1)
    # #1 under way fills a target of 1 for #2, not a target of 2; #0 is this run's own
    assert target_covered(trials, last, 1) and not target_covered(trials, last, 2)
