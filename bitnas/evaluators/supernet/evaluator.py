"""The supernet evaluator: a sub-network's weights inherited from one trained supernet.

``prepare`` trains the supernet once (or resumes it, or loads it complete) from its checkpoint;
``evaluate(arch)`` cuts ``arch`` out of it, re-estimates its batch norms on a few training
batches, and measures it exactly as the trained evaluator measures a network it trained:
validation accuracy, test accuracy and bit densities (hence event BitOps) on the test split,
through the same ``BitNet`` and meter. It takes seconds, not a training run.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bitnas.errors import EvaluationError
from bitnas.evaluators._base import EvalResult, Evaluator, Report
from bitnas.evaluators.config import DataSpec, TrainSpec
from bitnas.evaluators.supernet.config import SupernetSpec
from bitnas.spaces._base import SearchSpace
from bitnas.spaces.architecture import Architecture

if TYPE_CHECKING:
    from bitnas.evaluators.datasets import Splits
    from bitnas.evaluators.supernet.model import SuperNet
    from bitnas.evaluators.supernet.train import TrainLog

__all__ = ["SupernetEvaluator", "measure_subnet"]

#: trained supernets of this process, by (checkpoint, fingerprint): trials share one
_NETS: dict[tuple[str, str], tuple[SuperNet, TrainLog]] = {}


@dataclass(frozen=True)
class SupernetEvaluator(Evaluator):
    """Measures sub-networks of one supernet of ``space`` trained on ``data``."""

    space: SearchSpace
    data: DataSpec = field(default_factory=DataSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    supernet: SupernetSpec = field(default_factory=SupernetSpec)
    checkpoint: str = ""
    seed: int = 0
    objective: str = "val_accuracy"

    def prepare(self) -> None:
        from bitnas.evaluators.training import resolve_device

        resolve_device(self.train.device)
        self.net()

    def net(self) -> tuple[SuperNet, TrainLog]:
        """The trained supernet and what training it cost (trained here if need be)."""
        from bitnas.evaluators.datasets import load_splits
        from bitnas.evaluators.supernet.train import fingerprint, train_supernet

        fp = fingerprint(self.space, self.train, self.supernet, self.data, self.seed)
        key = (self.checkpoint, fp)
        if key not in _NETS:
            with _training_lock(self.checkpoint):
                _NETS[key] = train_supernet(
                    self.space,
                    load_splits(self.data),
                    self.train,
                    self.supernet,
                    seed=self.seed,
                    checkpoint=Path(self.checkpoint) if self.checkpoint else None,
                    data=self.data,
                )
        return _NETS[key]

    def evaluate(
        self, arch: Architecture, *, seed: int, report: Report | None = None
    ) -> EvalResult:
        from bitnas.evaluators.datasets import load_splits

        net, log = self.net()
        result = measure_subnet(
            net,
            arch,
            load_splits(self.data),
            self.train,
            self.supernet,
            seed=seed,
        )
        info: dict[str, Any] = {
            **result.info,
            "supernet": self.checkpoint,
            "supernet_epochs": log.epochs,
            "supernet_train_seconds": log.seconds,
        }
        return EvalResult(
            metrics=result.metrics,
            densities=result.densities,
            spike_rates=result.spike_rates,
            epochs=0,
            info=info,
        )


@contextmanager
def _training_lock(checkpoint: str) -> Iterator[None]:
    """One process trains a checkpoint at a time: trial processes (capped trials, Ray workers
    on one machine) that find it unfinished wait for the first, then load it. Workers on other
    machines need the file on a shared disk, or each trains its own copy."""
    if not checkpoint:
        yield
        return
    lock = Path(checkpoint + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def measure_subnet(
    net: SuperNet,
    arch: Architecture,
    splits: Splits,
    train: TrainSpec,
    spec: SupernetSpec,
    *,
    seed: int,
) -> EvalResult:
    """Extract ``arch``, fine-tune it for ``spec.finetune_steps`` steps (if any), recalibrate
    its batch norms, measure it as ``train_and_evaluate`` does. ``train_loss`` is its loss on
    the calibration batches (nan without any)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from bitnas.evaluators.training import _accuracy, _threads

    start = time.perf_counter()
    with _threads(train.threads):
        torch.manual_seed(seed)
        model = net.extract(arch)
        device = next(model.parameters()).device

        def tensor(a: Any) -> torch.Tensor:
            return torch.from_numpy(a).to(device)

        x_tr, y_tr = tensor(splits.x_train), tensor(splits.y_train)
        batch = spec.batch_size or train.batch_size
        gen = torch.Generator().manual_seed(seed)
        if spec.finetune_steps:
            _finetune(model, x_tr, y_tr, train, spec, batch, gen)
        take = min(len(x_tr), batch * spec.calib_batches)
        idx = torch.randperm(len(x_tr), generator=gen)[:take].to(device)
        norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        with torch.no_grad():
            if norms and take:
                for m in norms:  # cumulative average over the calibration batches
                    m.reset_running_stats()
                    m.momentum = None
                model.train()
                for i in range(0, take, batch):
                    model(x_tr[idx[i : i + batch]])
            model.eval()
            loss = float("nan")
            if take:
                total = 0.0
                for i in range(0, take, batch):
                    j = idx[i : i + batch]
                    total += float(F.cross_entropy(model(x_tr[j]), y_tr[j])) * len(j)
                loss = total / take
        val_acc = _accuracy(model, tensor(splits.x_val), tensor(splits.y_val))
        meter = model.start_measuring()
        test_acc = _accuracy(model, tensor(splits.x_test), tensor(splits.y_test))
        model.stop_measuring()
    return EvalResult(
        metrics={"val_accuracy": val_acc, "test_accuracy": test_acc, "train_loss": loss},
        densities=meter.densities(),
        spike_rates=meter.nonzero_rates(),
        epochs=0,
        info={
            "finetune_steps": spec.finetune_steps,
            "plane_densities": [list(p) for p in meter.plane_densities()],
            "step_densities": [list(s) for s in meter.step_densities()],
            "eval_seconds": time.perf_counter() - start,
            "device": str(device),
            "input_norm": splits.norm_record(),
        },
    )


def _finetune(
    model: Any, x: Any, y: Any, train: TrainSpec, spec: SupernetSpec, batch: int, gen: Any
) -> None:
    """``spec.finetune_steps`` steps of [train]'s optimizer on random training batches, the
    rate annealed from ``finetune_lr`` (or the supernet's) to 0: the extracted copy learns on
    its own; the supernet's weights are not touched (``extract`` copies them)."""
    import torch
    import torch.nn.functional as F

    from bitnas.evaluators.training import _make_optimizer

    lr = spec.finetune_lr or spec.lr or train.lrs[0]
    opt = _make_optimizer(model, train, lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=spec.finetune_steps)
    model.train()
    for _ in range(spec.finetune_steps):
        idx = torch.randint(len(x), (min(batch, len(x)),), generator=gen).to(x.device)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        if not torch.isfinite(loss):
            raise EvaluationError(f"fine-tuning a sub-network diverged: loss {loss.item()}")
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        sched.step()
