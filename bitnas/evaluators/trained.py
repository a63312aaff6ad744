"""The evaluator that trains every architecture on a real dataset."""

from __future__ import annotations

from dataclasses import dataclass, field

from bitnas.evaluators._base import EvalResult, Evaluator, Report
from bitnas.evaluators.config import DataSpec, TrainSpec
from bitnas.spaces.architecture import Architecture

__all__ = ["TrainedEvaluator"]


@dataclass(frozen=True)
class TrainedEvaluator(Evaluator):
    """Trains ``arch`` with ``train`` on ``data`` (loaded once per process) and measures it."""

    data: DataSpec = field(default_factory=DataSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    objective: str = "val_accuracy"

    def prepare(self) -> None:
        from bitnas.evaluators.datasets import load_splits
        from bitnas.evaluators.training import resolve_device

        resolve_device(self.train.device)
        load_splits(self.data)

    def evaluate(
        self, arch: Architecture, *, seed: int, report: Report | None = None
    ) -> EvalResult:
        from bitnas.evaluators.datasets import load_splits
        from bitnas.evaluators.training import train_and_evaluate

        return train_and_evaluate(
            arch, load_splits(self.data), self.train, seed=seed, report=report
        )
