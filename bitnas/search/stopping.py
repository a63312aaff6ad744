"""Early stoppers for multi-objective studies: stop a trial whose curve says it will not matter.

Optuna's pruners work on single-objective studies only (``trial.report`` and ``should_prune``
refuse a multi-objective study), so bitnas decides itself, in the runner's per-epoch
``report`` callback, from the learning curves of the study's completed trials.

A stopper is asked after every epoch of a running trial: given the trial's curve so far, its
cost (known before training) and the completed trials (``Reference``: cost and per-epoch
curve), it returns why to stop, or None to go on. A stopped trial ends PRUNED; it counts
toward the study's target like a completed one, but never enters the Pareto front.

``ParetoStopper`` ("pareto") stops a trial that is *clearly dominated at the same epoch*: at
epoch e >= ``min_epochs``, at least ``min_dominating`` distinct completed architectures of cost
<= the trial's cost each had, at their own epoch e, a validation accuracy at least ``margin``
above the best the trial reached in epochs 1..e, and a final accuracy ``margin`` above what the
trial would reach if it still gained the ``headroom`` quantile of what the completed trials
gained after epoch e. Comparing the trial's best-so-far (not its last, possibly noisy, value)
with the others' value at the same epoch (not their final one, which a young trial cannot be
held to) makes a stop a sign that the trial would end dominated too; the headroom term spares
slow starters (spiking networks above all), which same-epoch comparisons alone stopped on
MNIST-1D. Defaults (3 epochs, 0.01, 1 trial, 0.9) and what they save and cost on both
exhaustive tables: docs/BENCHMARKS.md (150-trial studies: 42-49% of epochs, hypervolume within
0.4%; 60-trial studies: 22-39%, within 1.4%). It never stops at the last epoch the completed
trials reached: that would save nothing.

A stopped architecture is not trained again when the sampler proposes it again
(``bitnas.search.trials``: the proposal is re-told PRUNED from the stopped trial).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from bitnas._registry import Registry
from bitnas.errors import SpecError

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

__all__ = [
    "STOPPERS",
    "NoStopper",
    "ParetoStopper",
    "Reference",
    "Stopper",
    "make_stopper",
    "references",
    "trial_curve",
]


@dataclass(frozen=True)
class Reference:
    """A completed trial as a stopper sees it: its cost and its per-epoch objective curve."""

    cost: float
    curve: tuple[float, ...]


class Stopper(abc.ABC):
    """Decides, epoch by epoch, whether a running trial is worth finishing."""

    #: False for a stopper that never stops: runners then skip collecting references.
    active: bool = True

    @abc.abstractmethod
    def stop_reason(
        self, step: int, curve: Sequence[float], cost: float, completed: Sequence[Reference]
    ) -> str | None:
        """Why to stop a trial of cost ``cost`` after epoch ``step`` (``curve``: its objective
        after epochs 1..step, maximised), given the study's ``completed`` trials; None to go on.
        """

    def settings(self) -> dict[str, Any]:
        """The stopper's parameters, JSON-ready (recorded with the study's spec)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]


#: name -> stopper class; the class's dataclass fields are the [stopper] parameters.
STOPPERS: Registry[type[Stopper]] = Registry("stopper")


@STOPPERS.register("none")
@dataclass(frozen=True)
class NoStopper(Stopper):
    """Never stops: every trial trains to the end (the default)."""

    active = False

    def stop_reason(
        self, step: int, curve: Sequence[float], cost: float, completed: Sequence[Reference]
    ) -> str | None:
        return None


def _int_at_least(name: str, v: object, low: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise SpecError(f"`{name}` must be an integer >= {low}, got {v!r}", field=name)


@STOPPERS.register("pareto")
@dataclass(frozen=True)
class ParetoStopper(Stopper):
    """Stops a trial clearly dominated at the same epoch by completed trials of no greater
    cost (module docstring). ``min_epochs``: never stop before this epoch; ``margin``: how far
    (in accuracy, e.g. 0.03 = 3 points) a completed trial must be ahead; ``min_dominating``:
    how many distinct completed architectures must be that far ahead."""

    # chosen with bench/early_stopping.py --grid on both tables: docs/BENCHMARKS.md
    min_epochs: int = 3
    margin: float = 0.01
    min_dominating: int = 1
    headroom: float = 0.9

    def __post_init__(self) -> None:
        _int_at_least("min_epochs", self.min_epochs, 1)
        _int_at_least("min_dominating", self.min_dominating, 1)
        m = self.margin
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 <= m < 1:
            raise SpecError(
                f"`margin` must be a number in [0, 1) (accuracy points, e.g. 0.03), got {m!r}",
                field="margin",
            )
        object.__setattr__(self, "margin", float(m))
        h = self.headroom
        if isinstance(h, bool) or not isinstance(h, (int, float)) or not 0 <= h <= 1:
            raise SpecError(
                f"`headroom` must be a quantile in [0, 1] (0 switches it off), got {h!r}",
                field="headroom",
            )
        object.__setattr__(self, "headroom", float(h))

    def _gain(self, step: int, completed: Sequence[Reference]) -> float:
        """How much a trial may still gain after ``step``: the ``headroom`` quantile, over the
        completed trials, of their final accuracy less their best up to ``step``."""
        if self.headroom <= 0:
            return 0.0
        gains = sorted(r.curve[-1] - max(r.curve[:step]) for r in completed if len(r.curve) > step)
        if not gains:
            return 0.0
        i = min(len(gains) - 1, max(0, math.ceil(self.headroom * len(gains)) - 1))
        return max(0.0, gains[i])

    def stop_reason(
        self, step: int, curve: Sequence[float], cost: float, completed: Sequence[Reference]
    ) -> str | None:
        if step < self.min_epochs or not completed or len(curve) < step:
            return None
        if step >= max(len(r.curve) for r in completed):
            return None  # the completed trials end here: stopping now saves nothing
        finite = [v for v in curve[:step] if math.isfinite(v)]
        best = max(finite) if finite else -math.inf
        # dominated now, at the same epoch, and still dominated if the trial went on to gain
        # what the completed trials typically (``headroom`` quantile) gained after this epoch
        reach = best + self._gain(step, completed)
        ahead = [
            r
            for r in completed
            if r.cost <= cost
            and len(r.curve) >= step
            and r.curve[step - 1] >= best + self.margin
            and r.curve[-1] >= reach + self.margin
        ]
        if len(ahead) < self.min_dominating:
            return None
        return (
            f"pareto: dominated at epoch {step} (best {best:.4f}, at most {reach:.4f} to come) "
            f"by {len(ahead)} completed trials of no greater cost, each ahead by >= "
            f"{self.margin:g}"
        )


def make_stopper(name: str, params: Mapping[str, Any] | None = None) -> Stopper:
    """The stopper registered as ``name`` with ``params`` (its fields); an unknown name lists
    the valid ones, an unknown parameter lists the allowed ones."""
    cls = STOPPERS.get(name)
    params = dict(params or {})
    allowed = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    for key in params:
        if key not in allowed:
            what = f"allowed: {', '.join(allowed)}" if allowed else "it takes no parameters"
            raise SpecError(f"unknown parameter `{key}` for stopper {name!r} ({what})", field=key)
    return cls(**params)


def trial_curve(t: FrozenTrial) -> tuple[float, ...]:
    """A trial's per-epoch objective: its intermediate values (steps in order), else its
    ``curve`` user attribute (studies recorded before intermediate values were stored)."""
    if t.intermediate_values:
        return tuple(float(t.intermediate_values[s]) for s in sorted(t.intermediate_values))
    return tuple(float(v) for v in t.user_attrs.get("curve") or ())


def references(trials: Iterable[FrozenTrial]) -> list[Reference]:
    """The completed trials a stopper compares with: COMPLETE, with values and a curve, one per
    architecture (a duplicate re-tells a trained trial's result; counting it twice would let one
    architecture outvote the rest)."""
    from optuna.trial import TrialState

    out: dict[str, Reference] = {}
    for t in trials:
        if t.state != TrialState.COMPLETE or t.values is None:
            continue
        curve = trial_curve(t)
        if not curve:
            continue
        key = str(t.user_attrs.get("arch_key", f"#{t.number}"))
        out.setdefault(key, Reference(cost=float(t.values[-1]), curve=curve))
    return list(out.values())
