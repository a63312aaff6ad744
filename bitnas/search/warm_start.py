"""Warm start: begin a study with the feasible Pareto front of an earlier one.

The front's parameters are enqueued (``study.enqueue_trial``), so the next trials the study
asks for are those architectures, trained under this study's settings, before its sampler
proposes anything. A front trial is skipped when this space cannot build the very
architecture it trained (its parameters are foreign, or build a different network here), when
its cost is over this budget, or when this study already holds that architecture (trained,
stopped, running or enqueued); what was skipped is counted, not hidden.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from bitnas.errors import BitnasError
from bitnas.search.export import front_trials
from bitnas.search.problem import Problem
from bitnas.search.records import ATTR_KEY, is_rejected
from bitnas.spaces.choosers import ParamsChooser, RecordingChooser

__all__ = ["ATTR_WARM_START", "WarmStart", "enqueue_front"]

#: User attribute of an enqueued trial: "<source study>#<trial number>".
ATTR_WARM_START = "warm_start_from"


@dataclass(frozen=True)
class WarmStart:
    """What ``enqueue_front`` did with the ``front`` trials of study ``source``."""

    source: str
    front: int
    enqueued: int
    invalid: int = 0
    over_budget: int = 0
    present: int = 0
    no_room: int = 0

    def describe(self) -> str:
        skipped = [
            (self.invalid, "not in this space"),
            (self.over_budget, "over this budget"),
            (self.present, "already in this study"),
            (self.no_room, "beyond this run's trials"),
        ]
        why = ", ".join(f"{n} {what}" for n, what in skipped if n)
        return (
            f"warm start from {self.source!r}: enqueued {self.enqueued} of its {self.front} "
            f"front trials" + (f" (skipped: {why})" if why else "")
        )


def _held_keys(study: optuna.Study, problem: Problem) -> set[str]:
    """Architectures this study holds: trained, stopped, running, or enqueued."""
    keys: set[str] = set()
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.FAIL or is_rejected(t):
            continue  # a failed trial is retried anyway; a rejected one was never trained
        if t.state == TrialState.WAITING:
            with contextlib.suppress(BitnasError, ValueError, TypeError, KeyError):
                keys.add(problem.space.from_params(t.system_attrs.get("fixed_params", {})).key())
            continue
        key = t.user_attrs.get(ATTR_KEY)
        if key:
            keys.add(str(key))
    return keys


def enqueue_front(
    study: optuna.Study,
    problem: Problem,
    source: optuna.Study,
    *,
    limit: int | None = None,
    layers: int = 1,
) -> WarmStart:
    """Enqueue, cheapest first, the feasible front of ``source`` (its first ``layers``
    non-dominated layers, layer by layer) that ``problem`` can train and ``study`` does not
    hold yet; at most ``limit`` (None: all). Returns the counts."""
    front = front_trials(source, layers=layers)
    held = _held_keys(study, problem)
    counts = dict.fromkeys(("enqueued", "invalid", "over_budget", "present", "no_room"), 0)
    for t in front:
        rec = RecordingChooser(ParamsChooser(t.params))
        try:
            arch = problem.space.build(rec)
        except (BitnasError, ValueError, TypeError, KeyError):  # foreign parameters
            counts["invalid"] += 1
            continue
        if t.user_attrs.get(ATTR_KEY, arch.key()) != arch.key():
            counts["invalid"] += 1  # the same parameters build another network in this space
            continue
        if not problem.budget.allows(float(problem.cost(arch))):
            counts["over_budget"] += 1
            continue
        if arch.key() in held:
            counts["present"] += 1
            continue
        if limit is not None and counts["enqueued"] >= limit:
            counts["no_room"] += 1
            continue
        study.enqueue_trial(
            rec.params,
            user_attrs={
                "proposed_by": "warm-start",
                ATTR_WARM_START: f"{source.study_name}#{t.number}",
            },
        )
        held.add(arch.key())
        counts["enqueued"] += 1
    return WarmStart(source=source.study_name, front=len(front), **counts)
