"""What the known-cost sampler reads of its study: the objective per candidate, what is
taken, running or final, read incrementally (finished trials never change)."""

from __future__ import annotations

import math
from collections.abc import Callable

from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

__all__ = ["NOT_RUN_ATTRS", "Observed"]

#: User attributes that mark a FAIL trial as closed before it ran (bitnas's ``spare``: another
#: run took the study's last place); such a trial does not count against its candidate.
NOT_RUN_ATTRS = frozenset({"spare"})


class Observed:
    """What the study holds, by candidate key. Finished trials never change: each is read
    once and folded into running totals, so a scan costs only the trials new or still
    unfinished since the last one (a full scan at 1,000 trials cost more than the model)."""

    def __init__(self) -> None:
        self._seen = 0  # trials 0 .. _seen-1 have been looked at
        self._open: list[int] = []  # of those, the numbers not finished then
        self._values: dict[str, float] = {}
        self._taken: set[str] = set()
        self._final: set[str] = set()
        self._failed: dict[str, int] = {}

    def read(
        self, study: Study, key: Callable[[FrozenTrial], str | None], objective: int, sign: float
    ) -> tuple[dict[str, float], set[str], set[str], set[str]]:
        trials = study.get_trials(deepcopy=False)
        if (
            any(trials[i].number != i for i in (0, len(trials) - 1) if trials)
            or len(trials) < self._seen
        ):  # not numbered 0..n-1 (or shrunk): start afresh
            self.__init__()  # type: ignore[misc]
        still_open: list[int] = []
        taken_open: set[str] = set()
        pending: set[str] = set()
        for i in [*self._open, *range(self._seen, len(trials))]:
            t = trials[i]
            if not t.state.is_finished():
                still_open.append(i)  # read again next time (its key may be set by then)
            k = key(t)
            if k is None:  # no candidate (yet), or one outside the candidates' space
                continue
            if not t.state.is_finished():
                if t.state in (TrialState.RUNNING, TrialState.WAITING):
                    taken_open.add(k)
                    pending.add(k)
                continue
            self._fold(t, k, objective, sign)
        self._seen, self._open = len(trials), still_open
        return dict(self._values), self._taken | taken_open, pending, set(self._final)

    def _fold(self, t: FrozenTrial, k: str, objective: int, sign: float) -> None:
        """Add a finished trial to the totals."""
        if t.state == TrialState.FAIL:
            if not NOT_RUN_ATTRS & t.user_attrs.keys():  # a candidate failed twice is given up
                self._failed[k] = self._failed.get(k, 0) + 1
                if self._failed[k] >= 2:
                    self._taken.add(k)
            return
        self._taken.add(k)
        v = self._value(t, objective, sign)
        if v is not None:
            self._values[k] = max(self._values.get(k, -math.inf), v)
            if t.state == TrialState.COMPLETE:
                self._final.add(k)

    @staticmethod
    def _value(t: FrozenTrial, objective: int, sign: float) -> float | None:
        v: float | None = None
        if t.state == TrialState.COMPLETE and t.values is not None:
            v = t.values[objective]
        elif t.state == TrialState.PRUNED and t.intermediate_values and objective == 0:
            # stopped early: its last value (of the first objective: the one reported per
            # epoch) tells the surrogate the architecture is poor; it is no front point
            v = t.intermediate_values[max(t.intermediate_values)]
        return sign * v if v is not None and math.isfinite(v) else None
