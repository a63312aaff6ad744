"""Runs that share one study, coordinated through its storage alone: who owns a trial, which
trials are under way elsewhere, when a proposal waits for its twin, and when the target is met.

Each trial names its run (``OWNER``: host, PID and the process's start time, so a reused PID
is not taken for the owner) right after it is asked. From that a run tells, for the other runs
of its host, a live owner from a dead one: trials a dead run left RUNNING are closed FAIL and
their architectures retried (``close_abandoned``); an architecture another live run is
training is waited for and reused (``wait_for_twin``); and the trials other live runs have
under way count toward the study's target, so runs on one host together stop at it
(``in_flight_elsewhere``, ``target_covered``). Runs on other hosts cannot be checked from
here, and are not waited for (see ``wait_for_twin``).
"""

from __future__ import annotations

import datetime
import os
import socket
import time
from collections.abc import Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from bitnas.search.records import (
    ATTR_DUPLICATE,
    ATTR_ERROR,
    ATTR_KEY,
    ATTR_RETRY,
    ATTR_SPARE,
    Proposal,
    counts,
    stopped_early,
)

__all__ = [
    "OWNER",
    "ORPHAN_AFTER_S",
    "close_abandoned",
    "closed_so_far",
    "in_flight_elsewhere",
    "study_target",
    "target_covered",
    "tell_spare",
    "wait_for_twin",
]


def _stat(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name (state first), [] where unknown."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _started(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot, Linux), "" where unknown: with
    the PID it names one process, even after the PID is reused."""
    fields = _stat(pid)
    return fields[19] if len(fields) > 19 else ""


OWNER = f"{socket.gethostname()}:{os.getpid()}:{_started(os.getpid())}"
ORPHAN_AFTER_S = 60.0


def close_abandoned(study: optuna.Study) -> int:
    """Close, as FAIL, the RUNNING trials whose run is gone: owned by a process of this host
    that no longer exists (a ``kill -9``, a crash). Returns how many were closed.

    Trials owned by live processes or other hosts are left alone, so two runs on one study do
    not close each other's trials. A RUNNING trial with no owner, older than
    ``ORPHAN_AFTER_S``, is closed too: bitnas records the owner right after asking, so such a
    trial was cut off in between. The architecture of a closed trial is enqueued
    (``retry_of`` names the closed trial), so the next trial asked re-runs it.
    """
    host = socket.gethostname()
    closed = 0
    now = datetime.datetime.now()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        name, pid, started = [*str(t.user_attrs.get("owner", "")).split(":"), "", "", ""][:3]
        orphan = (
            "owner" not in t.user_attrs
            and t.datetime_start is not None
            and ((now - t.datetime_start).total_seconds() > ORPHAN_AFTER_S)
        )
        if not orphan and (name != host or not pid.isdigit() or _alive(int(pid), started)):
            continue
        pid = pid or "unknown"
        study._storage.set_trial_user_attr(
            t._trial_id, ATTR_ERROR, f"abandoned: the run that owned it (pid {pid}) is gone"
        )
        study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
        if t.params and ATTR_KEY in t.user_attrs:
            # its architecture was never measured: the next trial asked trains it
            study.enqueue_trial(t.params, user_attrs={ATTR_RETRY: t.number})
        closed += 1
    _CLOSED[0] += closed
    return closed


#: How many trials ``close_abandoned`` closed in this process, all runs together.
_CLOSED = [0]


def closed_so_far() -> int:
    """Trials ``close_abandoned`` has closed in this process so far: a run's difference of it
    is what that run closed."""
    return _CLOSED[0]


def _alive(pid: int, started: str = "") -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        pass
    fields = _stat(pid)
    if fields[:1] == ["Z"]:  # a zombie: dead, not yet reaped by its parent
        return False
    # the PID exists; it is the owner only if it also started when the owner did
    now = fields[19] if len(fields) > 19 else ""
    return not (started and now and now != started)


def _live_elsewhere(t: FrozenTrial) -> bool:
    """Owned by another run of this host that is still alive. (Runs on other hosts cannot be
    checked from here; they are not waited for, see ``wait_for_twin``.)"""
    owner = str(t.user_attrs.get("owner", ""))
    name, pid, started = [*owner.split(":"), "", "", ""][:3]
    if owner == OWNER or name != socket.gethostname() or not pid.isdigit():
        return False
    return _alive(int(pid), started)


def in_flight_elsewhere(trials: list[FrozenTrial]) -> int:
    """How many trials other live runs of this host are training now, or have just asked and
    not recorded yet (see ``_unrecorded``): a run that counts them toward its target stops at
    the target instead of overshooting it."""
    return sum(1 for t in trials if _ahead(t))


def _twin(trials: list[FrozenTrial], p: Proposal, stopped: bool = False) -> FrozenTrial | None:
    key, mine = p.arch.key(), p.trial.number
    same = [t for t in trials if t.user_attrs.get(ATTR_KEY) == key and t.number != mine]
    for t in same:
        if t.state == TrialState.COMPLETE and ATTR_DUPLICATE not in t.user_attrs:
            return t
    if stopped:
        early = next((t for t in same if stopped_early(t)), None)
        if early is not None:
            return early
    # the lowest number trains, higher ones wait: two runs that proposed the same
    # architecture at once never wait for each other
    running = [t for t in same if t.state == TrialState.RUNNING and t.number < mine]
    return next((t for t in running if _live_elsewhere(t)), None)


def _unrecorded(t: FrozenTrial) -> bool:
    """A trial between ``ask`` and recording its architecture in another run: its owner is
    another live run of this host, or not written yet and the trial is younger than
    ``ORPHAN_AFTER_S`` (bitnas writes it right after asking)."""
    if ATTR_KEY in t.user_attrs:
        return False
    if "owner" in t.user_attrs:
        return _live_elsewhere(t)
    started = t.datetime_start
    return started is not None and (
        (datetime.datetime.now() - started).total_seconds() <= ORPHAN_AFTER_S
    )


def _ahead(t: FrozenTrial) -> bool:
    """On its way to a result in another live run of this host: RUNNING, and recorded (and
    not over budget: that one is about to be told PRUNED) or about to be (``_unrecorded``)."""
    if t.state != TrialState.RUNNING:
        return False
    if ATTR_KEY not in t.user_attrs:
        return _unrecorded(t)
    return t.user_attrs.get("feasible") is not False and _live_elsewhere(t)


def study_target(finished: int, n_trials: int, target: int | None) -> int:
    """The study's target of finished trials for a run that starts with ``finished`` of them:
    ``target`` where the caller fixed it, else ``n_trials`` more. A caller that counted the
    study earlier must pass the target it derived, not the difference: runs that share the
    study finish trials in between (loading data takes seconds), and a target re-derived from
    a later count overshoots by what they finished (measured: 17 for 16 with 4 runs on one
    PostgreSQL study)."""
    return finished + n_trials if target is None else target


def target_covered(
    trials: list[FrozenTrial], p: Proposal, target: int, finished: int | None = None
) -> bool:
    """Whether the study's finished trials and the lower-numbered trials other runs of this
    host have under way already make ``target``: then ``p`` is spare. Two runs that both saw
    the target one short before either asked a trial would otherwise both train one; with
    this rule the higher number gives way and the lowest never does, so runs on one host
    together stop at the target. ``finished``: the study's finished trials where the caller
    keeps count (``StudyView``); ``trials`` then need hold only the unfinished ones."""
    mine = p.trial.number
    ahead = sum(1 for t in trials if t.number < mine and _ahead(t))
    done = counts(trials)["finished"] if finished is None else finished
    return done + ahead >= target


def tell_spare(study: optuna.Study, p: Proposal) -> FrozenTrial:
    """Close a proposal that ``target_covered`` found not needed: FAIL (every sampler ignores
    FAIL trials, so it says nothing about the architecture), with the reason in ``spare``."""
    p.trial.set_user_attr(
        ATTR_SPARE, "not trained: trials under way in other runs reach the study's target"
    )
    return study.tell(p.trial, state=TrialState.FAIL)


def _recording(trials: list[FrozenTrial], p: Proposal) -> bool:
    """Whether a lower-numbered trial of another run is still between ``ask`` and recording
    its architecture: it may be ``p``'s twin, and its run, the lower number, will not wait
    for ``p``. Without this, two runs that ask the same architecture within
    milliseconds could both miss the other and train it twice."""
    return any(
        t.number < p.trial.number and t.state == TrialState.RUNNING and _unrecorded(t)
        for t in trials
    )


def wait_for_twin(
    study: optuna.Study,
    p: Proposal,
    poll: float = 0.5,
    stopped: bool = False,
    look: Callable[[str], list[FrozenTrial]] | None = None,
) -> FrozenTrial | None:
    """Across processes: the COMPLETE trial that already trained ``p``'s architecture (reuse
    it), or None (train it here); with ``stopped`` (the study has an early stopper), also a
    trial the stopper stopped. While another live run of this host trains it, wait for that
    trial; if it fails or its run dies (or it is stopped, without ``stopped``), train it here.
    While a lower-numbered trial of another run has not recorded its architecture yet, wait
    for the record (milliseconds): it may be the same one.

    Runs on other hosts are not waited for (their liveness cannot be checked, and waiting on
    a dead one would hang): an architecture both train at once is trained twice.

    ``look(key)``, where given, returns the trials to judge by, fresh on each call: the one
    that trained the architecture and those under way (``StudyView.twin_trials``) instead of
    every trial of the study."""
    while True:
        trials = look(p.arch.key()) if look is not None else study.get_trials(deepcopy=False)
        twin = _twin(trials, p, stopped)
        if twin is not None and twin.state.is_finished():
            return twin
        if twin is None and not _recording(trials, p):
            return None
        time.sleep(poll)
        close_abandoned(study)
