"""Search quality: how many trained trials each sampler needs to reach the true Pareto front.

Each study runs the real bitnas trial protocol (budget rejection, duplicate answers, the local
runner) with a ``TableEvaluator`` standing in for training, so every sampler sees exactly what
it would in a real study and a whole study takes seconds. After every *evaluation* (a trial
that trained an architecture: duplicates and over-budget rejections cost no training and are
not counted) the hypervolume of the feasible front found so far is divided by the hypervolume
of the table's true front (``bitnas.search.pareto.front_hypervolume``: accuracy x log cost,
reference (0, budget)).

    python bench/search_quality.py --table digits_mlp --seeds 10 --trials 150 \
        --out docs/search_quality_digits_mlp.json

Prints, per sampler, the mean +- sd (over seeds) of the trials needed to reach 95% and 99% of
the true hypervolume (a seed that never reaches it counts as ``--trials + 1`` and is reported),
the ratio reached at fixed trial counts, and the over-budget proposals and duplicates the
sampler made. ``--plot`` writes the ratio-vs-trials curves (PNG).
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

import numpy as np
import optuna

from bitnas.search import Problem, make_sampler, optimize
from bitnas.search.pareto import front_hypervolume
from bitnas.search.trials import ATTR_DUPLICATE, ATTR_REJECTED
from bitnas.studies.loader import load_spec

HERE = Path(__file__).resolve().parent
SAMPLERS = ["random", "tpe", "tpe-default", "nsga2", "nsga3", "gp", "qmc", "known-cost"]
TARGETS = (0.95, 0.99)
#: Runs cached with --runs are reused only under the same version: bump it whenever a
#: sampler or this script changes what a run measures.
VERSION = 2


def _sampler(name: str, seed: int, problem: Problem) -> optuna.samplers.BaseSampler:
    if name == "tpe-default":  # Optuna 5's default TPE, for reference beside bitnas's "tpe"
        return optuna.samplers.TPESampler(seed=seed)
    return make_sampler(name, seed, problem)


def table_study(
    spec_path: Path, table: Path, sampler: str, seed: int, trials: int, stopper: Any = None
) -> tuple[optuna.Study, Any, float]:
    """One in-memory study of ``trials`` finished trials on ``table`` with ``sampler`` (and
    an early ``stopper``, if given): the study, its spec and its wall time in seconds."""
    spec = load_spec(spec_path)
    problem = Problem(
        space=spec.space,
        evaluator=_table_evaluator(table),
        budget=spec.budget,
        seed=seed,
        **({"stopper": stopper} if stopper is not None else {}),
    )
    study = optuna.create_study(
        directions=problem.directions,
        sampler=_sampler(sampler, seed, problem),
        storage=optuna.storages.InMemoryStorage(),
    )
    study.set_metric_names(problem.metric_names)
    t0 = time.perf_counter()
    optimize(study, problem, trials, progress=False)
    return study, spec, time.perf_counter() - t0


def run_one(spec_path: Path, table: Path, sampler: str, seed: int, trials: int) -> dict[str, Any]:
    study, spec, seconds = table_study(spec_path, table, sampler, seed, trials)
    acc: list[float] = []
    cost: list[float] = []
    history: list[float] = []
    linear: list[float] = []
    rejected = duplicates = 0
    if spec.budget.bitops is None:
        raise SystemExit(f"{spec_path}: search quality needs a [budget] (the HV reference)")
    budget = float(spec.budget.bitops)
    for t in study.get_trials(deepcopy=False):
        if ATTR_REJECTED in t.user_attrs:
            rejected += 1
            continue
        if ATTR_DUPLICATE in t.user_attrs:
            duplicates += 1
            continue
        if t.state != optuna.trial.TrialState.COMPLETE or t.values is None:
            continue
        acc.append(t.values[0])
        cost.append(t.values[1])
        history.append(front_hypervolume(acc, cost, budget=budget, cost_min=_COST_MIN[table]))
        linear.append(linear_hypervolume(acc, cost, budget))
    return {
        "sampler": sampler,
        "seed": seed,
        "table": str(table.name),
        "hv": history,
        "hv_linear": linear,
        "accuracy": acc,
        "bitops": cost,
        "rejected": rejected,
        "duplicates": duplicates,
        "seconds": seconds,
    }


_EVALUATORS: dict[Path, Any] = {}
_COST_MIN: dict[Path, float] = {}


def _table_evaluator(table: Path) -> Any:
    from bitnas.evaluators.table import TableEvaluator

    if table not in _EVALUATORS:
        _EVALUATORS[table] = TableEvaluator(path=str(table))
        _COST_MIN[table] = min(e.bitops for e in _EVALUATORS[table].entries().values())
    return _EVALUATORS[table]


def true_hypervolume(table: Path, budget: float) -> tuple[float, int, int]:
    """HV of the table's true front, its number of front points and of feasible entries."""
    from bitnas.search.pareto import pareto_mask

    entries = [e for e in _table_evaluator(table).entries().values() if e.bitops <= budget]
    acc = [e.val_accuracy for e in entries]
    cost = [e.bitops for e in entries]
    hv = front_hypervolume(acc, cost, budget=budget, cost_min=_COST_MIN[table])
    front = int(pareto_mask(np.array([acc, cost]).T, ["maximize", "minimize"]).sum())
    return hv, front, len(entries)


def linear_hypervolume(acc: list[float], cost: list[float], budget: float) -> float:
    """Hypervolume on a *linear* cost axis, reference (accuracy 0, the budget): the axis the
    generic samplers optimise (they see raw BitOps), reported beside the log-axis one so the
    comparison does not rest on the known-cost sampler's own axis."""
    from bitnas.search.pareto import hypervolume

    pts = [(a, c / budget) for a, c in zip(acc, cost, strict=True)]
    return hypervolume(pts, [0.0, 1.0], ["maximize", "minimize"])


def true_linear_hypervolume(table: Path, budget: float) -> float:
    entries = [e for e in _table_evaluator(table).entries().values() if e.bitops <= budget]
    return linear_hypervolume(
        [e.val_accuracy for e in entries], [e.bitops for e in entries], budget
    )


def table_setup(name: str, trials: int) -> tuple[Path, Path, dict[str, Any]]:
    """The study file and table of ``bench/tables/<name>``, and the facts a benchmark's JSON
    starts with (budget, true hypervolume, front size, feasible count); prints them."""
    optuna.logging.set_verbosity(logging.ERROR)  # the benchmarks print their own summaries
    warnings.filterwarnings("ignore")
    spec_path = HERE / "tables" / f"{name}.toml"
    table = HERE / "tables" / f"{name}.parquet"
    budget = float(load_spec(spec_path).budget.bitops or 0) or math.inf
    truth, n_front, n_feasible = true_hypervolume(table, budget)
    print(
        f"{name}: {n_feasible} feasible architectures, true front {n_front} points, "
        f"true HV {truth:.4f}; {trials} trials per study",
        file=sys.stderr,
    )
    facts = {
        "table": name,
        "budget": budget,
        "true_hv": truth,
        "front_points": n_front,
        "feasible": n_feasible,
        "trials": trials,
    }
    return spec_path, table, facts


def reached(history: list[float], truth: float, target: float, trials: int) -> int:
    for n, hv in enumerate(history, start=1):
        if hv >= target * truth - 1e-12:
            return n
    return trials + 1


def summarise(
    runs: list[dict[str, Any]], truth: float, trials: int, truth_linear: float
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in dict.fromkeys(r["sampler"] for r in runs):
        rs = [r for r in runs if r["sampler"] == name]
        row: dict[str, Any] = {"seeds": len(rs)}
        for target in TARGETS:
            for suffix, key, t in (("", "hv", truth), ("_linear", "hv_linear", truth_linear)):
                ns = [reached(r[key], t, target, trials) for r in rs]
                row[f"to_{int(target * 100)}{suffix}"] = {
                    "mean": statistics.mean(ns),
                    "sd": statistics.stdev(ns) if len(ns) > 1 else 0.0,
                    "median": statistics.median(ns),
                    "not_reached": sum(n > trials for n in ns),
                }
        for n in (10, 25, 50, 100, 150):
            if n <= trials:
                vals = [r["hv"][min(n, len(r["hv"])) - 1] / truth for r in rs if r["hv"]]
                row[f"ratio_at_{n}"] = statistics.mean(vals)
        row["rejected"] = sum(r["rejected"] for r in rs)
        row["duplicates"] = sum(r["duplicates"] for r in rs)
        row["seconds_per_study"] = statistics.mean(r["seconds"] for r in rs)
        out[name] = row
    return out


def markdown(summary: dict[str, Any], trials: int) -> str:
    """The summary as a Markdown table (means +- sd over seeds)."""
    lines = [
        "| sampler | seeds | trials to 95% HV | trials to 99% HV | to 99%, median "
        "| to 99% HV, linear cost | HV at 25 | HV at 50 "
        "| over-budget proposals | repeated proposals | s / study |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in summary.items():
        cells = [str(r["seeds"])]
        for t in ("to_95", "to_99", "median", "to_99_linear"):
            c = r["to_99" if t == "median" else t]
            if t == "median":
                cells.append(f"{c['median']:.0f}")
                continue
            miss = f" ({c['not_reached']} seeds > {trials})" if c["not_reached"] else ""
            cells.append(f"{c['mean']:.1f} ± {c['sd']:.1f}{miss}")
        # "-" where the studies were shorter than that
        cells += [f"{r[k]:.3f}" if k in r else "-" for k in ("ratio_at_25", "ratio_at_50")]
        cells += [str(r["rejected"]), str(r["duplicates"]), f"{r['seconds_per_study']:.1f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(runs: list[dict[str, Any]], truth: float, trials: int, out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in dict.fromkeys(r["sampler"] for r in runs):
        curves = []
        for r in runs:
            if r["sampler"] != name or not r["hv"]:
                continue
            h = np.array(r["hv"]) / truth
            curves.append(np.concatenate([h, np.full(trials - len(h), h[-1])])[:trials])
        m = np.mean(curves, axis=0)
        x = np.arange(1, trials + 1)
        lw = 2.5 if name == "known-cost" else 1.2
        ax.plot(x, m, label=name, lw=lw)
        ax.fill_between(x, np.min(curves, axis=0), np.max(curves, axis=0), alpha=0.08)
    for target in TARGETS:
        ax.axhline(target, color="grey", lw=0.6, ls="--")
    ax.set_ylim(0.5, 1.005)
    ax.set_xlabel("trained trials")
    ax.set_ylabel("hypervolume / true hypervolume")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def table_arguments(description: str, samplers: list[str]) -> argparse.ArgumentParser:
    """The options every table benchmark takes: --table, --samplers, --seeds, --trials."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--table", default="digits_mlp", help="bench/tables/<NAME>.{toml,parquet}")
    ap.add_argument("--samplers", default=",".join(samplers))
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--trials", type=int, default=150)
    return ap


def main() -> int:
    ap = table_arguments(__doc__.split("\n\n")[0], SAMPLERS)
    ap.add_argument("--out", type=Path, help="JSON with every run and the summary")
    ap.add_argument(
        "--runs",
        type=Path,
        help="JSON-lines file every finished run is appended to at once; runs already in it "
        "are not repeated (a long benchmark can be stopped and resumed, or split over "
        "processes by --samplers and merged by pointing --out runs at the same file)",
    )
    ap.add_argument("--plot", type=Path, help="PNG of mean ratio vs trials")
    ap.add_argument(
        "--from-json", type=Path, help="re-render the table and plot of an earlier --out"
    )
    args = ap.parse_args()
    if args.from_json:
        data = json.loads(args.from_json.read_text())
        print(markdown(data["summary"], data["trials"]))
        if args.plot:
            seeds = max(r["seed"] for r in data["runs"]) + 1
            title = f"{data['table']}: mean over {seeds} seeds"
            plot(data["runs"], data["true_hv"], data["trials"], args.plot, title)
        return 0
    spec_path, table, facts = table_setup(args.table, args.trials)
    truth = facts["true_hv"]
    truth_linear = true_linear_hypervolume(table, facts["budget"])
    done: dict[tuple[str, int], dict[str, Any]] = {}
    if args.runs and args.runs.exists():
        for line in args.runs.read_text().splitlines():
            r = json.loads(line)
            # a run counts only for the same table, trial count and benchmark version
            if (r.get("trials"), r.get("table"), r.get("version")) == (
                args.trials,
                table.name,
                VERSION,
            ):
                done[(r["sampler"], r["seed"])] = r
    runs = []
    for name in args.samplers.split(","):
        for seed in range(args.seeds):
            if (name, seed) in done:
                runs.append(done[(name, seed)])
                continue
            r = run_one(spec_path, table, name, seed, args.trials)
            r["trials"] = args.trials
            r["version"] = VERSION
            runs.append(r)
            if args.runs:
                with args.runs.open("a") as f:
                    f.write(json.dumps(r) + "\n")
            print(
                f"  {name:12s} seed {seed}: to99 "
                f"{reached(r['hv'], truth, 0.99, args.trials):4d}  {r['seconds']:.1f} s",
                file=sys.stderr,
            )
    summary = summarise(runs, truth, args.trials, truth_linear)
    print(markdown(summary, args.trials))
    if args.out:
        args.out.write_text(
            json.dumps(
                {
                    **facts,
                    "true_hv_linear": truth_linear,
                    "summary": summary,
                    "runs": runs,
                },
                indent=None,
            )
        )
    if args.plot:
        plot(runs, truth, args.trials, args.plot, f"{args.table}: mean over {args.seeds} seeds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
