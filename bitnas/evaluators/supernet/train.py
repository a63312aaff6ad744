"""Sandwich-rule training of the supernet, with checkpoints that resume exactly.

Every step trains the largest sub-network, the smallest, and ``random_subnets`` uniform draws
of the space on the same batch, summing their gradients into the shared weights before one
optimizer step (Yu et al., "BigNAS" / "Universally slimmable networks", the rule the
once-for-all quantization supernets APQ, BatchQuant and OQAT train with). With ``distill`` the
others learn the largest one's soft predictions (in-place distillation). A checkpoint is
written after every epoch (weights, optimizer, schedule, every random state), so a resumed run
continues bit for bit where the interrupted one stopped.

Data-parallel training across Ray workers is not built. It would wrap ``_epoch`` in a Ray
Train ``TorchTrainer`` ``train_loop_per_worker``: ``ray.train.torch.prepare_model`` (DDP with
``find_unused_parameters=True``: each sub-network touches only some slices), each worker a
shard of the batch (``DistributedSampler`` or ``ray.data``), the same sub-network draws on every
worker (the python ``random.Random`` seeded identically, so the sandwich stays in lock-step),
and the checkpoint below reported through ``ray.train.report(checkpoint=...)`` from rank 0.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from bitnas.errors import EvaluationError, SpecError
from bitnas.evaluators.config import TrainSpec
from bitnas.evaluators.datasets import Splits
from bitnas.evaluators.supernet.config import SupernetSpec
from bitnas.evaluators.supernet.model import SuperNet
from bitnas.evaluators.supernet.slots import largest, smallest, space_hosts
from bitnas.evaluators.training import _make_optimizer, _threads, resolve_device
from bitnas.spaces._base import SearchSpace

__all__ = ["TrainLog", "build_supernet", "fingerprint", "train_supernet"]

CHECKPOINT_FORMAT = "bitnas-supernet/1"


@dataclass
class TrainLog:
    """What training cost: epochs run (of all runs, resumed ones included) and seconds."""

    epochs: int = 0
    seconds: float = 0.0
    steps: int = 0
    subnet_passes: int = 0
    losses: list[float] = field(default_factory=list)


def build_supernet(
    space: SearchSpace,
    *,
    seed: int,
    spec: SupernetSpec | None = None,
    input_norm: tuple[float, float] | None = None,
) -> SuperNet:
    """A freshly initialised supernet of ``space`` (initialisation fixed by ``seed``), its
    thresholds and batch norms switched as ``spec.thresholds`` and ``spec.norms`` say, its
    sub-networks standardizing their input with ``input_norm`` (the splits')."""
    abits = tuple(getattr(space, "abits", ()))
    neuron = getattr(space, "neuron", None)
    if not abits or neuron is None:
        raise SpecError(f"the supernet needs a bit-allocation space, got {type(space).__name__}")
    all_t = tuple(sorted(set(getattr(space, "timesteps", (1,)))))
    steps = all_t if spec is not None and spec.thresholds == "bits_t" else None
    norms = spec.norms if spec is not None else "shared"
    wbits = _weight_bits(space) if norms != "shared" else None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SuperNet(
            space_hosts(space), abits, neuron, steps,
            norm_wbits=wbits, norm_steps=all_t if norms == "bits_t" else None,
            input_norm=input_norm,
        )  # fmt: skip


def _weight_bits(space: SearchSpace) -> tuple[int, ...]:
    """Every weight bit width a layer of ``space`` can take (searched, first and last)."""
    bits = set(getattr(space, "wbits", ()))
    bits |= {b for b in (getattr(space, "first_wbits", None), getattr(space, "last_wbits", None))
             if isinstance(b, int)}  # fmt: skip
    if not bits:
        raise SpecError(f"switchable batch norms need weight bits; {type(space).__name__} has none")
    return tuple(sorted(bits))


#: [supernet] settings of how sub-networks are measured, not of the trained weights
MEASURE_ONLY = ("calib_batches", "checkpoint", "progress", "finetune_steps", "finetune_lr")


def fingerprint(
    space: SearchSpace, train: TrainSpec, spec: SupernetSpec, data: object, seed: int
) -> str:
    """Everything that shapes the trained weights; a checkpoint made under others is refused."""
    keep = {k: v for k, v in vars(spec).items() if k not in MEASURE_ONLY}
    for name, default in (("thresholds", "bits"), ("norms", "shared")):
        if keep[name] == default:  # the default: checkpoints made before it existed load
            del keep[name]
    parts = [repr(space), repr(train), keep, repr(data), seed]
    if getattr(data, "standardize", False):
        # supernets trained before they honoured [data] `standardize` saw raw inputs: refused
        parts.append("standardized inputs")
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _save(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # a crash mid-write never leaves a torn checkpoint


def load_checkpoint(path: Path, want: str) -> dict[str, Any]:
    try:
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise EvaluationError(f"supernet checkpoint {path} cannot be read: {e}") from None
    if state.get("format") != CHECKPOINT_FORMAT:
        raise EvaluationError(f"{path} is not a bitnas supernet checkpoint ({CHECKPOINT_FORMAT})")
    if state.get("fingerprint") != want:
        raise SpecError(
            f"supernet checkpoint {path} was trained with other [space]/[data]/[train]/"
            f"[supernet] settings (fingerprint {state.get('fingerprint')}, these give {want}); "
            "delete it or point [supernet] `checkpoint` elsewhere"
        )
    return state


def train_supernet(
    space: SearchSpace,
    splits: Splits,
    train: TrainSpec,
    spec: SupernetSpec,
    *,
    seed: int,
    checkpoint: Path | None,
    data: object = None,
    stop_after: int | None = None,
) -> tuple[SuperNet, TrainLog]:
    """Train (or resume, or just load) the supernet; ``stop_after`` ends after that epoch
    (an interruption, for tests). Returns the net (in eval mode, on the device) and the log."""
    device = resolve_device(train.device)
    want = fingerprint(space, train, spec, data, seed)
    net = build_supernet(space, seed=seed, spec=spec, input_norm=splits.input_norm).to(device)
    batch = spec.batch_size or train.batch_size
    lr = spec.lr or train.lrs[0]
    opt = _make_optimizer(net, train, lr)
    n = len(splits.x_train)
    steps = math.ceil(n / batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=spec.epochs * steps)
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    log, start_epoch = TrainLog(), 1
    if checkpoint is not None and checkpoint.exists():
        state = load_checkpoint(checkpoint, want)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        rng.setstate(state["python_rng"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        log = TrainLog(**state["log"])
        start_epoch = state["epoch"] + 1
    big, small = largest(space), smallest(space)
    x_tr = torch.from_numpy(splits.x_train).to(device)
    y_tr = torch.from_numpy(splits.y_train).to(device)
    with _threads(train.threads):
        for epoch in range(start_epoch, spec.epochs + 1):
            t0 = time.perf_counter()
            net.train()
            perm = torch.randperm(n, generator=gen).to(device)
            total = 0.0
            bar = tqdm(
                range(0, n, batch),
                desc=f"supernet epoch {epoch}/{spec.epochs}",
                disable=not spec.progress,
                leave=False,
            )
            for i in bar:
                idx = perm[i : i + batch]
                xb, yb = x_tr[idx], y_tr[idx]
                archs = [small] + [space.sample_uniform(rng) for _ in range(spec.random_subnets)]
                opt.zero_grad(set_to_none=True)
                logits = net(big, xb)
                loss = F.cross_entropy(logits, yb)
                _check(loss, epoch, "the largest sub-network")
                loss.backward()  # type: ignore[no-untyped-call]
                soft = logits.detach().softmax(dim=1)
                for arch in archs:
                    out = net(arch, xb)
                    sub = F.cross_entropy(out, soft if spec.distill else yb)
                    _check(sub, epoch, arch.summary())
                    sub.backward()  # type: ignore[no-untyped-call]
                opt.step()
                sched.step()
                total += loss.item() * len(idx)
                log.steps += 1
                log.subnet_passes += 1 + len(archs)
                bar.set_postfix(loss=f"{loss.item():.3f}")
            log.epochs += 1
            log.seconds += time.perf_counter() - t0
            log.losses.append(total / n)
            if checkpoint is not None:
                _save(
                    checkpoint,
                    {
                        "format": CHECKPOINT_FORMAT,
                        "fingerprint": want,
                        "epoch": epoch,
                        "complete": epoch == spec.epochs,
                        "model": net.state_dict(),
                        "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(),
                        "python_rng": rng.getstate(),
                        "generator": gen.get_state(),
                        "torch_rng": torch.get_rng_state(),
                        "log": vars(log),
                    },
                )
            if stop_after is not None and epoch >= stop_after:
                break
    net.eval()
    return net, log


def _check(loss: torch.Tensor, epoch: int, what: str) -> None:
    if not torch.isfinite(loss):
        raise EvaluationError(
            f"supernet training diverged: loss {loss.item()} at epoch {epoch} ({what})"
        )
