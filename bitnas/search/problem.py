"""A search problem: the space, the budget, the evaluator and the cost, joined."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bitnas.errors import BudgetError
from bitnas.evaluators._base import Evaluator
from bitnas.search.stopping import NoStopper, Stopper
from bitnas.spaces._base import SearchSpace
from bitnas.spaces.architecture import Architecture
from bitnas.spaces.budget import Budget
from bitnas.spaces.cost import bitops

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore

__all__ = ["OBJECTIVE_COST", "Problem"]

#: Name of the cost objective every bitnas study minimises.
OBJECTIVE_COST = "bitops"


@dataclass(frozen=True)
class Problem:
    """What to search: maximise ``evaluator.objective``, minimise ``cost``, within ``budget``.

    ``cost`` is any function of the architecture (default: dense BitOps); it is both the
    second objective and what the budget caps. ``seed`` seeds every trial's training.
    ``artifacts``: an ``optuna.artifacts`` store that receives each trial's architecture JSON
    (written by the driver, never by workers); None writes none. ``stopper`` decides after
    each epoch whether a trial is worth finishing (``bitnas.search.stopping``; default: never).
    """

    space: SearchSpace
    evaluator: Evaluator
    budget: Budget = field(default_factory=Budget)
    cost: Callable[[Architecture], float] = bitops
    seed: int = 0
    artifacts: ArtifactStore | None = None
    stopper: Stopper = field(default_factory=NoStopper)

    @property
    def metric_names(self) -> list[str]:
        return [self.evaluator.objective, OBJECTIVE_COST]

    @property
    def directions(self) -> list[str]:
        return ["maximize", "minimize"]

    def check_feasible(self) -> None:
        """Raise BudgetError if no architecture of the space fits the budget."""
        if self.budget.bitops is None:
            return
        cheapest, _ = self.space.extremes(self.cost)
        c = self.cost(cheapest)
        if not self.budget.allows(c):
            raise BudgetError(
                f"the budget of {self.budget.bitops:,.0f} BitOps is below the cheapest "
                f"architecture of the space, {cheapest.summary()} at {c:,.0f} BitOps: raise "
                "`bitops` in [budget] or add smaller choices to [space]"
            )
