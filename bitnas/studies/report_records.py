"""What ``bitnas report`` reads of a study: one ``Record`` per trained trial, and the studies
of a report as ``Source``s (a sweep cell also names its family, budget and seed).

Definitions (they are also written into every report):

- *Trials* are the COMPLETE trials that trained (repeated proposals answered from an earlier
  trial are not counted again); *feasible* ones are within their study's budget.
- *Allocation family* of a trial: ``bitnas.spaces.allocation.allocation_of`` (T = 1 is
  single-step; with T > 1, binary if abits = 1 at every site, else multi-bit spikes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from bitnas.search.records import ATTR_ARCH, ATTR_DUPLICATE, ATTR_KEY
from bitnas.spaces.allocation import allocation_of
from bitnas.spaces.architecture import Architecture
from bitnas.spaces.cost import event_bitops

__all__ = ["Record", "Source", "records"]


@dataclass(frozen=True)
class Record:
    """What the report needs of one trained trial."""

    study: str
    number: int
    allocation: str
    val: float
    test: float | None
    bitops: float
    event_bitops: float | None
    timesteps: int
    abits: tuple[int, ...]
    densities: tuple[float, ...] | None
    feasible: bool
    summary: str
    key: str


@dataclass(frozen=True)
class Source:
    """One study of a report; a sweep cell also names its family, budget and seed."""

    study: optuna.Study
    budget: float | None = None
    allocation: str | None = None
    seed: int | None = None
    records: tuple[Record, ...] = field(default=(), compare=False)

    @property
    def name(self) -> str:
        return self.study.study_name


def _record(study_name: str, t: FrozenTrial) -> Record:
    ua = t.user_attrs
    arch = Architecture.from_json(ua[ATTR_ARCH])
    dens = ua.get("densities")
    ev = ua.get("event_bitops")
    if ev is None and dens is not None:
        ev = event_bitops(arch, dens)
    assert t.values is not None
    return Record(
        study=study_name,
        number=t.number,
        allocation=allocation_of(arch.timesteps, arch.abits),
        val=float(t.values[0]),
        test=ua.get("test_accuracy"),
        bitops=float(t.values[1]),
        event_bitops=None if ev is None else float(ev),
        timesteps=arch.timesteps,
        abits=arch.abits,
        densities=None if dens is None else tuple(float(d) for d in dens),
        feasible=all(v <= 0.0 for v in t.constraints.values()),
        summary=str(ua.get("summary", arch.summary())),
        key=str(ua.get(ATTR_KEY, f"#{t.number}")),
    )


def records(study: optuna.Study) -> list[Record]:
    """The trained COMPLETE trials of ``study`` (duplicates excluded), by trial number."""
    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.values is None or ATTR_DUPLICATE in t.user_attrs or ATTR_ARCH not in t.user_attrs:
            continue
        out.append(_record(study.study_name, t))
    return sorted(out, key=lambda r: r.number)


def _source(study: optuna.Study, budget: float | None, **kw: Any) -> Source:
    recs = tuple(records(study))
    if budget is None:
        stored = [t.user_attrs.get("budget_bitops") for t in study.get_trials(deepcopy=False)]
        budget = next((float(b) for b in stored if b is not None), None)
    return Source(study, budget, records=recs, **kw)
