"""Spikes or bits, answered exhaustively on the committed tables.

Every architecture of a table's space was trained (2 seeds), so two questions have exact
answers there, free of search noise:

1. *Matched pairs at equal BitOps.* For every structure (depth, widths, weight bits), T binary
   spikes (abits 1, T steps: T+1 levels) cost exactly the BitOps of one T-bit step (abits T,
   T = 1: 2^T levels), and T=2 x 2-bit spikes those of one 4-bit step. The mean difference in
   validation and test accuracy over all structures (seed-averaged per architecture), with its
   95% t interval over structures, a paired t-test (``scipy.stats.ttest_rel``) of the test
   accuracies, and the share of structures where each side wins.
2. *Iso-budget best per allocation family* (``bitnas.spaces.allocation``): the best
   seed-averaged validation accuracy within each budget, its test accuracy and BitOps.

    python bench/table_allocation.py --table mnist1d_cnn1d --table digits_mlp

Prints Markdown (used in docs/results/README.md).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from scipy import stats

from bitnas.evaluators.table import TableEntry, read_table
from bitnas.spaces.allocation import architecture_allocation, structure_key

HERE = Path(__file__).resolve().parent
PAIRS = [  # (spiking: T, abits) vs (single step: T, abits), equal in_bits = T * abits
    ((2, 1), (1, 2)),
    ((4, 1), (1, 4)),
    ((2, 2), (1, 4)),
]


def _structure(e: TableEntry) -> tuple[object, ...]:
    # every layer's every field (depth splits of one width differ only in where they pool)
    return structure_key(e.arch)


def _act(e: TableEntry) -> tuple[int, int]:
    abits = {a for a in e.arch.abits}
    return e.arch.timesteps, abits.pop() if len(abits) == 1 else -1


def pairs(entries: dict[str, TableEntry]) -> list[str]:
    by: dict[tuple[object, ...], dict[tuple[int, int], TableEntry]] = {}
    for e in entries.values():
        by.setdefault(_structure(e), {})[_act(e)] = e
    lines = [
        "| spiking | vs single step | equal BitOps | structures | val: spiking - single "
        "| test: spiking - single [95% CI] | paired t-test p (test) | spiking wins (val) |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for (ts, as_), (t1, a1) in PAIRS:
        dv, dt, ts_, tq, wins = [], [], [], [], 0
        for acts in by.values():
            s, q = acts.get((ts, as_)), acts.get((t1, a1))
            if s is None or q is None:
                continue
            assert s.bitops == q.bitops, "matched pairs must cost the same"
            dv.append(s.val_accuracy - q.val_accuracy)
            dt.append(s.test_accuracy - q.test_accuracy)
            ts_.append(s.test_accuracy)
            tq.append(q.test_accuracy)
            wins += s.val_accuracy > q.val_accuracy
        if not dv:
            continue
        sd = statistics.stdev(dv) if len(dv) > 1 else 0.0
        ci, p = "", ""
        if len(dt) > 1:
            half = stats.t.ppf(0.975, len(dt) - 1) * statistics.stdev(dt) / len(dt) ** 0.5
            m = statistics.mean(dt)
            ci = f" [{100 * (m - half):+.2f}, {100 * (m + half):+.2f}]"
            p = f"{stats.ttest_rel(ts_, tq).pvalue:.2g}"
        lines.append(
            f"| T={ts} x {as_} bit ({ts * (2**as_ - 1) + 1} levels) | T=1 x {a1} bit "
            f"({2**a1} levels) | yes | {len(dv)} | {100 * statistics.mean(dv):+.2f} "
            f"(sd {100 * sd:.2f}) | {100 * statistics.mean(dt):+.2f}{ci} | {p} | "
            f"{wins}/{len(dv)} |"
        )
    return lines


def iso_budget(entries: dict[str, TableEntry], budgets: list[float]) -> list[str]:
    families = ["binary_spikes", "multibit_single_step", "multibit_spikes"]
    lines = [
        "| budget (BitOps) | " + " | ".join(families) + " |",
        "|---:|" + "---|" * len(families),
    ]
    for b in budgets:
        cells = []
        for fam in families:
            pool = [
                e
                for e in entries.values()
                if e.bitops <= b and architecture_allocation(e.arch) == fam
            ]
            if fam == "multibit_single_step":  # its pure form: abits > 1
                pool = [e for e in pool if min(e.arch.abits) > 1]
            if not pool:
                cells.append("—")
                continue
            best = max(pool, key=lambda e: e.val_accuracy)
            cells.append(
                f"{100 * best.val_accuracy:.1f} (±{100 * best.val_std:.1f}; test "
                f"{100 * best.test_accuracy:.1f}) `{best.arch.summary()}`"
            )
        lines.append(f"| {b:,.0f} | " + " | ".join(cells) + " |")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--table", action="append", default=[], help="bench/tables/<NAME>.parquet")
    args = ap.parse_args()
    for name in args.table or ["mnist1d_cnn1d", "digits_mlp"]:
        entries, _ = read_table(HERE / "tables" / f"{name}.parquet")
        costs = sorted(e.bitops for e in entries.values())
        seeds = min(e.seeds for e in entries.values())
        print(f"\n### `{name}`: {len(entries)} architectures x {seeds} seeds\n")
        print("Matched pairs (validation and test accuracy in points, seed means):\n")
        print("\n".join(pairs(entries)))
        lo, hi = costs[0], costs[-1]
        budgets = [lo * (hi / lo) ** f for f in (0.25, 0.5, 0.75)]
        print("\nBest seed-mean validation accuracy per family within a budget (%):\n")
        print("\n".join(iso_budget(entries, [float(f"{b:.2g}") for b in budgets])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
