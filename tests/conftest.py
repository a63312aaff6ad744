from __future__ import annotations

import math
import signal
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from bitnas.evaluators import CallableEvaluator, EvalResult
from bitnas.search import Problem
from bitnas.spaces import Architecture, Budget, MLPSpace, SearchSpace, bitops


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups off the items
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that start Ray run one after another on one xdist worker."""
    for item in items:
        if item.get_closest_marker("ray") is not None:
            item.add_marker(pytest.mark.xdist_group("ray"))


def pytest_configure(config: pytest.Config) -> None:
    """An xdist worker trains with one thread: the workers already fill the cores (two
    workers of two threads each on two cores slow each other down)."""
    import os

    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


def small_study_toml(
    name: str, *, bitops: str, epochs: int, study_extra: str = "", storage: str | None = None
) -> str:
    """A small digits study file: 32 MLP architectures, trained a few epochs."""
    store = f'storage = "{storage}"\n' if storage else ""
    return (
        f'\n[study]\nname = "{name}"\n{store}trials = 5\n{study_extra}'
        '[data]\nname = "digits"\n'
        "[space]\ndepth = [1, 2]\nwidth = [16, 32]\nwbits = [2, 4]\nabits = [1, 2]\n"
        "timesteps = [1, 2]\n"
        f"[budget]\nbitops = {bitops}\n"
        f"[train]\nepochs = {epochs}\n"
    )


#: The [space] of ``small_study_toml`` as a dict (32 MLP architectures on digits).
SMALL_SPACE_TABLE: dict[str, list[int]] = {
    "depth": [1, 2],
    "width": [16, 32],
    "wbits": [2, 4],
    "abits": [1, 2],
    "timesteps": [1, 2],
}


def small_space(**kw: object) -> MLPSpace:
    base: dict[str, object] = dict(
        input_shape=(64,),
        num_classes=10,
        depth=(1, 2),
        width=(16, 32),
        wbits=(2, 8),
        abits=(1, 4),
        timesteps=(1, 4),
    )
    base.update(kw)
    return MLPSpace(**base)  # type: ignore[arg-type]


def synthetic_accuracy(arch: Architecture) -> float:
    """A deterministic stand-in for training: more BitOps, more accuracy, with diminishing
    returns and a bonus for activation levels — enough structure for a real Pareto front."""
    levels = sum(math.log2(min(a, 8) + 1) for a in arch.abits) / max(arch.depth, 1)
    return 1.0 - 1.0 / (1.0 + 0.05 * math.log(bitops(arch)) + 0.1 * levels)


class SpyEvaluator(CallableEvaluator):
    """Records every architecture it is asked to evaluate."""

    def __init__(self) -> None:
        self.seen: list[Architecture] = []

        def fn(arch: Architecture, *, seed: int, report: object) -> EvalResult:
            self.seen.append(arch)
            return EvalResult(
                metrics={"val_accuracy": synthetic_accuracy(arch), "test_accuracy": 0.5},
                densities=tuple(0.25 for _ in arch.layers),
            )

        super().__init__(fn)


@pytest.fixture
def spy() -> SpyEvaluator:
    return SpyEvaluator()


@pytest.fixture
def problem(spy: SpyEvaluator) -> Problem:
    return Problem(space=small_space(), evaluator=spy, budget=Budget(60_000))


def write_curve_table(
    path: str | Path, space: SearchSpace, curve: Callable[[Architecture], Sequence[float]]
) -> Path:
    """Write an exhaustive table (bitnas.evaluators.table schema) of every architecture of
    ``space``, each with the validation curve ``curve(arch)``; returns the path. No training:
    a hand-made table for studies that run in milliseconds."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from bitnas.evaluators.table import TABLE_FORMAT, TABLE_SCHEMA

    rows = []
    for params, arch in space.grid_with_params():
        c = [float(v) for v in curve(arch)]
        rows.append(
            {
                "arch_key": arch.key(),
                "architecture": arch.to_json(),
                "params": json.dumps(params, sort_keys=True),
                "seed": 0,
                "bitops": float(bitops(arch)),
                "val_accuracy": c[-1],
                "test_accuracy": c[-1] - 0.01,
                "train_loss": 0.1,
                "curve": c,
                "epochs": len(c),
                "densities": None,
                "seconds": 0.0,
            }
        )
    schema = TABLE_SCHEMA.with_metadata({b"bitnas.table": TABLE_FORMAT.encode()})
    out = Path(path)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), out)
    return out


def default_sigint() -> None:
    """``preexec_fn`` for processes a test will Ctrl-C: a shell starts background jobs with
    SIGINT ignored and exec keeps that, so a suite run in the background would hand its
    children an ignored SIGINT. Restore the default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
