"""A >= 10^6-architecture mixed-precision study searched through the supernet, its front
re-trained from scratch, against a from-scratch search given the same wall time.

Stage 1: ``studies/mixed_precision_supernet.toml`` (1,065,216 architectures; the supernet is
trained once, then ``--trials`` sub-networks are searched with TPE). Stage 2: its feasible front
re-trained from scratch (``retrain_front``). Baseline: ``studies/mixed_precision.toml``'s study
(the same space, every trial trained from scratch), run one trial at a time until it has used
the same wall time as stages 1 + 2 together. Both fronts are scored by stand-alone validation
accuracy in the bitnas hypervolume (``front_hypervolume``, reference (0, budget)).

    nice -n 10 python bench/supernet_study.py --out docs/supernet/mixed_precision_study.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import optuna

from bitnas.evaluators.supernet.slots import smallest
from bitnas.search.export import front_trials
from bitnas.search.pareto import front_hypervolume
from bitnas.spaces import bitops
from bitnas.studies.api import run
from bitnas.studies.loader import load_spec
from bitnas.studies.two_stage import retrain_front

ROOT = Path(__file__).resolve().parents[1]


def hv(study: optuna.Study, budget: float, cost_min: float) -> tuple[float, int]:
    front = front_trials(study)
    acc = [t.values[0] for t in front]
    cost = [t.values[1] for t in front]
    return front_hypervolume(acc, cost, budget=budget, cost_min=cost_min), len(front)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=300, help="supernet trials (stage 1)")
    ap.add_argument("--dir", default="runs/bench/mixed_precision", help="storage folder")
    ap.add_argument("--out", default="")
    a = ap.parse_args(argv)
    folder = Path(a.dir)
    folder.mkdir(parents=True, exist_ok=True)
    sn = load_spec(ROOT / "studies" / "mixed_precision_supernet.toml")
    sn = sn.replace(storage=f"sqlite:///{folder}/supernet.db", trials=a.trials)
    sn = dataclasses.replace(sn, supernet=dataclasses.replace(sn.supernet, progress=False))
    budget = float(sn.budget.bitops or 0)
    cost_min = float(bitops(smallest(sn.space)))  # the cheapest architecture (8,352)
    first = run(sn, progress=False)
    # stage 1's wall time from the stored trials (it may have been resumed) plus the supernet's
    # training seconds from its checkpoint
    import torch

    done = [t for t in first.study.trials if t.datetime_complete is not None]
    span = max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)  # type: ignore[type-var]
    ck = torch.load(sn.supernet_checkpoint(), map_location="cpu", weights_only=False)
    train_s = float(ck["log"]["seconds"])
    stage1 = span.total_seconds() + train_s
    t1 = time.perf_counter()
    second = retrain_front(sn, progress=False)
    t2 = time.perf_counter()
    t0 = t1 - stage1
    scratch = load_spec(ROOT / "studies" / "mixed_precision.toml")
    scratch = scratch.replace(storage=f"sqlite:///{folder}/scratch.db", name="scratch")
    spent, n, base = 0.0, 0, None
    while spent < t2 - t0:  # the same wall time, one trial at a time
        n += 1
        s = time.perf_counter()
        base = run(scratch, trials=n, progress=False)
        spent += time.perf_counter() - s
    assert base is not None
    out = {
        "space_size": sn.space.size(),
        "budget": budget,
        "supernet_trials": a.trials,
        "supernet_train_seconds": train_s,
        "stage1_seconds": stage1,
        "stage2_seconds": t2 - t1,
        "stage1_supernet_front_hv": hv(first.study, budget, cost_min),
        "retrained_front_hv": hv(second.study, budget, cost_min),
        "scratch_trials": n,
        "scratch_seconds": spent,
        "scratch_front_hv": hv(base.study, budget, cost_min),
    }
    text = json.dumps(out, indent=1)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
