"""[supernet] settings, as a frozen validated value (no torch import here)."""

from __future__ import annotations

from dataclasses import dataclass

from bitnas.errors import SpecError
from bitnas.evaluators.config import _number

__all__ = ["NORMS", "THRESHOLDS", "SupernetSpec"]

#: What the supernet's neuron thresholds are switched by (see ``SupernetSpec``).
THRESHOLDS = ("bits", "bits_t")
#: What the supernet's batch norms are switched by (see ``SupernetSpec``).
NORMS = ("shared", "bits", "bits_t")


@dataclass(frozen=True)
class SupernetSpec:
    """How the weight-sharing supernet is trained and how its sub-networks are measured.

    ``epochs``: passes over the training split (each step trains ``2 + random_subnets``
    sub-networks: the largest, the smallest and uniform draws — the sandwich rule).
    ``distill``: the other sub-networks learn the largest one's soft predictions (in-place
    distillation) instead of the labels. ``calib_batches``: training batches whose statistics
    re-estimate a sub-network's batch norms before it is measured. ``checkpoint``: the file
    that holds the trained supernet ("" -> beside the study's storage, see
    ``StudySpec.evaluator``); training resumes from it and skips when it is complete.
    ``lr``/``batch_size`` of 0 take [train]'s. ``thresholds``: what a neuron's learned
    threshold is shared across — ``"bits"`` (one per slot and activation bit width, every T
    alike) or ``"bits_t"`` (one per slot, bit width and number of timesteps: a binary neuron
    that integrates 2 steps and one that integrates 4 learn their own step).
    ``norms``: what a layer's batch norm (its affine weights and running statistics) is
    shared across — ``"shared"`` (one per slot, every precision alike; with
    ``calib_batches`` > 0 the statistics are re-estimated per sub-network anyway), ``"bits"``
    (switchable batch norm: one per slot and (weight bits, activation bits) of the layer, as
    any-precision and AdaBits networks keep one per bit width) or ``"bits_t"`` (per slot, bits
    and number of timesteps).
    ``finetune_steps``: training steps each extracted sub-network takes on its own before it
    is measured (0: none, the inherited weights as they are), from its inherited weights, with
    [train]'s optimizer at ``finetune_lr`` (0: the supernet's rate) on a cosine schedule to 0.
    A short fine-tune corrects what weight sharing does to each sub-network (the narrowest
    are under-rated most), at a cost per evaluation of that many steps.
    """

    epochs: int = 20
    random_subnets: int = 2
    distill: bool = False
    calib_batches: int = 4
    checkpoint: str = ""
    lr: float = 0.0
    batch_size: int = 0
    progress: bool = True
    thresholds: str = "bits"
    norms: str = "shared"
    finetune_steps: int = 0
    finetune_lr: float = 0.0

    def __post_init__(self) -> None:
        if self.thresholds not in THRESHOLDS:
            raise SpecError(
                f"`thresholds` must be one of {list(THRESHOLDS)}, got {self.thresholds!r}",
                field="thresholds",
            )
        if self.norms not in NORMS:
            raise SpecError(
                f"`norms` must be one of {list(NORMS)}, got {self.norms!r}", field="norms"
            )
        _number("epochs", self.epochs, low=1, integer=True)
        _number("random_subnets", self.random_subnets, low=0, integer=True)
        _number("calib_batches", self.calib_batches, low=0, integer=True)
        _number("lr", self.lr, low=0.0)
        _number("batch_size", self.batch_size, low=0, integer=True)
        _number("finetune_steps", self.finetune_steps, low=0, integer=True)
        _number("finetune_lr", self.finetune_lr, low=0.0)
        for name in ("distill", "progress"):
            if not isinstance(getattr(self, name), bool):
                raise SpecError(
                    f"`{name}` must be true or false, got {getattr(self, name)!r}", field=name
                )
        if not isinstance(self.checkpoint, str):
            raise SpecError(
                f"`checkpoint` must be a file path, got {self.checkpoint!r}", field="checkpoint"
            )
