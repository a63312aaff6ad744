"""What every evaluator promises: an Architecture in, metrics (and measured activity) out."""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bitnas.errors import EvaluationError
from bitnas.spaces.architecture import Architecture

__all__ = ["EvalResult", "Evaluator", "Report"]


class Report(Protocol):
    def __call__(self, step: int, metrics: Mapping[str, float]) -> bool:
        """Called once per epoch (``step`` counts from 1); return True to stop the trial."""


@dataclass(frozen=True)
class EvalResult:
    """Metrics of one trained (or looked-up) architecture.

    ``metrics`` holds at least the evaluator's objective metric. ``densities[l]`` is the
    measured fraction of 1-bits among the bits fed to layer l, ``spike_rates[l]`` the fraction
    of its inputs (per element and step) that are not zero (None where not measured).
    ``stopped`` marks a run cut short by its ``report`` callback.
    """

    metrics: Mapping[str, float]
    densities: tuple[float, ...] | None = None
    spike_rates: tuple[float, ...] | None = None
    epochs: int = 0
    stopped: bool = False
    info: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", {k: float(v) for k, v in self.metrics.items()})
        for name in ("densities", "spike_rates"):
            values = getattr(self, name)
            if values is not None:
                object.__setattr__(self, name, tuple(float(d) for d in values))

    def value(self, metric: str) -> float:
        """The named metric; a missing or non-finite value is an EvaluationError."""
        if metric not in self.metrics:
            raise EvaluationError(
                f"evaluator returned no `{metric}` metric; it returned {sorted(self.metrics)}"
            )
        v = self.metrics[metric]
        if not math.isfinite(v):
            raise EvaluationError(f"metric `{metric}` is not finite: {v}")
        return v


class Evaluator(abc.ABC):
    """Turns an architecture into metrics. ``objective`` names the metric to maximise."""

    objective: str = "val_accuracy"

    def prepare(self) -> None:  # noqa: B027 (an optional hook, not an abstract method)
        """Check settings and load what every trial needs, before the first trial.

        Raises SpecError for a configuration no trial could run with (so a study does not
        fill with identical failures). The default does nothing.
        """

    @abc.abstractmethod
    def evaluate(
        self, arch: Architecture, *, seed: int, report: Report | None = None
    ) -> EvalResult:
        """Train/measure ``arch`` deterministically for ``seed``; call ``report`` per epoch."""


class CallableEvaluator(Evaluator):
    """Adapts a plain function ``f(arch, *, seed, report) -> EvalResult | Mapping[str, float]``."""

    def __init__(self, fn: Callable[..., Any], objective: str = "val_accuracy") -> None:
        self.fn = fn
        self.objective = objective

    def evaluate(
        self, arch: Architecture, *, seed: int, report: Report | None = None
    ) -> EvalResult:
        out = self.fn(arch, seed=seed, report=report)
        return out if isinstance(out, EvalResult) else EvalResult(metrics=dict(out))
