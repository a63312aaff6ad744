"""NAS-Bench-201 CIFAR-10 through the plain-Optuna path: known-cost vs Optuna's samplers.

The table: the 15,625 cells of NAS-Bench-201 (6 edges x 5 operations) with their CIFAR-10
accuracy after full training, as shipped on PyPI by ``analog-nasbench`` (AnalogNAS-Bench,
Benmeziane et al. 2025: every NAS-Bench-201 cell trained on CIFAR-10; its
``baseline_accuracy`` is the full-precision network's). Nothing is downloaded at run time:
``pip install analog-nasbench`` puts the table in site-packages (bitnas's ``bench`` extra).
The table has one accuracy per cell (no separate validation split), so the searched and the
reported accuracy are the same number.

Cost: the network's weight count (NAS-Bench-201's model size), computed exactly from the cell
(stem, 3 x 5 cells at 16/32/64 channels, two residual reductions, classifier; ReLU-Conv-BN
operations with affine batch norm): 73,306 weights with no convolution in the cell, 1,531,546
with six 3x3 convolutions. Budget: the median size over all cells.

Each study is what a user writes with Optuna alone: ``ask``, six ``suggest_categorical``, the
objective's two values and ``trial.set_constraint`` (cost - budget), ``tell``. Every trial
counts (repeats and over-budget proposals too: a real run would train them).

Hypervolume, two definitions, both over the feasible points found so far / the true front's:
- discriminating (``hv``): linear cost axis, reference cost = budget, reference accuracy =
  worst true-front accuracy minus 10% of the true front's accuracy range;
- the previous one (``hv_log``): bitnas's ``front_hypervolume`` (log cost, reference 0).

    python bench/nasbench201.py --seeds 10 --trials 300 \
        --runs docs/search_quality/nb201.runs.jsonl \
        --out docs/search_quality/nb201.json --plot docs/search_quality/nb201.png

Known-cost also reports, at 50/100/200/300 trials, the share of untried feasible cells whose
true accuracy lies inside its 2-sigma interval, and the Spearman correlation of its predicted
median with the truth over them.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import pickle
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from _runs import append_run, load_runs

from bitnas.search.known_cost import KnownCostSampler
from bitnas.search.pareto import front_hypervolume, hypervolume

#: analog-nasbench's operation codes 0..4 (identified from its table: all-``none`` cells are
#: at 10%, all-3x3 convolutions at 93.2%, all-1x1 at 89.5%, all-pooling at 50.3%).
OPS = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")
EDGES = tuple(f"edge_{i}" for i in range(6))
SAMPLERS = ["known-cost", "random", "tpe", "tpe-mv", "nsga2"]
CHECKPOINTS = (50, 100, 200, 300)
VERSION = 1


class _Plain:
    """Stands in for analog-nasbench's record classes: its module imports ``pkg_resources``
    (gone from current setuptools), so the pickle is read without importing it."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("analognasbench"):
            return _Plain
        return super().find_class(module, name)


def load_table() -> dict[tuple[int, ...], float]:
    """Cell (6 operation codes) -> CIFAR-10 accuracy in [0, 1]."""
    spec = importlib.util.find_spec("analognasbench")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "NAS-Bench-201 needs the table shipped by `pip install analog-nasbench` "
            "(or `pip install -e '.[bench]'`)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data.anb"
    with path.open("rb") as f:
        data = _Unpickler(f).load()
    return {tuple(int(o) for o in k): float(v.baseline_accuracy) / 100.0 for k, v in data.items()}


def _front_2d(acc: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Indices of the (accuracy max, cost min) front, by one sort (``pareto_mask`` compares
    every pair: seconds on 8,000 cells)."""
    order = np.lexsort((-acc, cost))
    best, out = -np.inf, []
    for i in order:
        if acc[i] > best:
            best = acc[i]
            out.append(i)
    return np.array(out, dtype=int)


def cell_params(ops: tuple[str, ...]) -> int:
    """Weights of the NAS-Bench-201 network with this cell (the module docstring)."""
    fixed = 3 * 16 * 9 + 2 * 16  # stem conv + BN
    for c_in, c in ((16, 32), (32, 64)):  # residual reductions: 2 convs + BN, 1x1 shortcut
        fixed += c_in * c * 9 + 2 * c + c * c * 9 + 2 * c + c_in * c
    fixed += 2 * 64 + 64 * 10 + 10  # last BN, classifier
    per_edge = {"nor_conv_3x3": 9, "nor_conv_1x1": 1}
    cells = 0
    for c in (16, 32, 64):
        cells += 5 * sum(per_edge[o] * c * c + 2 * c for o in ops if o in per_edge)
    return fixed + cells


class Benchmark:
    def __init__(self) -> None:
        table = load_table()
        self.acc = {tuple(OPS[i] for i in k): v for k, v in table.items()}
        self.cost = {k: cell_params(k) for k in self.acc}
        self.budget = float(np.median(list(self.cost.values())))
        feas = [k for k in self.acc if self.cost[k] <= self.budget]
        self.feasible = feas
        a = np.array([self.acc[k] for k in feas])
        c = np.array([self.cost[k] for k in feas], dtype=float)
        front = _front_2d(a, c)
        fa = a[front]
        self.ref_acc = float(fa.min() - 0.1 * np.ptp(fa))
        self.cost_min = float(min(self.cost.values()))
        self.true_hv = self.hv(list(a), list(c))
        self.true_hv_log = front_hypervolume(a, c, budget=self.budget, cost_min=self.cost_min)
        self.front_points = len(front)

    def hv(self, acc: list[float], cost: list[float]) -> float:
        pts = [(x, y / self.budget) for x, y in zip(acc, cost, strict=True) if y <= self.budget]
        return hypervolume(pts, [self.ref_acc, 1.0], ["maximize", "minimize"]) if pts else 0.0

    def sampler(self, name: str, seed: int) -> optuna.samplers.BaseSampler:
        s = optuna.samplers
        if name == "known-cost":
            return KnownCostSampler(
                cost=lambda p: float(cell_params(tuple(p[e] for e in EDGES))),
                budget=self.budget,
                search_space={e: optuna.distributions.CategoricalDistribution(OPS) for e in EDGES},
                cost_axis="linear",  # the axis this benchmark reports
                seed=seed,
            )
        return {
            "random": lambda: s.RandomSampler(seed=seed),
            "tpe": lambda: s.TPESampler(seed=seed),
            "tpe-mv": lambda: s.TPESampler(seed=seed, multivariate=True),
            "nsga2": lambda: s.NSGAIISampler(seed=seed),
        }[name]()

    def run(self, name: str, seed: int, trials: int) -> dict[str, Any]:
        sampler = self.sampler(name, seed)
        study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
        acc: list[float] = []
        cost: list[float] = []
        ask_ms: list[float] = []
        hv: list[float] = []
        hv_log: list[float] = []
        seen: set[tuple[str, ...]] = set()
        over = repeats = 0
        fidelity: dict[str, Any] = {}
        for n in range(1, trials + 1):
            t0 = time.perf_counter()
            trial = study.ask()
            cell = tuple(trial.suggest_categorical(e, OPS) for e in EDGES)
            ask_ms.append(1000 * (time.perf_counter() - t0))
            a, c = self.acc[cell], float(self.cost[cell])
            trial.set_constraint("over_budget", c - self.budget)
            study.tell(trial, [a, c])
            over += c > self.budget
            repeats += cell in seen
            seen.add(cell)
            acc.append(a)
            cost.append(c)
            hv.append(self.hv(acc, cost) / self.true_hv)
            fa = [x for x, y in zip(acc, cost, strict=True) if y <= self.budget]
            fc = [y for y in cost if y <= self.budget]
            log = front_hypervolume(fa, fc, budget=self.budget, cost_min=self.cost_min) if fa else 0
            hv_log.append(log / self.true_hv_log)
            if name == "known-cost" and n in CHECKPOINTS:
                fidelity[str(n)] = self.fidelity(sampler, seen)  # type: ignore[arg-type]
        return {
            "sampler": name,
            "seed": seed,
            "trials": trials,
            "version": VERSION,
            "hv": hv,
            "hv_log": hv_log,
            "ask_ms": ask_ms,
            "over_budget": over,
            "repeats": repeats,
            "fidelity": fidelity,
        }

    def fidelity(self, sampler: KnownCostSampler, seen: set[tuple[str, ...]]) -> dict[str, float]:
        from scipy.stats import spearmanr

        untried = [k for k in self.feasible if k not in seen]
        med, lo, hi = sampler.predict([dict(zip(EDGES, k, strict=True)) for k in untried])
        truth = np.array([self.acc[k] for k in untried])
        return {
            "coverage_2sigma": float(np.mean((truth >= lo) & (truth <= hi))),
            "spearman": float(spearmanr(med, truth).statistic),
            "mean_halfwidth": float(np.mean((hi - lo) / 2)),
        }


def reached(h: list[float], target: float) -> int:
    return next((i for i, v in enumerate(h, 1) if v >= target - 1e-12), len(h) + 1)


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in dict.fromkeys(r["sampler"] for r in runs):
        rs = [r for r in runs if r["sampler"] == name]
        row: dict[str, Any] = {"seeds": len(rs)}
        for n in CHECKPOINTS:
            if all(len(r["hv"]) >= n for r in rs):
                v = [r["hv"][n - 1] for r in rs]
                row[f"hv@{n}"] = {
                    "median": statistics.median(v),
                    "min": min(v),
                    "max": max(v),
                    "mean": statistics.mean(v),
                }
                row[f"hv_log@{n}"] = statistics.median(r["hv_log"][n - 1] for r in rs)
        for t in (0.95, 0.99):
            row[f"to_{round(t * 100)}"] = statistics.median(reached(r["hv"], t) for r in rs)
        ms = [m for r in rs for m in r["ask_ms"][10:]]
        row["ask_ms_median"] = statistics.median(ms)
        row["ask_ms_max"] = max(ms)
        row["over_budget"] = sum(r["over_budget"] for r in rs)
        row["repeats"] = sum(r["repeats"] for r in rs)
        fid = [r["fidelity"] for r in rs if r.get("fidelity")]
        for n in CHECKPOINTS:
            got = [f[str(n)] for f in fid if str(n) in f]
            if got:
                row[f"coverage@{n}"] = statistics.mean(g["coverage_2sigma"] for g in got)
                row[f"spearman@{n}"] = statistics.mean(g["spearman"] for g in got)
        out[name] = row
    return out


def markdown(summary: dict[str, Any]) -> str:
    head = (
        ["sampler", "seeds"]
        + [f"HV@{n} median [min-max]" for n in CHECKPOINTS]
        + ["to 95%", "to 99%", "ask ms median / max", "over budget", "repeats"]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in summary.items():
        cells = [name, str(r["seeds"])]
        for n in CHECKPOINTS:
            h = r.get(f"hv@{n}")
            cells.append(f"{h['median']:.3f} [{h['min']:.3f}-{h['max']:.3f}]" if h else "-")
        cells += [
            f"{r['to_95']:.0f}",
            f"{r['to_99']:.0f}",
            f"{r['ask_ms_median']:.1f} / {r['ask_ms_max']:.0f}",
            str(r["over_budget"]),
            str(r["repeats"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(runs: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in dict.fromkeys(r["sampler"] for r in runs):
        h = np.array([r["hv"] for r in runs if r["sampler"] == name])
        x = np.arange(1, h.shape[1] + 1)
        ax.plot(x, np.median(h, 0), label=name, lw=2.5 if name == "known-cost" else 1.2)
        ax.fill_between(x, h.min(0), h.max(0), alpha=0.08)
    ax.set_ylim(0.5, 1.005)
    ax.set_xlabel("trials")
    ax.set_ylabel("HV / true HV (discriminating)")
    ax.set_title(f"NAS-Bench-201 CIFAR-10: median and range over {h.shape[0]} seeds")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samplers", default=",".join(SAMPLERS))
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. +seeds-1")
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--runs", type=Path, help="JSON-lines cache: finished runs are not repeated")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--plot", type=Path)
    args = ap.parse_args()
    optuna.logging.set_verbosity(logging.ERROR)
    warnings.filterwarnings("ignore")
    bench = Benchmark()
    print(
        f"NAS-Bench-201: {len(bench.acc)} cells, budget {bench.budget:,.0f} weights, "
        f"{len(bench.feasible)} feasible, true front {bench.front_points} points, "
        f"reference accuracy {bench.ref_acc:.4f}",
        file=sys.stderr,
    )
    done = load_runs(args.runs, args.trials, VERSION)
    runs = []
    for name in args.samplers.split(","):
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            r = done.get((name, seed)) or bench.run(name, seed, args.trials)
            if (name, seed) not in done:
                append_run(args.runs, r)
            runs.append(r)
            print(
                f"  {name:10s} seed {seed}: HV@100 {r['hv'][min(99, len(r['hv']) - 1)]:.3f}",
                file=sys.stderr,
            )
    summary = summarise(runs)
    print(markdown(summary))
    facts = {
        "cells": len(bench.acc),
        "budget": bench.budget,
        "feasible": len(bench.feasible),
        "front_points": bench.front_points,
        "reference_accuracy": bench.ref_acc,
    }
    if args.out:
        args.out.write_text(json.dumps({**facts, "summary": summary}, indent=1))
    if args.plot:
        plot(runs, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
