"""A >= 10^6-architecture mixed-precision study searched through the supernet, its front
re-trained from scratch, against a from-scratch search given the same wall time.

Stage 1: ``--study`` (default ``studies/mixed_precision_supernet.toml``, 1,065,216 digits MLPs;
``studies/mnist1d_mixed_supernet.toml``: 1,775,616 MNIST-1D cnn1d networks with timesteps; the
supernet is trained once, then ``--trials`` sub-networks are searched with TPE). Stage 2: the first
``--layers`` non-dominated layers of its feasible trials re-trained from scratch
(``retrain_front``; 1: the front only). Baseline: ``--baseline`` (default
``studies/mixed_precision.toml``: the same space, every trial trained from scratch), run one
trial at a time until it has used the same wall time as stages 1 + 2 together. Both fronts are
scored by stand-alone validation accuracy in the bitnas hypervolume (``front_hypervolume``,
reference (0, budget)).

    nice -n 10 python bench/supernet_study.py --out docs/supernet/mixed_precision_study.json
    nice -n 10 python bench/supernet_study.py --trials 110 --seed 1 --layers 2 \
        --dir runs/bench/mixed_precision_s1 --out docs/supernet/mixed_precision_study_s1.json
    nice -n 10 python bench/supernet_study.py --study studies/mnist1d_mixed_supernet.toml \
        --baseline studies/mnist1d_mixed.toml --trials 200 --layers 2 --seed 0 \
        --dir runs/bench/mnist1d_mixed_s0 --out docs/supernet/mnist1d_mixed_study_s0.json
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


def span_seconds(study: optuna.Study) -> float:
    """Seconds from a study's first trial start to its last trial end."""
    starts = [t.datetime_start for t in study.trials if t.datetime_start is not None]
    ends = [t.datetime_complete for t in study.trials if t.datetime_complete is not None]
    return float((max(ends) - min(starts)).total_seconds())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--study",
        default=str(ROOT / "studies" / "mixed_precision_supernet.toml"),
        help="the supernet study file (stage 1)",
    )
    ap.add_argument(
        "--baseline",
        default=str(ROOT / "studies" / "mixed_precision.toml"),
        help="the from-scratch study file of the same space",
    )
    ap.add_argument("--trials", type=int, default=300, help="supernet trials (stage 1)")
    ap.add_argument("--sampler", default="", help="stage 1's sampler (default: --study's)")
    ap.add_argument(
        "--scratch-sampler", default="", help="the baseline's sampler (default: --baseline's)"
    )
    ap.add_argument("--dir", default="runs/bench/mixed_precision", help="storage folder")
    ap.add_argument("--seed", type=int, default=0, help="study seed of both searches")
    ap.add_argument("--layers", type=int, default=1, help="stage 2: non-dominated layers")
    ap.add_argument("--out", default="")
    a = ap.parse_args(argv)
    folder = Path(a.dir)
    folder.mkdir(parents=True, exist_ok=True)
    sn = load_spec(a.study)
    if sn.supernet is None:
        ap.error(f"--study {a.study} has no [supernet] section")
    sn = sn.replace(
        storage=f"sqlite:///{folder}/supernet.db",
        trials=a.trials,
        seed=a.seed,
        sampler=a.sampler or None,
    )
    assert sn.supernet is not None
    sn = dataclasses.replace(sn, supernet=dataclasses.replace(sn.supernet, progress=False))
    budget = float(sn.budget.bitops or 0)
    cost_min = float(bitops(smallest(sn.space)))  # the cheapest architecture
    first = run(sn, progress=False)
    # stage 1's wall time from the stored trials (it may have been resumed) plus the supernet's
    # training seconds from its checkpoint
    import torch

    ck = torch.load(sn.supernet_checkpoint(), map_location="cpu", weights_only=False)
    train_s = float(ck["log"]["seconds"])
    stage1 = span_seconds(first.study) + train_s
    second = retrain_front(sn, layers=a.layers, progress=False)
    # stage 2's wall time from its stored trials too, so a rerun in the same --dir (another
    # --scratch-sampler) reuses both stages and compares against the same wall time
    stage2 = span_seconds(second.study)
    scratch = load_spec(a.baseline)
    if scratch.supernet is not None or scratch.space != sn.space:
        ap.error(f"--baseline {a.baseline} must search the same space from scratch")
    tag = f"-{a.scratch_sampler}" if a.scratch_sampler else ""
    scratch = scratch.replace(
        storage=f"sqlite:///{folder}/scratch{tag}.db",
        name="scratch",
        seed=a.seed,
        sampler=a.scratch_sampler or None,
    )
    spent, n, base = 0.0, 0, None
    while spent < stage1 + stage2:  # the same wall time, one trial at a time
        n += 1
        s = time.perf_counter()
        base = run(scratch, trials=n, progress=False)
        spent += time.perf_counter() - s
    assert base is not None
    out = {
        "study": Path(a.study).name,
        "space_size": sn.space.size(),
        "budget": budget,
        "seed": a.seed,
        "retrain_layers": a.layers,
        "sampler": sn.study.sampler,
        "scratch_sampler": scratch.study.sampler,
        "retrained": second.counts()["complete"],
        "supernet_trials": a.trials,
        "supernet_train_seconds": train_s,
        "stage1_seconds": stage1,
        "stage2_seconds": stage2,
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
