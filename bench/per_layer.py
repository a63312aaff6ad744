"""Per-layer mixed precision with real training: known-cost vs Optuna's samplers.

The space (``bench/spaces/per_layer_digits.toml``): an MLP on scikit-learn's digits whose
every layer picks its own width, weight bits and activation bits, with depth and timesteps
searched too -- 65 million architectures, far past enumeration, so the known-cost sampler
generates its candidates (moves around the front, crossover, repaired random draws). Each
study runs bitnas's own runner (``optimize``: budget rejection, repeats answered, the unseen
fallback) until ``--trials`` trained trials.

Training is deterministic per architecture (the study seed is fixed; samplers get their own
seeds), so every architecture any run trains is kept in a JSON-lines cache (``--cache``) and
looked up by the others: the comparison is on one fixed function, and the benchmark resumes
where it stopped. Hypervolume is measured against the union front of every run: bitnas's
(log cost, reference accuracy 0) and a discriminating one (linear cost / budget, reference
accuracy = the union front's worst minus 10% of its range).

    python bench/per_layer.py --seeds 5 --trials 100 \
        --cache docs/search_quality/per_layer.cache.jsonl \
        --runs docs/search_quality/per_layer.runs.jsonl --out docs/search_quality/per_layer.json
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from _runs import append_run, load_runs
from optuna.samplers import BaseSampler

from bitnas.evaluators import EvalResult
from bitnas.evaluators._base import Evaluator
from bitnas.search import Problem, make_sampler, optimize
from bitnas.search.pareto import front_hypervolume, hypervolume, pareto_mask
from bitnas.search.trials import ATTR_DUPLICATE, ATTR_REJECTED
from bitnas.studies.loader import load_spec

HERE = Path(__file__).resolve().parent
SPEC = HERE / "spaces" / "per_layer_digits.toml"
SAMPLERS = ["known-cost", "tpe", "nsga2", "random"]
CHECKPOINTS = (25, 50, 100)
VERSION = 1


class CachedEvaluator(Evaluator):
    """Trains through ``inner`` once per architecture; later calls (any run) read the cache."""

    def __init__(self, inner: Evaluator, path: Path | None) -> None:
        self.inner, self.path = inner, path
        self.objective = inner.objective
        self.cache: dict[str, dict[str, Any]] = {}
        self.trained = 0
        if path is not None and path.exists():
            for line in path.read_text().splitlines():
                r = json.loads(line)
                self.cache[r["key"]] = r

    def evaluate(self, arch: Any, *, seed: int, report: Any = None) -> EvalResult:
        k = arch.key()
        if k not in self.cache:
            res = self.inner.evaluate(arch, seed=seed, report=None)
            r = {"key": k, "metrics": dict(res.metrics), "densities": list(res.densities or [])}
            self.cache[k] = r
            self.trained += 1
            if self.path is not None:
                with self.path.open("a") as f:
                    f.write(json.dumps(r) + "\n")
        r = self.cache[k]
        return EvalResult(metrics=r["metrics"], densities=tuple(r["densities"]) or None)


class TimedSampler(BaseSampler):
    """Delegates to a sampler and adds up the time each trial spends in it."""

    def __init__(self, inner: BaseSampler) -> None:
        self.inner = inner
        self.ms: dict[int, float] = {}

    def _timed(self, trial: Any, fn: Any, *args: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args)
        finally:
            n = trial.number
            self.ms[n] = self.ms.get(n, 0.0) + 1000 * (time.perf_counter() - t0)

    def infer_relative_search_space(self, study: Any, trial: Any) -> Any:
        return self._timed(trial, self.inner.infer_relative_search_space, study, trial)

    def sample_relative(self, study: Any, trial: Any, space: Any) -> Any:
        return self._timed(trial, self.inner.sample_relative, study, trial, space)

    def sample_independent(self, study: Any, trial: Any, name: str, dist: Any) -> Any:
        return self._timed(trial, self.inner.sample_independent, study, trial, name, dist)

    def before_trial(self, study: Any, trial: Any) -> None:
        self.inner.before_trial(study, trial)

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()

    @property
    def exhausted(self) -> bool:
        return bool(getattr(self.inner, "exhausted", False))


def run_one(name: str, seed: int, trials: int, evaluator: CachedEvaluator) -> dict[str, Any]:
    spec = load_spec(SPEC)
    problem = Problem(space=spec.space, evaluator=evaluator, budget=spec.budget, seed=0)
    sampler = TimedSampler(make_sampler(name, seed, problem))
    study = optuna.create_study(directions=problem.directions, sampler=sampler)
    t0 = time.perf_counter()
    optimize(study, problem, trials, progress=False)
    acc, cost, ask_ms = [], [], []
    rejected = repeats = 0
    for t in study.get_trials(deepcopy=False):
        if ATTR_REJECTED in t.user_attrs:
            rejected += 1
        elif ATTR_DUPLICATE in t.user_attrs:
            repeats += 1
        elif t.values is not None:
            acc.append(t.values[0])
            cost.append(t.values[1])
            ask_ms.append(sampler.ms.get(t.number, 0.0))
    return {"sampler": name, "seed": seed, "trials": trials, "version": VERSION, "acc": acc,
            "cost": cost, "ask_ms": ask_ms, "rejected": rejected, "repeats": repeats,
            "seconds": time.perf_counter() - t0}


def histories(runs: list[dict[str, Any]], budget: float, cost_min: float) -> None:
    """Adds each run's HV histories, normalised by the union front's."""
    a = np.concatenate([r["acc"] for r in runs])
    c = np.concatenate([r["cost"] for r in runs])
    front = pareto_mask(np.stack([a, c], 1), ["maximize", "minimize"])
    fa = a[front]
    ref = float(fa.min() - 0.1 * np.ptp(fa))

    def disc(acc: list[float], cost: list[float]) -> float:
        pts = [(x, y / budget) for x, y in zip(acc, cost, strict=True)]
        return hypervolume(pts, [ref, 1.0], ["maximize", "minimize"])

    true_d = disc(list(a[front]), list(c[front]))
    true_l = front_hypervolume(a[front], c[front], budget=budget, cost_min=cost_min)
    for r in runs:
        r["hv"] = [disc(r["acc"][:n], r["cost"][:n]) / true_d for n in range(1, len(r["acc"]) + 1)]
        r["hv_log"] = [
            front_hypervolume(r["acc"][:n], r["cost"][:n], budget=budget, cost_min=cost_min)
            / true_l
            for n in range(1, len(r["acc"]) + 1)
        ]
    return None


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in dict.fromkeys(r["sampler"] for r in runs):
        rs = [r for r in runs if r["sampler"] == name]
        row: dict[str, Any] = {"seeds": len(rs)}
        for n in CHECKPOINTS:
            for key in ("hv", "hv_log"):
                v = [r[key][min(n, len(r[key])) - 1] for r in rs]
                row[f"{key}@{n}"] = {"mean": statistics.mean(v),
                                     "sd": statistics.stdev(v) if len(v) > 1 else 0.0,
                                     "min": min(v)}
        ms = [m for r in rs for m in r["ask_ms"][10:]]
        row["ask_ms_median"] = statistics.median(ms) if ms else 0.0
        row["ask_ms_max"] = max(ms) if ms else 0.0
        row["rejected"] = sum(r["rejected"] for r in rs)
        row["repeats"] = sum(r["repeats"] for r in rs)
        out[name] = row
    return out


def markdown(summary: dict[str, Any]) -> str:
    head = ["sampler", "seeds"] + [f"HV@{n} (disc.)" for n in CHECKPOINTS] + [
        "HV@100 (bitnas log)", "ask ms median / max", "over budget", "repeats"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in summary.items():
        cells = [name, str(r["seeds"])]
        cells += [f"{r[f'hv@{n}']['mean']:.3f} ± {r[f'hv@{n}']['sd']:.3f}" for n in CHECKPOINTS]
        cells.append(f"{r['hv_log@100']['mean']:.3f} ± {r['hv_log@100']['sd']:.3f}")
        cells += [f"{r['ask_ms_median']:.0f} / {r['ask_ms_max']:.0f}", str(r["rejected"]),
                  str(r["repeats"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samplers", default=",".join(SAMPLERS))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. +seeds-1")
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--cache", type=Path, help="JSON-lines cache of trained architectures")
    ap.add_argument("--runs", type=Path, help="JSON-lines cache of finished runs")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    optuna.logging.set_verbosity(logging.ERROR)
    warnings.filterwarnings("ignore")
    spec = load_spec(SPEC)
    evaluator = CachedEvaluator(spec.evaluator(), args.cache)
    done = load_runs(args.runs, args.trials, VERSION)
    runs = []
    # seed-major: every sampler has results early
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for name in args.samplers.split(","):
            r = done.get((name, seed))
            if r is None:
                r = run_one(name, seed, args.trials, evaluator)
                append_run(args.runs, r)
            runs.append(r)
            print(f"  {name:10s} seed {seed}: {r['seconds']:.0f} s, {evaluator.trained} trained "
                  "so far", file=sys.stderr)
    budget = float(spec.budget.bitops or 0)
    from bitnas.spaces.cost import bitops

    cost_min = float(bitops(spec.space.extremes(bitops)[0]))
    histories(runs, budget, cost_min)
    summary = summarise(runs)
    print(markdown(summary))
    if args.out:
        args.out.write_text(json.dumps({"budget": budget, "space_size": spec.space.size(),
                                        "trained": len(evaluator.cache), "summary": summary},
                                       indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
