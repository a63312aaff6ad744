"""Trial records: what bitnas writes on a trial, and what a trial's record says it came to.

Every trial carries its architecture (``ATTR_ARCH``, keyed by ``ATTR_KEY``) and, where it did
not end with a result of its own, the reason: ``rejected`` (over budget), ``duplicate_of`` (a
repeat), ``stopped`` (an early stopper), ``error`` (a failure), ``spare`` (not needed). Its
``outcome`` is read from these and its state alone, so every reader of the storage (runners,
``bitnas.search.view``, exports, reports) counts a study the same way.

What counts toward a study's target ("finished"): trials that trained and produced a result —
COMPLETE, or PRUNED by an early stopper. Failed trials do not count (a re-run retries them), nor
do rejected proposals, nor duplicates (a proposal of an architecture the study already trained is
told that result, as feedback for the sampler, without training again: stored PRUNED with the
values in ``repeat_values``, shown COMPLETE to the sampler, ``bitnas.search.repeats``). While the
study runs with an early stopper, a proposal of an architecture the stopper already stopped is a
duplicate too: it is told PRUNED with that trial's curve instead of being trained (training is
deterministic, so the same curve would come again, and the stopper, with at least as many
completed trials to compare with, would most likely stop it again). The stopper's settings are
not part of this: a study resumed with other settings still re-tells the stops of the earlier
ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from bitnas.spaces.architecture import Architecture

__all__ = [
    "ATTR_ARCH",
    "ATTR_DUPLICATE",
    "ATTR_ERROR",
    "ATTR_KEY",
    "ATTR_REJECTED",
    "ATTR_RETRY",
    "ATTR_SPARE",
    "ATTR_STOPPED",
    "COUNT_KEYS",
    "Proposal",
    "counts",
    "evaluated_keys",
    "failed_for_itself",
    "is_rejected",
    "outcome",
    "stopped_early",
]

ATTR_ARCH = "architecture"
ATTR_KEY = "arch_key"
ATTR_REJECTED = "rejected"
ATTR_ERROR = "error"
ATTR_DUPLICATE = "duplicate_of"
#: Why an early stopper stopped the trial (it then ends PRUNED, bitnas.search.stopping).
ATTR_STOPPED = "stopped"
ATTR_RETRY = "retry_of"
ATTR_SPARE = "spare"


@dataclass(frozen=True)
class Proposal:
    trial: optuna.trial.Trial
    arch: Architecture
    cost: float
    duplicate_of: FrozenTrial | None = None


def is_rejected(t: FrozenTrial) -> bool:
    return ATTR_REJECTED in t.user_attrs


COUNT_KEYS = (
    "finished", "complete", "pruned", "failed", "retried", "duplicate", "rejected", "spare",
    "running",
)  # fmt: skip


def outcome(t: FrozenTrial) -> str:
    """The ``counts`` key of one trial (``finished`` aside: complete and pruned are)."""
    if t.state in (TrialState.RUNNING, TrialState.WAITING):
        return "running"
    if is_rejected(t):
        return "rejected"
    if ATTR_DUPLICATE in t.user_attrs:
        return "duplicate"
    if ATTR_SPARE in t.user_attrs:
        return "spare"
    if t.state == TrialState.FAIL:
        return "failed"
    return "complete" if t.state == TrialState.COMPLETE else "pruned"


def counts(trials: list[FrozenTrial]) -> dict[str, int]:
    """Trials by outcome; ``finished`` (complete + pruned) is what counts toward a target.
    A FAIL trial whose architecture a later trial trained to the end (the retry of an
    abandoned or interrupted trial) is ``retried``, not ``failed``: nothing is left to retry."""
    c = dict.fromkeys(COUNT_KEYS, 0)
    trained = {
        t.user_attrs.get(ATTR_KEY)
        for t in trials
        if ATTR_DUPLICATE not in t.user_attrs
        and (t.state == TrialState.COMPLETE or stopped_early(t))
    }
    for t in trials:
        what = outcome(t)
        if what == "failed" and t.user_attrs.get(ATTR_KEY) in trained:
            what = "retried"
        c[what] += 1
        if what in ("complete", "pruned"):
            c["finished"] += 1
    return c


def stopped_early(t: FrozenTrial) -> bool:
    """PRUNED by an early stopper after training (not a rejection, not a re-told duplicate)."""
    return (
        t.state == TrialState.PRUNED
        and ATTR_STOPPED in t.user_attrs
        and ATTR_DUPLICATE not in t.user_attrs
    )


def evaluated_keys(trials: list[FrozenTrial], stopped: bool = False) -> dict[str, FrozenTrial]:
    """Architecture key -> first COMPLETE trial that trained it; with ``stopped`` (the study
    runs with an early stopper), also -> the first trial a stopper stopped, for architectures
    no trial completed."""
    seen: dict[str, FrozenTrial] = {}
    early: dict[str, FrozenTrial] = {}
    for t in trials:
        key = t.user_attrs.get(ATTR_KEY)
        if not key:
            continue
        if t.state == TrialState.COMPLETE and key not in seen:
            seen[key] = t
        elif stopped and stopped_early(t) and key not in early:
            early[key] = t
    return {**early, **seen}


def failed_for_itself(t: FrozenTrial) -> bool:
    """FAIL with an error of its own: not abandoned by a dead run, not interrupted."""
    error = str(t.user_attrs.get(ATTR_ERROR, ""))
    return (
        t.state == TrialState.FAIL
        and bool(error)
        and not error.startswith(("abandoned", "interrupted"))
    )
