"""The BitOps budget: enforced before training, recorded on every trial as a constraint."""

from __future__ import annotations

import math
from dataclasses import dataclass

from bitnas.errors import SpecError

__all__ = ["Budget"]


@dataclass(frozen=True)
class Budget:
    """At most ``bitops`` dense BitOps per sample per forward pass (None: unbounded)."""

    bitops: float | None = None

    #: Name of the Optuna constraint; a value <= 0 means within budget.
    CONSTRAINT = "bitops_over_budget"

    def __post_init__(self) -> None:
        b = self.bitops
        if b is not None and (
            isinstance(b, bool) or not isinstance(b, (int, float)) or not math.isfinite(b) or b <= 0
        ):
            raise SpecError(f"`bitops` must be a positive finite number, got {b!r}", field="bitops")

    def excess(self, cost: float) -> float:
        """``cost - budget``: the Optuna constraint value (<= 0 feasible)."""
        return float(cost - self.bitops) if self.bitops is not None else 0.0

    def allows(self, cost: float) -> bool:
        return self.excess(cost) <= 0.0
