"""Time per ask of the known-cost sampler as a study grows to 1,000 trials.

Two spaces: NAS-Bench-201 (15,625 cells, enumerated; the plain-Optuna path of
``bench/nasbench201.py``) and the per-layer digits space of ``bench/per_layer.py`` (65 million
architectures, generated candidates; a synthetic accuracy of the architecture stands in for
training, since only the sampler's time is measured). Optuna's multivariate TPE runs beside it
in the same process as the baseline the ratios are taken against (this machine is shared).

    python bench/ask_time.py --trials 1000 --out docs/search_quality/ask_time.json

Prints, per sampler and space, the median and max of the time spent asking (ask + suggests)
over trials 11-100, 101-500 and 501-1000.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parent))

RANGES = ((11, 100), (101, 500), (501, 1000))


def nb201(sampler_name: str, trials: int) -> list[float]:
    import nasbench201 as nb

    bench = nb.Benchmark()
    sampler = (
        bench.sampler("known-cost", 0)
        if sampler_name == "known-cost"
        else optuna.samplers.TPESampler(seed=0, multivariate=True)
    )
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    ms = []
    for _ in range(trials):
        t0 = time.perf_counter()
        trial = study.ask()
        cell = tuple(trial.suggest_categorical(e, nb.OPS) for e in nb.EDGES)
        ms.append(1000 * (time.perf_counter() - t0))
        c = float(bench.cost[cell])
        trial.set_constraint("over_budget", c - bench.budget)
        study.tell(trial, [bench.acc[cell], c])
    return ms


def per_layer(sampler_name: str, trials: int) -> list[float]:
    from bitnas.search import Problem, make_sampler
    from bitnas.spaces.cost import bitops
    from bitnas.studies.loader import load_spec

    spec = load_spec(Path(__file__).resolve().parent / "spaces" / "per_layer_digits.toml")

    def acc(arch: Any) -> float:  # more levels and more BitOps: more accuracy
        levels = sum(math.log2(a + 1) for a in arch.abits) / max(arch.depth, 1)
        return 1.0 - 1.0 / (1.0 + 0.05 * math.log(bitops(arch)) + 0.1 * levels)

    problem = Problem(space=spec.space, evaluator=spec.evaluator(), budget=spec.budget)
    sampler = (
        make_sampler("known-cost", 0, problem)
        if sampler_name == "known-cost"
        else optuna.samplers.TPESampler(seed=0, multivariate=True, group=True)
    )
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    ms = []
    for _ in range(trials):
        t0 = time.perf_counter()
        trial = study.ask()
        arch = spec.space.sample(trial)
        ms.append(1000 * (time.perf_counter() - t0))
        c = float(bitops(arch))
        budget = float(spec.budget.bitops or math.inf)
        trial.set_constraint("over_budget", c - budget)
        study.tell(trial, [acc(arch), c])
    return ms


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--spaces", default="nb201,per_layer")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    optuna.logging.set_verbosity(logging.ERROR)
    warnings.filterwarnings("ignore")
    out: dict[str, Any] = {"trials": args.trials}
    lines = ["| space | sampler | " + " | ".join(f"trials {a}-{b}: median / max ms"
                                                  for a, b in RANGES) + " |",
             "|---|---|" + "---:|" * len(RANGES)]
    for space in args.spaces.split(","):
        for name in ("known-cost", "tpe-mv"):
            t0 = time.perf_counter()
            ms = {"nb201": nb201, "per_layer": per_layer}[space](name, args.trials)
            row = {}
            for a, b in RANGES:
                part = ms[a - 1 : b]
                if part:
                    row[f"{a}-{b}"] = {"median": statistics.median(part), "max": max(part)}
            out[f"{space}/{name}"] = {"ranges": row, "seconds": time.perf_counter() - t0}
            cells = [f"{r['median']:.0f} / {r['max']:.0f}" for r in row.values()]
            lines.append(f"| {space} | {name} | " + " | ".join(cells) + " |")
            print(lines[-1], file=sys.stderr)
    print("\n".join(lines))
    if args.out:
        args.out.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
