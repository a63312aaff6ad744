"""Rank fidelity of the weight-sharing supernet on the committed exhaustive tables.

For a table (bench/tables/<name>.{toml,parquet}: 324 architectures, each trained from scratch
with 2 seeds) this trains ONE supernet over the table's space with the table's data and
training settings (checkpointed, so an interrupted run resumes), measures every architecture
of the table as a sub-network of it (``measure_subnet``: extract, recalibrate batch norm,
measure), and reports Kendall tau and Spearman rho (scipy.stats) between the supernet's
validation accuracy and the table's stand-alone validation accuracy (seed mean): overall,
within the feasible set under the table's budget, and per allocation family (binary spikes:
T > 1 and 1 activation bit; single-step: T = 1; multi-bit spikes: T > 1, more bits), each with
a bootstrap 95% interval over architectures. Cost: supernet epochs and seconds (+ the seconds
measuring all 324) against the table's own training seconds (its ``seconds`` column).
``against_one_run``: the same tau against each single stand-alone run, beside one run
against the other (like for like). Stage 2 (``stage2``): the supernet's first 1, 2 and 3
non-dominated layers re-trained, their hypervolume against the true front's and the whole
two-stage cost (``front_check``);
``--rescore`` recomputes it for committed result files without training anything.

    nice -n 10 python bench/supernet_fidelity.py --table digits_mlp --epochs 40 \
        --out docs/supernet/digits_mlp.json
    python bench/supernet_fidelity.py --rescore docs/supernet/*.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from scipy import stats

from bitnas.evaluators.datasets import load_splits
from bitnas.evaluators.supernet import SupernetSpec
from bitnas.evaluators.supernet.evaluator import measure_subnet
from bitnas.evaluators.supernet.train import train_supernet
from bitnas.evaluators.table import read_table
from bitnas.search.pareto import front_hypervolume, pareto_ranks
from bitnas.studies.loader import load_spec
from bitnas.studies.tables import TABLE_SECTIONS, stored_settings

TABLES = Path(__file__).parent / "tables"


def family(arch) -> str:  # type: ignore[no-untyped-def]
    if arch.timesteps == 1:
        return "single-step (T=1)"
    return "binary spikes (T>1, a=1)" if max(arch.abits) == 1 else "multi-bit spikes (T>1, a>1)"


def ranks(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, boot: int) -> dict[str, object]:
    tau = float(stats.kendalltau(x, y).statistic)
    rho = float(stats.spearmanr(x, y).statistic)
    taus, rhos = [], []
    for _ in range(boot):
        i = rng.integers(0, len(x), len(x))
        taus.append(stats.kendalltau(x[i], y[i]).statistic)
        rhos.append(stats.spearmanr(x[i], y[i]).statistic)
    ci = lambda v: [float(np.nanpercentile(v, 2.5)), float(np.nanpercentile(v, 97.5))]  # noqa: E731
    return {
        "n": len(x),
        "kendall_tau": tau,
        "tau_ci95": ci(taus),
        "spearman": rho,
        "spearman_ci95": ci(rhos),
    }


def seed_ceiling(path: Path, rng: np.random.Generator, boot: int) -> dict[str, object]:
    """Kendall tau between the table's two seeds: how well one stand-alone training run ranks
    the architectures against another — the noise ceiling a supernet is measured against."""
    t = pq.read_table(path, columns=["arch_key", "seed", "val_accuracy"]).to_pylist()
    by: dict[str, dict[int, float]] = {}
    for r in t:
        by.setdefault(r["arch_key"], {})[r["seed"]] = r["val_accuracy"]
    seeds = sorted({r["seed"] for r in t})[:2]
    pairs = [(v[seeds[0]], v[seeds[1]]) for v in by.values() if all(s in v for s in seeds)]
    a, b = np.array(pairs).T
    return ranks(a, b, rng, boot)


def table_runs(table: str) -> tuple[dict[str, float], dict[str, float]]:
    """Per architecture, one stand-alone run's seconds and epochs (the mean over the table's
    seeds): the epochs trained, not [train] `epochs` — a table trained with early stopping
    (the converged one) stops most runs sooner."""
    raw = pq.read_table(TABLES / f"{table}.parquet", columns=["arch_key", "seconds", "epochs"])
    runs: dict[str, list[tuple[float, float]]] = {}
    for r in raw.to_pylist():
        runs.setdefault(r["arch_key"], []).append((r["seconds"], r["epochs"]))
    secs = {k: float(np.mean([x[0] for x in v])) for k, v in runs.items()}
    epochs = {k: float(np.mean([x[1] for x in v])) for k, v in runs.items()}
    return secs, epochs


def per_seed_accuracy(table: str) -> dict[int, dict[str, float]]:
    """{seed: {architecture key: validation accuracy}} of a table: one stand-alone run each."""
    raw = pq.read_table(TABLES / f"{table}.parquet", columns=["arch_key", "seed", "val_accuracy"])
    out: dict[int, dict[str, float]] = {}
    for r in raw.to_pylist():
        out.setdefault(r["seed"], {})[r["arch_key"]] = r["val_accuracy"]
    return out


def against_one_run(rows: list, seeds: dict[int, dict[str, float]]) -> dict[str, object]:  # type: ignore[type-arg]
    """Kendall tau of the supernet against each single stand-alone run (seed) of the table,
    beside one run against the other: the like-for-like comparison (a reference of one run
    each side), free of any noise model. The tau against the 2-seed mean is higher for every
    evaluator, as that reference is less noisy."""
    sup = np.array([r[2] for r in rows])
    acc = {s: np.array([a[r[0]] for r in rows]) for s, a in seeds.items()}
    s0, s1 = sorted(acc)[:2]
    return {
        "supernet_vs_seed": {
            str(s): float(stats.kendalltau(sup, a).statistic) for s, a in acc.items()
        },
        "seed_vs_seed": float(stats.kendalltau(acc[s0], acc[s1]).statistic),
    }


def front_check(
    rows: list,  # type: ignore[type-arg]
    budget: float,
    epochs: dict[str, float],
    seeds: dict[int, dict[str, float]],
    layers: tuple[int, ...] = (1, 2, 3),
) -> dict[str, object]:
    """Stage 2 on the table: the first k non-dominated layers of the supernet's feasible
    trials (by its accuracy; k = 1 is the front, ``retrain_front``'s ``layers``), re-trained
    from scratch — stand-alone accuracy and seconds read from the table — against the
    table's true front, in the bitnas hypervolume of bench/search_quality.py. ``hv_ratio``
    scores the re-trained architectures by their seed-mean accuracy against the seed-mean
    front; ``hv_ratio_per_seed`` as one re-training would: seed s's run of each against seed
    s's own exhaustive front."""
    feas = [r for r in rows if r[1].bitops <= budget]
    cost_min = min(r[1].bitops for r in rows)

    def hv(picked: list, acc: dict[str, float] | None = None) -> float:  # type: ignore[type-arg]
        return front_hypervolume(
            [r[1].val_accuracy if acc is None else acc[r[0]] for r in picked],
            [r[1].bitops for r in picked],
            budget=budget,
            cost_min=cost_min,
        )

    rank = pareto_ranks(np.array([[r[2], r[1].bitops] for r in feas]), ["maximize", "minimize"])
    true = hv(feas)
    out: dict[str, object] = {"true_hv": true, "layers": {}}
    for k in layers:
        picked = [r for r, q in zip(feas, rank, strict=True) if 0 <= q < k]
        out["layers"][str(k)] = {  # type: ignore[index]
            "retrained": len(picked),
            "retrained_hv": hv(picked),
            "hv_ratio": hv(picked) / true,
            "hv_ratio_per_seed": {str(s): hv(picked, a) / hv(feas, a) for s, a in seeds.items()},
            "retrain_epochs": float(sum(epochs[r[0]] for r in picked)),
            "retrain_seconds": float(sum(r[4] for r in picked)),
        }
    return out


def stage2_costs(out: dict, n_archs: int, exhaustive_epochs: float) -> None:  # type: ignore[type-arg]
    """Each stage-2 choice's whole two-stage cost against one seed of the exhaustive table
    (``exhaustive_epochs``: the epochs its runs trained, one seed), in sub-network epochs
    (supernet: steps x sub-networks per step; fine-tuning: its steps on every measured
    architecture) and in seconds."""
    c, sn, s2 = out["cost"], out["supernet"], out["stage2"]
    per_step = 2 + sn["random_subnets"]
    steps_per_epoch = c["supernet_subnet_passes"] / per_step / c["supernet_epochs"]
    c["supernet_subnet_epochs"] = c["supernet_subnet_passes"] / steps_per_epoch
    c["finetune_epochs"] = sn.get("finetune_steps", 0) / steps_per_epoch * n_archs
    one_seed = c["table_train_seconds"] / c["table_seeds"]
    first = c["supernet_subnet_epochs"] + c["finetune_epochs"]
    c["exhaustive_epochs_one_seed"] = exhaustive_epochs
    for v in s2["layers"].values():
        v["two_stage_epochs"] = first + v["retrain_epochs"]
        v["fraction_of_exhaustive_epochs"] = v["two_stage_epochs"] / exhaustive_epochs
        total = c["supernet_train_seconds"] + c["measure_all_seconds"] + v["retrain_seconds"]
        v["two_stage_seconds"] = total
        v["fraction_of_exhaustive_seconds"] = total / one_seed
        if "load_factor_now_vs_table" in c:
            # the table's seconds were recorded under another load: scale them by a
            # same-run sample
            f = c["load_factor_now_vs_table"]
            now = c["supernet_train_seconds"] + c["measure_all_seconds"] + v["retrain_seconds"] * f
            v["fraction_of_exhaustive_seconds_same_load"] = now / (one_seed * f)


def rescore(paths: list[str]) -> int:
    """Recompute the stage-2 section of committed result files from their rows (the
    supernet's accuracy per architecture) and the table: no supernet is trained."""
    for p in paths:
        out = json.loads(Path(p).read_text())
        spec = load_spec(TABLES / f"{out['table']}.toml")
        entries, _ = read_table(TABLES / f"{out['table']}.parquet")
        secs, epochs = table_runs(out["table"])
        stale = sum(abs(ref - entries[k].val_accuracy) > 1e-9 for k, _, _, ref in out["rows"])
        if stale:  # its tau was measured against another version of the table: keep it whole
            print(f"{p}: skipped, {stale} of its rows hold another version of the table")
            continue
        rows = [(k, entries[k], v, t, secs[k]) for k, v, t, _ in out["rows"]]
        seeds = per_seed_accuracy(out["table"])
        out["stage2"] = front_check(rows, float(spec.budget.bitops or 0), epochs, seeds)
        out["against_one_run"] = against_one_run(rows, seeds)
        stage2_costs(out, len(rows), sum(epochs[r[0]] for r in rows))
        Path(p).write_text(json.dumps(out, indent=1) + "\n")
        two = out["stage2"]["layers"]["2"]
        one = out["against_one_run"]
        print(
            f"{p}: 2 layers {two['retrained']} archs, HV {two['hv_ratio']:.3f}; tau vs one run "
            f"{one['supernet_vs_seed']} (run vs run {one['seed_vs_seed']:.3f})"
        )
    return 0


def _same_settings(spec, table: str) -> None:
    """The supernet must see the [data] and [train] the table's networks were trained with:
    refuse a study file that no longer describes its table (a default changed since)."""
    stored = stored_settings(TABLES / f"{table}.parquet")
    if stored is None:
        raise SystemExit(f"bench/tables/{table}.parquet is missing or records no settings")
    diffs = spec.measurement_differences(json.loads(stored), sections=TABLE_SECTIONS)
    if diffs:
        raise SystemExit(
            f"bench/tables/{table}.toml does not describe bench/tables/{table}.parquet: "
            + "; ".join(diffs)
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--table",
        choices=sorted(p.stem for p in TABLES.glob("*.toml") if p.with_suffix(".parquet").exists()),
        help="bench/tables/<NAME>.{toml,parquet}",
    )
    ap.add_argument("--epochs", type=int, default=0, help="supernet epochs (0: the table's)")
    ap.add_argument("--random-subnets", type=int, default=2)
    ap.add_argument("--distill", action="store_true")
    ap.add_argument("--calib-batches", type=int, default=4)
    ap.add_argument(
        "--split-timesteps", action="store_true", help="one supernet per T (a few-shot split)"
    )
    ap.add_argument(
        "--thresholds", default="bits", choices=["bits", "bits_t"], help="[supernet] thresholds"
    )
    ap.add_argument(
        "--norms", default="shared", choices=["shared", "bits", "bits_t"], help="[supernet] norms"
    )
    ap.add_argument("--finetune-steps", type=int, default=0, help="[supernet] finetune_steps")
    ap.add_argument("--finetune-lr", type=float, default=0.0, help="[supernet] finetune_lr")
    ap.add_argument("--limit", type=int, default=0, help="measure only this many (a pilot)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint-dir", default="runs/bench")
    ap.add_argument("--boot", type=int, default=300)
    ap.add_argument("--out", default="")
    ap.add_argument(
        "--baseline",
        type=int,
        default=0,
        help="also train this many random table architectures from scratch now (one seed), "
        "to scale the table's recorded seconds to this run's machine load",
    )
    ap.add_argument("--ceiling-only", action="store_true", help="print the seed-vs-seed tau only")
    ap.add_argument(
        "--rescore",
        nargs="+",
        metavar="JSON",
        help="recompute the stage-2 section of these result files from their rows (no training)",
    )
    a = ap.parse_args(argv)
    if a.rescore:
        return rescore(a.rescore)
    if not a.table:
        ap.error("--table is required (or --rescore)")
    if a.ceiling_only:
        c = seed_ceiling(TABLES / f"{a.table}.parquet", np.random.default_rng(0), a.boot)
        print(json.dumps({"table": a.table, "seed_vs_seed": c}, indent=1))
        return 0
    spec = load_spec(TABLES / f"{a.table}.toml")
    _same_settings(spec, a.table)
    entries, _meta = read_table(TABLES / f"{a.table}.parquet")
    if a.limit:  # a pilot: a fixed random subset of the table's architectures
        keep = np.random.default_rng(0).permutation(sorted(entries))[: a.limit]
        entries = {k: entries[k] for k in sorted(keep)}
    raw = pq.read_table(TABLES / f"{a.table}.parquet", columns=["arch_key", "seconds"]).to_pylist()
    table_seconds = float(sum(r["seconds"] for r in raw))
    secs, run_epochs = table_runs(a.table)
    sn = SupernetSpec(
        epochs=a.epochs or spec.train.epochs,
        random_subnets=a.random_subnets,
        distill=a.distill,
        calib_batches=a.calib_batches,
        thresholds=a.thresholds,
        norms=a.norms,
        finetune_steps=a.finetune_steps,
        finetune_lr=a.finetune_lr,
    )
    tag = f"{a.table}-e{sn.epochs}-r{sn.random_subnets}-{'kd' if sn.distill else 'ce'}-s{a.seed}"
    if sn.thresholds != "bits":
        tag += f"-{sn.thresholds}"
    if sn.norms != "shared":
        tag += f"-norms_{sn.norms}"
    ck = Path(a.checkpoint_dir) / f"supernet-{tag}.pt"
    splits = load_splits(spec.data)
    # --split-timesteps: one supernet per T over the sub-space of that T (a few-shot split,
    # Zhao et al. 2021: no weights shared across T), each measuring the architectures of its T
    groups = sorted({e.arch.timesteps for e in entries.values()}) if a.split_timesteps else [0]
    logs, rows, eval_seconds = [], [], 0.0
    for t in groups:
        space = dataclasses.replace(spec.space, timesteps=(t,)) if t else spec.space
        net, log = train_supernet(
            space, splits, spec.train, sn, seed=a.seed,
            checkpoint=ck.with_name(f"{ck.stem}-T{t}.pt") if t else ck, data=spec.data,
        )  # fmt: skip
        logs.append(log)
        t0 = time.perf_counter()
        for key, e in entries.items():
            if t and e.arch.timesteps != t:
                continue
            r = measure_subnet(net, e.arch, splits, spec.train, sn, seed=a.seed)
            rows.append((key, e, r.metrics["val_accuracy"], r.metrics["test_accuracy"], secs[key]))
        eval_seconds += time.perf_counter() - t0
    if a.baseline:
        from bitnas.evaluators.training import train_and_evaluate

        pick = np.random.default_rng(a.seed).choice(len(rows), a.baseline, replace=False)
        now = then = 0.0
        for i in pick:
            key, e = rows[i][0], rows[i][1]
            r = train_and_evaluate(e.arch, splits, spec.train, seed=a.seed)
            now += float(r.info["train_seconds"])
            then += rows[i][4]
        load_factor = now / then
    rng = np.random.default_rng(0)
    sup = np.array([r[2] for r in rows])
    true = np.array([r[1].val_accuracy for r in rows])
    feas = np.array([spec.budget.allows(r[1].bitops) for r in rows])
    fams = np.array([family(r[1].arch) for r in rows])
    out: dict[str, object] = {
        "table": a.table,
        "supernet": {
            **dataclasses.asdict(sn),
            "seed": a.seed,
            "checkpoint": str(ck),
            "split_timesteps": a.split_timesteps,
            "supernets": len(groups),
        },
        "overall": ranks(sup, true, rng, a.boot),
        "feasible": ranks(sup[feas], true[feas], rng, a.boot),
        "per_family": {
            f: ranks(sup[fams == f], true[fams == f], rng, a.boot) for f in sorted(set(fams))
        },
        "per_family_feasible": {
            f: ranks(sup[feas & (fams == f)], true[feas & (fams == f)], rng, a.boot)
            for f in sorted(set(fams))
            if (feas & (fams == f)).sum() > 2
        },
        "seed_vs_seed": seed_ceiling(TABLES / f"{a.table}.parquet", rng, a.boot),
        "against_one_run": against_one_run(rows, per_seed_accuracy(a.table)),
        "mean_abs_gap": float(np.mean(np.abs(sup - true))),
        "mean_supernet_acc": float(sup.mean()),
        "mean_table_acc": float(true.mean()),
        "cost": {
            "supernet_epochs": sum(g.epochs for g in logs),
            "supernet_subnet_passes": sum(g.subnet_passes for g in logs),
            "supernet_train_seconds": sum(g.seconds for g in logs),
            "measure_all_seconds": eval_seconds,
            "measure_seconds_per_arch": eval_seconds / len(rows),
            "table_epochs": spec.train.epochs * sum(e.seeds for e in entries.values()),
            "table_train_seconds": table_seconds,
            "table_seeds": max(e.seeds for e in entries.values()),
        },
        "stage2": front_check(
            rows, float(spec.budget.bitops or 0), run_epochs, per_seed_accuracy(a.table)
        ),
        "rows": [[r[0], r[2], r[3], r[1].val_accuracy] for r in rows],
    }
    if a.baseline:
        c = out["cost"]
        assert isinstance(c, dict)
        c["baseline_archs"] = a.baseline
        c["load_factor_now_vs_table"] = load_factor
    stage2_costs(out, len(rows), sum(run_epochs[r[0]] for r in rows))
    text = json.dumps(out, indent=1)
    print(text)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
