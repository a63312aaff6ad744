"""Sharing one study among several drivers that cannot block (the Ray backend's searcher runs
in Tune's controller loop): the study's target and the architectures other runs train, as
non-blocking questions asked again on every call.

The local runner waits in place (``coordination.wait_for_twin``, a sleep loop) for an architecture
another run is training, and for other runs' trials that may reach the study's target. A Ray
driver must not wait: while it waits it keeps its cluster resources (Tune holds the placement
groups of its idle actors), and the other run's trial may be the one waiting for them —
measured: on a 2-CPU cluster, a driver waiting for the other driver's two staged trials held
both CPUs, and both hung. So a Ray driver closes a proposal of an architecture another live
run of this host is training as spare (that run records it), and a driver with nothing of its
own under way whose remaining share of the target other live runs have under way ends; those
runs replace their own failures. The rules of who counts what are the local runner's
(``coordination.in_flight_elsewhere``, ``coordination.target_covered``).
"""

from __future__ import annotations

import time

import optuna
from optuna.trial import FrozenTrial, TrialState

from bitnas.search.coordination import (
    _recording,
    _twin,
    close_abandoned,
    in_flight_elsewhere,
    target_covered,
    tell_spare,
)
from bitnas.search.records import ATTR_SPARE, Proposal
from bitnas.search.view import StudyView

__all__ = ["RECORD_WAIT_S", "SharedStudy"]

#: How long, at most, a proposal waits for a lower-numbered trial of another run to record
#: its architecture (seconds; it takes milliseconds).
RECORD_WAIT_S = 5.0
#: How often, at most, a driver with nothing to start looks at the storage again (seconds).
POLL_S = 0.25


class SharedStudy:
    """One driver's place in a study other runs may share, toward the study's ``target``."""

    def __init__(self, study: optuna.Study, view: StudyView, target: int, stopped: bool) -> None:
        self.study, self.view, self.target, self.stopped = study, view, target, stopped
        self._looked = 0.0
        self._changed = True
        self.left = 0

    def look(self) -> None:
        """Refresh the view when this run finished a trial since the last look
        (``changed``), else at most every ``POLL_S``; a run that waits on others also closes
        the trials of runs that died (``coordination.close_abandoned``)."""
        now = time.monotonic()
        if self._changed or now - self._looked >= POLL_S:
            self.view.refresh()
            if not self._changed:
                close_abandoned(self.study)
            self._looked, self._changed = now, False

    def changed(self) -> None:
        """This run told a trial: the next ``look`` reads the storage."""
        self._changed = True

    def twin(self, p: Proposal) -> tuple[str, FrozenTrial | None]:
        """What to do with ``p`` given the other runs: ("reuse", the trial that trained its
        architecture), ("busy", the trial of another live run of this host training it now),
        or ("train", None). A lower-numbered trial of another run still between ``ask`` and
        recording its architecture (milliseconds; it may be the same one) is waited for, at
        most ``RECORD_WAIT_S``."""
        deadline = time.monotonic() + RECORD_WAIT_S
        while True:
            trials = self.view.twin_trials(p.arch.key())
            twin = _twin(trials, p, self.stopped)
            if twin is not None:
                return ("reuse" if twin.state.is_finished() else "busy"), twin
            if not _recording(trials, p) or time.monotonic() > deadline:
                return "train", None
            time.sleep(0.02)

    def leave_to(self, p: Proposal, twin: FrozenTrial) -> None:
        """Close ``p``, whose architecture another live run trains now (trial ``twin``), as
        spare: that run records it. (A driver does not wait for it: while it waits, it holds
        its cluster resources, which the other run's trial may be waiting for.)"""
        p.trial.set_user_attr(
            ATTR_SPARE, f"not trained: another run is training it (trial {twin.number})"
        )
        self.study.tell(p.trial, state=TrialState.FAIL)
        self.left += 1

    def reached(self) -> bool:
        return self.view.finished >= self.target

    def room(self, own_pending: int) -> bool:
        """Whether one more trial of this run is wanted: the study's finished trials, this
        run's trials under way and those of other live runs of this host stay short of the
        target."""
        ahead = in_flight_elsewhere(self.view.running)
        return self.view.finished + own_pending + ahead < self.target

    def spare(self, p: Proposal, own_pending: int) -> bool:
        """Close ``p`` as spare (and say so) when lower-numbered trials of other runs under
        way already make the target with this run's (see ``coordination.target_covered``)."""
        self.view.refresh()
        if target_covered(self.view.running, p, self.target, self.view.finished + own_pending):
            tell_spare(self.study, p)
            return True
        return False
