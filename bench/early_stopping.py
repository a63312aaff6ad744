"""Early stopping: training epochs saved by the Pareto stopper, and the hypervolume it costs.

Runs the same studies as ``bench/search_quality.py`` (the real bitnas trial protocol, a
``TableEvaluator`` replaying each architecture's mean validation curve epoch by epoch) twice
per sampler and seed: without a stopper and with one, for a fixed number of finished trials
(stopped trials count, as they do in a study; re-proposals of a stopped architecture are
re-told, not trained, and do not count). For each run it records the total training
epochs (every trained trial's epochs; duplicates and budget rejections train nothing) and the
hypervolume ratio of the final feasible front (COMPLETE trials) to the table's true front.

    python bench/early_stopping.py --table digits_mlp --seeds 10 --trials 150 \\
        --samplers tpe,random,known-cost --oracle --out docs/early_stopping_digits_mlp.json

Prints, per sampler, the epochs with the stopper as a share of those without it, and the mean
final hypervolume ratio with and without it (means over seeds, with sd). ``--grid`` instead
scores several stopper settings (for tuning: use one table, confirm on another).

``--oracle`` adds a reference: a stopper that knows every architecture's final accuracy (from
the table) and stops a trial at ``min_epochs`` exactly when a completed trial of no greater
cost will beat it by ``margin`` at the end. It is the most a rule with the same
``min_epochs`` and ``margin`` can save without stopping a trial that would have mattered;
a rule that stops earlier, or on a smaller margin, can save more, at a risk.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parent))

from search_quality import (
    _COST_MIN,
    _table_evaluator,
    table_arguments,
    table_setup,
    table_study,
)

from bitnas.search.pareto import front_hypervolume
from bitnas.search.stopping import NoStopper, ParetoStopper, Reference, Stopper
from bitnas.search.trials import ATTR_DUPLICATE, ATTR_REJECTED, ATTR_STOPPED

SAMPLERS = ["tpe", "random", "known-cost"]


def run_one(
    spec_path: Path, table: Path, sampler: str, seed: int, trials: int, stopper: Stopper
) -> dict[str, Any]:
    """One study; its total training epochs, stops and final hypervolume."""
    study, spec, seconds = table_study(spec_path, table, sampler, seed, trials, stopper)
    budget = float(spec.budget.bitops or 0)
    acc: list[float] = []
    cost: list[float] = []
    epochs = stopped = finished = 0
    stopped_keys: list[str] = []
    for t in study.get_trials(deepcopy=False):
        if ATTR_REJECTED in t.user_attrs or ATTR_DUPLICATE in t.user_attrs:
            continue
        if t.state == optuna.trial.TrialState.COMPLETE and t.values is not None:
            acc.append(t.values[0])
            cost.append(t.values[1])
        elif ATTR_STOPPED not in t.user_attrs:
            continue
        else:
            stopped += 1
            stopped_keys.append(t.user_attrs["arch_key"])
        finished += 1
        epochs += int(t.user_attrs["epochs"])
    hv = front_hypervolume(acc, cost, budget=budget, cost_min=_COST_MIN[table]) if acc else 0.0
    return {
        "sampler": sampler,
        "seed": seed,
        "stopper": stopper.settings() if stopper.active else None,
        "trials": finished,
        "epochs": epochs,
        "stopped": stopped,
        "stopped_keys": stopped_keys,
        "hv": hv,
        "seconds": seconds,
    }


def _front_keys(table: Path, budget: float) -> set[str]:
    """Architecture keys of the table's true feasible front."""
    from bitnas.search.pareto import pareto_mask

    entries = {k: e for k, e in _table_evaluator(table).entries().items() if e.bitops <= budget}
    keys = list(entries)
    mask = pareto_mask(
        [[entries[k].val_accuracy, entries[k].bitops] for k in keys], ["maximize", "minimize"]
    )
    return {k for k, m in zip(keys, mask, strict=True) if m}


@dataclass(frozen=True)
class OracleStopper(Stopper):
    """Knows each architecture's final accuracy (``finals``: cost -> [(curve, final)]); stops
    at ``min_epochs`` a trial that a completed trial of no greater cost beats by ``margin``
    at the end. A reference for the benchmark, not a stopper for studies."""

    finals: dict[float, list[tuple[tuple[float, ...], float]]] = field(repr=False)
    min_epochs: int = ParetoStopper.min_epochs
    margin: float = ParetoStopper.margin

    def settings(self) -> dict[str, Any]:
        return {"oracle": True, "min_epochs": self.min_epochs, "margin": self.margin}

    def stop_reason(
        self, step: int, curve: Sequence[float], cost: float, completed: Sequence[Reference]
    ) -> str | None:
        if step < self.min_epochs or not completed:
            return None
        if step >= max(len(r.curve) for r in completed):
            return None
        # the table's architectures of this cost whose curve starts as the trial's; were
        # there several, the best final (the one least likely to be stopped) decides
        finals = [
            f
            for c, f in self.finals.get(cost, [])
            if len(c) >= step
            and all(math.isclose(a, b) for a, b in zip(c[:step], curve[:step], strict=True))
        ]
        if not finals:
            return None
        final = max(finals)
        beaten = any(r.cost <= cost and r.curve[-1] >= final + self.margin for r in completed)
        return "oracle: will end dominated" if beaten else None


def _oracle(table: Path, min_epochs: int, margin: float) -> OracleStopper:
    finals: dict[float, list[tuple[tuple[float, ...], float]]] = {}
    for e in _table_evaluator(table).entries().values():
        finals.setdefault(float(e.bitops), []).append((tuple(e.curve), e.curve[-1]))
    return OracleStopper(finals=finals, min_epochs=min_epochs, margin=margin)


def _sd(xs: list[float]) -> float:
    return statistics.stdev(xs) if len(xs) > 1 else 0.0


def compare(
    base: list[dict[str, Any]], stop: list[dict[str, Any]], truth: float, front: set[str]
) -> dict[str, Any]:
    """Per sampler: epochs and final HV ratio with the stopper vs without (same seeds)."""
    out: dict[str, Any] = {}
    for name in dict.fromkeys(r["sampler"] for r in base):
        b = {r["seed"]: r for r in base if r["sampler"] == name}
        s = {r["seed"]: r for r in stop if r["sampler"] == name}
        seeds = sorted(set(b) & set(s))
        epoch_share = [s[k]["epochs"] / b[k]["epochs"] for k in seeds]
        hv_b = [b[k]["hv"] / truth for k in seeds]
        hv_s = [s[k]["hv"] / truth for k in seeds]
        out[name] = {
            "seeds": len(seeds),
            "epochs_without": statistics.mean(b[k]["epochs"] for k in seeds),
            "epochs_with": statistics.mean(s[k]["epochs"] for k in seeds),
            "epoch_share": {"mean": statistics.mean(epoch_share), "sd": _sd(epoch_share)},
            "epochs_saved": 1
            - sum(s[k]["epochs"] for k in seeds) / sum(b[k]["epochs"] for k in seeds),
            "hv_ratio_without": {"mean": statistics.mean(hv_b), "sd": _sd(hv_b)},
            "hv_ratio_with": {"mean": statistics.mean(hv_s), "sd": _sd(hv_s)},
            "hv_with_over_without": statistics.mean(hv_s) / statistics.mean(hv_b),
            "stopped_per_study": statistics.mean(s[k]["stopped"] for k in seeds),
            # stops of architectures on the true front: the stopper's real mistakes
            "true_front_stopped": sum(
                sum(key in front for key in s[k]["stopped_keys"]) for k in seeds
            ),
        }
    return out


def markdown(results: list[dict[str, Any]]) -> str:
    """The summary as Markdown: one row per stopper (the oracle last) and sampler."""
    rows = [
        "| stopper | sampler | epochs without | epochs with | saved | HV without | HV with "
        "| HV with / without | stopped / study | front stops |",
        "|---|---|---:|---:|---:|---|---|---:|---:|---:|",
    ]
    for r in results:
        st = r["stopper"]
        name = "oracle (same e, margin)" if st.get("oracle") else "pareto (defaults)"
        for sampler, v in r["summary"].items():
            hb, hs = v["hv_ratio_without"], v["hv_ratio_with"]
            rows.append(
                f"| {name} | {sampler} | {v['epochs_without']:,.0f} | {v['epochs_with']:,.0f} "
                f"| {100 * v['epochs_saved']:.1f}% | {hb['mean']:.4f} ± {hb['sd']:.4f} "
                f"| {hs['mean']:.4f} ± {hs['sd']:.4f} | {v['hv_with_over_without']:.4f} "
                f"| {v['stopped_per_study']:.1f} | {v['true_front_stopped']} |"
            )
    return "\n".join(rows)


def main() -> int:
    ap = table_arguments(__doc__.split("\n\n")[0], SAMPLERS)
    ap.add_argument("--min-epochs", type=int, default=ParetoStopper.min_epochs)
    ap.add_argument("--margin", type=float, default=ParetoStopper.margin)
    ap.add_argument("--min-dominating", type=int, default=ParetoStopper.min_dominating)
    ap.add_argument("--headroom", type=float, default=ParetoStopper.headroom)
    ap.add_argument(
        "--grid",
        metavar="E:M:K[:H],...",
        help="score these settings (min_epochs:margin:min_dominating[:headroom], "
        "comma-separated) instead of one",
    )
    ap.add_argument(
        "--oracle",
        action="store_true",
        help="also score the oracle (a stopper that knows each final accuracy)",
    )
    ap.add_argument("--out", type=Path, help="JSON with every run and the summary")
    ap.add_argument("--from-json", type=Path, help="print the table of an earlier --out")
    args = ap.parse_args()
    if args.from_json:
        print(markdown(json.loads(args.from_json.read_text())["results"]))
        return 0
    spec_path, table, facts = table_setup(args.table, args.trials)
    truth = facts["true_hv"]
    front = _front_keys(table, facts["budget"])
    samplers = args.samplers.split(",")
    if args.grid:
        settings = []
        for item in args.grid.split(","):
            e, m, k, *h = item.split(":")
            settings.append(
                ParetoStopper(
                    min_epochs=int(e),
                    margin=float(m),
                    min_dominating=int(k),
                    headroom=float(h[0]) if h else ParetoStopper.headroom,
                )
            )
    else:
        settings = [
            ParetoStopper(
                min_epochs=args.min_epochs,
                margin=args.margin,
                min_dominating=args.min_dominating,
                headroom=args.headroom,
            )
        ]
    if args.oracle:
        settings.append(_oracle(table, settings[0].min_epochs, settings[0].margin))
    base = [
        run_one(spec_path, table, name, seed, args.trials, NoStopper())
        for name in samplers
        for seed in range(args.seeds)
    ]
    results = []
    for st in settings:
        stop = [
            run_one(spec_path, table, name, seed, args.trials, st)
            for name in samplers
            for seed in range(args.seeds)
        ]
        summary = compare(base, stop, truth, front)
        results.append({"stopper": st.settings(), "summary": summary, "runs": stop})
        line = "  ".join(
            f"{n}: epochs {v['epoch_share']['mean']:.2f} hv {v['hv_with_over_without']:.4f} "
            f"front-stops {v['true_front_stopped']}"
            for n, v in summary.items()
        )
        print(f"{st.settings()}  {line}", file=sys.stderr)
    if not args.grid:
        print(markdown(results))
    if args.out:
        args.out.write_text(
            json.dumps(
                {
                    **facts,
                    "baseline": base,
                    "results": results,
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
