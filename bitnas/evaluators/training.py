"""The training loop shared by trained evaluators: seeded, per-epoch reports, NaN-safe."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bitnas.errors import EvaluationError, SpecError
from bitnas.evaluators._base import EvalResult, Report
from bitnas.evaluators.config import TrainSpec
from bitnas.evaluators.datasets import Splits
from bitnas.evaluators.model import BitNet, build_model
from bitnas.spaces.architecture import Architecture

__all__ = ["resolve_device", "train_and_evaluate"]

EVAL_BATCH = 1024


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available; asking for CUDA without it is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SpecError(
            f'`device` is "{name}" but no CUDA device is available; use "auto" or "cpu"'
        )
    return torch.device(name)


@contextmanager
def _threads(n: int) -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _make_optimizer(model: nn.Module, spec: TrainSpec, lr: float) -> torch.optim.Optimizer:
    if spec.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=lr, momentum=0.9, weight_decay=spec.weight_decay
        )
    cls = torch.optim.AdamW if spec.optimizer == "adamw" else torch.optim.Adam
    return cls(model.parameters(), lr=lr, weight_decay=spec.weight_decay)


@torch.no_grad()
def _accuracy(model: BitNet, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(x), EVAL_BATCH):
        correct += int((model(x[i : i + EVAL_BATCH]).argmax(dim=1) == y[i : i + EVAL_BATCH]).sum())
    return correct / max(len(x), 1)


@dataclass
class _Fit:
    """One training run at one learning rate."""

    model: BitNet
    lr: float
    val_accuracy: float
    train_loss: float
    epochs: int
    best_epoch: int
    converged: bool
    stopped: bool


def _fit(
    arch: Architecture,
    splits: Splits,
    spec: TrainSpec,
    lr: float,
    device: torch.device,
    *,
    seed: int,
    report: Report | None,
) -> _Fit:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    gen = torch.Generator().manual_seed(seed)

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).to(device)

    x_tr, y_tr = tensor(splits.x_train), tensor(splits.y_train)
    x_val, y_val = tensor(splits.x_val), tensor(splits.y_val)
    model = build_model(arch, spec.weight_quant, splits.input_norm).to(device)
    opt = _make_optimizer(model, spec, lr)
    n = len(x_tr)
    steps_per_epoch = math.ceil(n / spec.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=spec.epochs * steps_per_epoch)
    converge = spec.until == "converged"
    fit = _Fit(model, lr, 0.0, float("nan"), 0, 0, False, False)
    best_val, best_state, since_best = -1.0, None, 0
    for epoch in range(1, spec.epochs + 1):
        model.train()
        perm = torch.randperm(n, generator=gen).to(device)
        total = 0.0
        for i in range(0, n, spec.batch_size):
            idx = perm[i : i + spec.batch_size]
            loss = F.cross_entropy(model(x_tr[idx]), y_tr[idx])
            if not torch.isfinite(loss):
                raise EvaluationError(
                    f"training diverged: loss is {loss.item()} at epoch {epoch} "
                    f"({arch.summary()}, lr {lr:g})"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        fit.train_loss = total / n
        fit.val_accuracy = _accuracy(model, x_val, y_val)
        fit.epochs = epoch
        if fit.val_accuracy > best_val + spec.min_delta:
            best_val, since_best, fit.best_epoch = fit.val_accuracy, 0, epoch
            if converge:
                best_state = copy.deepcopy(model.state_dict())
        else:
            since_best += 1
        if report is not None and report(
            epoch, {"val_accuracy": fit.val_accuracy, "train_loss": fit.train_loss}
        ):
            fit.stopped = True
            break
        if converge and since_best >= spec.patience:
            fit.converged = True
            break
    if converge and best_state is not None:  # early stopping keeps the best validation epoch
        model.load_state_dict(best_state)
        fit.val_accuracy = best_val
    return fit


def train_and_evaluate(
    arch: Architecture,
    splits: Splits,
    spec: TrainSpec,
    *,
    seed: int,
    report: Report | None = None,
) -> EvalResult:
    """Train ``arch`` on ``splits.train`` and measure it.

    Metrics: ``val_accuracy`` (the search objective), ``test_accuracy`` (held out from the
    search), ``train_loss`` (last epoch's mean). Bit densities are measured on the test split.
    A non-finite loss raises EvaluationError naming the epoch. With several learning rates
    (``spec.lr`` a list) each is trained from the same seed and the best validation accuracy
    is kept; ``report`` then sees no per-epoch curve (a curve spans one rate: the spec refuses
    an early stopper with several rates).
    """
    device = resolve_device(spec.device)
    start = time.perf_counter()
    lrs = spec.lrs
    with _threads(spec.threads):
        fits = [
            _fit(
                arch, splits, spec, lr, device, seed=seed, report=report if len(lrs) == 1 else None
            )
            for lr in lrs
        ]
        best = max(fits, key=lambda f: f.val_accuracy)  # ties: the first (smallest index) rate
        model = best.model
        x_te, y_te = (
            torch.from_numpy(splits.x_test).to(device),
            torch.from_numpy(splits.y_test).to(device),
        )
        meter = model.start_measuring()
        test_acc = _accuracy(model, x_te, y_te)
        model.stop_measuring()
    return EvalResult(
        metrics={
            "val_accuracy": best.val_accuracy,
            "test_accuracy": test_acc,
            "train_loss": best.train_loss,
        },
        densities=meter.densities(),
        spike_rates=meter.nonzero_rates(),
        epochs=best.epochs,
        stopped=best.stopped,
        info={
            "plane_densities": [list(p) for p in meter.plane_densities()],
            "step_densities": [list(s) for s in meter.step_densities()],
            "train_seconds": time.perf_counter() - start,
            "device": str(device),
            "input_norm": splits.norm_record(),
            "until": spec.until,
            "converged": best.converged,
            "best_epoch": best.best_epoch,
            "lr": best.lr,
            "lr_val_accuracy": [[f.lr, f.val_accuracy] for f in fits],
        },
    )
