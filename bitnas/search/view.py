"""A run's view of a (possibly shared) study, kept current by looking only at what changed.

A runner asks the same questions before every trial: how many trials are finished, which
architectures are trained, what other runs have under way. Answering them from every trial
of the study made a trial's cost grow with the study (at 7,500 trials the runner spent most
of its time rescanning). ``StudyView`` answers them from running totals instead: each
``refresh`` looks only at the trials that are new since the last one and at those that were
not finished then (a finished trial never changes), so its cost follows the trials under
way, not the trials stored. What it keeps per trial is an architecture key and a trial id,
never the trial itself: a trained trial is read again from the storage only when a
duplicate needs its result.

Optuna has no query for "trials changed since": the storage's own record of trials is read
in place (Optuna's cache over a database reads only new and unfinished rows from the
server, and a journal storage replays only new log records), and only its new and
unfinished entries are looked at (see ``StudyView._read``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from bitnas.search.coordination import OWNER
from bitnas.search.records import (
    ATTR_DUPLICATE,
    ATTR_KEY,
    COUNT_KEYS,
    failed_for_itself,
    outcome,
    stopped_early,
)
from bitnas.search.stopping import Reference, references

__all__ = ["StudyView"]


class _Trained(Mapping[str, FrozenTrial]):
    """Architecture key -> the trial that trained it (``evaluated_keys``'s answer), read from
    the storage on lookup."""

    def __init__(self, view: StudyView) -> None:
        self._view = view

    def _id(self, key: str) -> int | None:
        v = self._view
        tid = v.complete.get(key)
        if tid is None and v.stopped:
            tid = v.early.get(key)
        return tid

    def __getitem__(self, key: str) -> FrozenTrial:
        tid = self._id(key)
        if tid is None:
            raise KeyError(key)
        return self._view.storage.get_trial(tid)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._id(key) is not None

    def __iter__(self) -> Iterator[str]:
        v = self._view
        yield from v.complete
        if v.stopped:
            yield from (k for k in v.early if k not in v.complete)

    def __len__(self) -> int:
        v = self._view
        extra = sum(1 for k in v.early if k not in v.complete) if v.stopped else 0
        return len(v.complete) + extra


class _NotToDraw:
    """What an unseen draw must avoid (``trials._not_to_draw``'s answer), as a membership
    test over the view's sets: trained, failed for what they are, under way."""

    def __init__(self, view: StudyView) -> None:
        self._view = view
        running = view.running
        self._running = {str(t.user_attrs[ATTR_KEY]) for t in running if ATTR_KEY in t.user_attrs}

    def __contains__(self, key: object) -> bool:
        v = self._view
        return key in v.trained or key in v.failed or key in self._running


class StudyView:
    """Running totals over ``study``'s trials, for one run; ``refresh`` brings them up to date.

    ``stopped``: the study has an early stopper, so an architecture it stopped counts as
    trained (see ``records.evaluated_keys``). ``start`` is the number of trials the study held
    when the view was made: ``added`` counts this process's trials from there on.
    """

    def __init__(self, study: optuna.Study, stopped: bool = False) -> None:
        self.study = study
        self.storage = study._storage
        self.stopped = stopped
        self._sid = study._study_id
        self._n = 0  # trials below this number were looked at
        self._open: list[int] = []  # numbers below _n not finished at the last look
        self.totals = dict.fromkeys(COUNT_KEYS, 0)  # finished trials only
        self.mine = dict.fromkeys((*COUNT_KEYS, "retries"), 0)
        self.complete: dict[str, int] = {}  # key -> trial id of the trial that trained it
        self._complete_dup: set[str] = set()  # keys whose entry is (for now) a re-told one
        self.early: dict[str, int] = {}  # key -> trial id of the first trial a stopper stopped
        self.failed: set[str] = set()
        self._refs: dict[str, Reference] = {}
        self.running: list[FrozenTrial] = []
        self.trained: Mapping[str, FrozenTrial] = _Trained(self)
        self._fail_keys: set[str] = set()  # architectures of every FAIL trial so far
        self._mine_failed: list[str] = []  # architectures of this run's FAIL trials
        self.start: int | None = None
        self.refresh()
        self.start = self._n
        # trials waiting when the run started (a closed trial's enqueued retry) are this
        # run's once it asks them
        self._open_at_start = frozenset(self._open)
        # Optuna's ask looks for a WAITING trial first by listing every trial of the study in
        # the states asked (``Study._pop_waiting_trial_id``): at 10,000 journal trials, 3-7 ms
        # of a 4-ms trial, growing with the study (docs/BENCHMARKS.md, "Long studies"). Optuna
        # has no query for it, so this run's asks take it from the view instead, which knows
        # the unfinished trials already; the rest of ``ask`` is Optuna's.
        # ``close`` puts back what was there when the run ends.
        self._prev_pop = study.__dict__.get("_pop_waiting_trial_id")
        study._pop_waiting_trial_id = self.pop_waiting  # type: ignore[method-assign]

    def close(self) -> None:
        """Give the study's ``ask`` back its own WAITING lookup (or an enclosing view's): a
        study used after the run does not go through this view."""
        if self.study.__dict__.get("_pop_waiting_trial_id") == self.pop_waiting:
            if self._prev_pop is None:
                del self.study.__dict__["_pop_waiting_trial_id"]
            else:
                self.study._pop_waiting_trial_id = self._prev_pop  # type: ignore[method-assign]

    @property
    def n_trials(self) -> int:
        """Trials in the study at the last refresh (every state)."""
        return self._n

    @property
    def finished(self) -> int:
        return self.totals["finished"]

    def counts(self) -> dict[str, int]:
        """``records.counts`` of the whole study at the last refresh."""
        return {**self.totals, "running": len(self.running)}

    def added(self) -> dict[str, int]:
        """``records.counts`` of this process's trials since the view was made: a failure of
        this run whose architecture was trained to the end since is ``retried``, not
        ``failed``; ``retries`` counts the finished trials that trained the architecture of an
        earlier FAIL trial (a closed or failed one, of any run)."""
        mine = [t for t in self.running if self._mine(t)]
        trained = self.complete.keys() | self.early.keys()
        retried = sum(1 for k in self._mine_failed if k in trained)
        failed = self.mine["failed"] - retried
        return {**self.mine, "failed": failed, "retried": retried, "running": len(mine)}

    def pop_waiting(self) -> int | None:
        """The first WAITING trial (by number) set RUNNING for this process, or None: what
        Optuna's ``Study._pop_waiting_trial_id`` does, from the view's unfinished trials
        (fresh: refreshed first) instead of every trial of the study. Another process taking
        the same trial first is met as Optuna meets it: the state change fails, the next one
        is tried."""
        self.refresh()
        for t in self.running:
            if t.state != TrialState.WAITING:
                continue
            try:
                if not self.storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING):
                    continue
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
            return int(t._trial_id)
        return None

    def not_to_draw(self) -> _NotToDraw:
        return _NotToDraw(self)

    def references(self) -> list[Reference]:
        """The stopper's references (``stopping.references``) over the completed trials."""
        return list(self._refs.values())

    def twin_trials(self, key: str) -> list[FrozenTrial]:
        """After a refresh: what ``coordination.wait_for_twin`` needs to judge a proposal of
        ``key``: the trial that trained it (completed, or stopped) and every trial under way."""
        self.refresh()
        found = [self.storage.get_trial(tid) for tid in (self.complete.get(key),
                 self.early.get(key)) if tid is not None]  # fmt: skip
        return found + self.running

    def refresh(self) -> None:
        n, trial = self._read()
        still: list[int] = []
        running: list[FrozenTrial] = []
        for i in [*self._open, *range(self._n, n)]:
            t = trial(i)
            if t.state.is_finished():
                self._settle(t)
            else:
                still.append(i)
                running.append(t)
        self._open, self._n, self.running = still, n, running

    def _read(self) -> tuple[int, Callable[[int], FrozenTrial]]:
        """How many trials the study holds, and trial number -> trial, fresh from the
        storage. Optuna's two shared storages keep every trial in memory already (the
        journal's replay, the cache over a database); their lists are read in place, since
        ``get_all_trials`` builds a new list of every trial on each call (at 10,000 trials,
        most of a trial's time). Any other storage: ``get_all_trials``, in number order."""
        st: Any = self.storage
        replay = getattr(st, "_replay_result", None)
        if replay is not None and hasattr(st, "_sync_with_backend"):  # JournalStorage
            with st._thread_lock:
                st._sync_with_backend()
                ids = replay._study_id_to_trial_ids[self._sid]
                by_id = replay._trials
                return len(ids), lambda i: by_id[ids[i]]
        cached = getattr(st, "_studies", None)
        if cached is not None and hasattr(st, "_read_trials_from_remote_storage"):
            st._read_trials_from_remote_storage(self._sid)  # Optuna's cache over an RDB
            by_number = cached[self._sid].trials
            return len(by_number), by_number.__getitem__
        trials = self.storage.get_all_trials(self._sid, deepcopy=False)
        return len(trials), trials.__getitem__

    def _mine(self, t: FrozenTrial) -> bool:
        return (
            self.start is not None
            and (t.number >= self.start or t.number in self._open_at_start)
            and t.user_attrs.get("owner") == OWNER
        )

    def _settle(self, t: FrozenTrial) -> None:
        what = outcome(t)
        self.totals[what] += 1
        if what in ("complete", "pruned"):
            self.totals["finished"] += 1
        key = t.user_attrs.get(ATTR_KEY)
        if self._mine(t):
            self.mine[what] += 1
            if what in ("complete", "pruned"):
                self.mine["finished"] += 1
                self.mine["retries"] += key in self._fail_keys
            elif what == "failed" and key:
                self._mine_failed.append(str(key))
        if not key:
            return
        if t.state == TrialState.FAIL:
            self._fail_keys.add(str(key))
        if t.state == TrialState.COMPLETE:
            dup = ATTR_DUPLICATE in t.user_attrs
            if key not in self.complete or (key in self._complete_dup and not dup):
                self.complete[key] = t._trial_id
                if dup:
                    self._complete_dup.add(key)
                else:
                    self._complete_dup.discard(key)
            if self.stopped and not dup:
                for ref in references([t]):
                    self._refs.setdefault(key, ref)
        elif self.stopped and stopped_early(t):
            self.early.setdefault(key, t._trial_id)
        elif failed_for_itself(t):
            self.failed.add(key)
