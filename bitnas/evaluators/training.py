"""The training loop shared by trained evaluators: seeded, per-epoch reports, NaN-safe."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager

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


def _make_optimizer(model: nn.Module, spec: TrainSpec) -> torch.optim.Optimizer:
    if spec.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=spec.lr, momentum=0.9, weight_decay=spec.weight_decay
        )
    cls = torch.optim.AdamW if spec.optimizer == "adamw" else torch.optim.Adam
    return cls(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)


@torch.no_grad()
def _accuracy(model: BitNet, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(x), EVAL_BATCH):
        correct += int((model(x[i : i + EVAL_BATCH]).argmax(dim=1) == y[i : i + EVAL_BATCH]).sum())
    return correct / max(len(x), 1)


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
    A non-finite loss raises EvaluationError naming the epoch.
    """
    device = resolve_device(spec.device)
    start = time.perf_counter()
    with _threads(spec.threads):
        torch.manual_seed(seed)
        np.random.seed(seed % (2**32))
        gen = torch.Generator().manual_seed(seed)

        def tensor(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(a).to(device)

        x_tr, y_tr = tensor(splits.x_train), tensor(splits.y_train)
        x_val, y_val = tensor(splits.x_val), tensor(splits.y_val)
        x_te, y_te = tensor(splits.x_test), tensor(splits.y_test)
        model = build_model(arch, spec.weight_quant).to(device)
        opt = _make_optimizer(model, spec)
        n = len(x_tr)
        steps_per_epoch = math.ceil(n / spec.batch_size)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=spec.epochs * steps_per_epoch)
        epochs_run, stopped, train_loss, val_acc = 0, False, float("nan"), 0.0
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
                        f"({arch.summary()})"
                    )
                opt.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                opt.step()
                sched.step()
                total += loss.item() * len(idx)
            train_loss = total / n
            val_acc = _accuracy(model, x_val, y_val)
            epochs_run = epoch
            if report is not None and report(
                epoch, {"val_accuracy": val_acc, "train_loss": train_loss}
            ):
                stopped = True
                break
        meter = model.start_measuring()
        test_acc = _accuracy(model, x_te, y_te)
        model.stop_measuring()
    return EvalResult(
        metrics={"val_accuracy": val_acc, "test_accuracy": test_acc, "train_loss": train_loss},
        densities=meter.densities(),
        spike_rates=meter.nonzero_rates(),
        epochs=epochs_run,
        stopped=stopped,
        info={
            "plane_densities": [list(p) for p in meter.plane_densities()],
            "step_densities": [list(s) for s in meter.step_densities()],
            "train_seconds": time.perf_counter() - start,
            "device": str(device),
        },
    )
