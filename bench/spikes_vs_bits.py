"""Spikes or bits at equal BitOps: matched pairs on fixed structures, two fidelities, 5+ seeds.

For a fixed set of MNIST-1D 1-D CNN structures (``STRUCTURES``: stages, width, depths; weight
bits, kernel and pooling fixed), every activation allocation of ``PAIRS`` is trained with the
same seeds and the same data, at two training fidelities (``FIDELITIES``: a short fixed
schedule, and training to a validation plateau). Each allocation family (binary spikes,
single-step multi-bit, multi-bit spikes) gets its own learning rate, selected on validation in
a pilot on a seed the comparison never uses (``PILOT_SEED``): the best mean validation accuracy
over the family's allocations on the first structure. Then, per matched pair (equal BitOps by
construction, except the equal-levels pair) and structure: mean difference of test accuracy
(spiking - single step) with a 95% t confidence interval over seeds and a paired t-test
(``scipy.stats.ttest_rel``), and the same pooled over structures.

Every trained network is one JSON line in a journal (``--journal``); a rerun skips what the
journal holds, so an interrupted run continues where it stopped. Sizes:

    python bench/spikes_vs_bits.py run --size reduced      # session 6 (docs/results)
    python bench/spikes_vs_bits.py run --size full         # the full design (docs/results)
    python bench/spikes_vs_bits.py report --size reduced   # Markdown tables from the journal

``--plan`` prints how many networks a size trains, and the estimated cost from the journal's
measured seconds per network.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_JOURNAL = ROOT / "docs" / "results" / "spikes_vs_bits_pairs" / "journal.jsonl"

#: (spiking T, abits) vs (single step T=1, abits); the first three cost equal BitOps, the
#: last two match levels instead (T binary steps: T+1 levels; ceil(log2(T+1)) bits: as many)
PAIRS: list[tuple[tuple[int, int], tuple[int, int], str]] = [
    ((2, 1), (1, 2), "equal BitOps"),
    ((4, 1), (1, 4), "equal BitOps"),
    ((2, 2), (1, 4), "equal BitOps"),
    ((3, 1), (1, 2), "equal levels (4)"),
    ((7, 1), (1, 3), "equal levels (8)"),
]


@dataclass(frozen=True)
class Size:
    structures: tuple[tuple[int, tuple[int, int]], ...]  # (width, (depth of stage 1, 2))
    seeds: tuple[int, ...]
    lrs: tuple[float, ...]
    pairs: tuple[int, ...]  # indices into PAIRS
    fidelities: tuple[str, ...]
    #: fidelities that reuse another's learning-rate choice instead of a pilot of their own
    lr_from: tuple[tuple[str, str], ...] = ()


FIDELITIES: dict[str, dict[str, Any]] = {
    # the committed exhaustive table's schedule
    "short": {"until": "epochs", "epochs": 10},
    # to a validation plateau: 4 epochs without a gain, at most 30
    "converged": {"until": "converged", "epochs": 30, "patience": 4, "min_delta": 0.0},
}

SIZES: dict[str, Size] = {
    "full": Size(
        structures=((8, (1, 1)), (16, (1, 2)), (16, (2, 1)), (32, (1, 1)), (32, (2, 2))),
        seeds=(0, 1, 2, 3, 4),
        # AdamW rates; every family chose the grid's top (1e-2) of {1e-3, 3e-3, 1e-2} in the
        # first pilot, so the grid goes on up until a rate is past the best
        lrs=(1e-3, 3e-3, 1e-2, 3e-2, 1e-1),
        pairs=(0, 1, 2, 3, 4),
        fidelities=("short", "converged"),
    ),
    "reduced": Size(
        structures=((16, (1, 1)),),
        seeds=(0, 1, 2, 3, 4),
        lrs=(3e-3, 1e-2),
        pairs=(0, 1, 3),
        fidelities=("short", "converged"),
        # what this shared 2-core session could afford (~0.3 of a core): one structure, two
        # rates; converged at the rates the short pilot chose
        lr_from=(("converged", "short"),),
    ),
}
PILOT_SEED = 100  # learning rates are chosen on this seed; the comparison uses others
FAMILY = {True: "binary_spikes", False: "multibit_spikes"}


def family(t: int, abits: int) -> str:
    return "multibit_single_step" if t == 1 else FAMILY[abits == 1]


def architecture(width: int, depths: tuple[int, int], t: int, abits: int) -> Any:
    """The cnn1d structure of the committed MNIST-1D table (kernel 5, pool 2, batch norm,
    inner weights 4 bit, first and last 8 bit, 8-bit direct input) at (T, abits)."""
    from bitnas.spaces.cnn import CNN1DSpace

    space = CNN1DSpace(
        input_shape=(1, 40),
        num_classes=10,
        stages=(2, 2),
        depth=tuple(sorted(set(depths))),
        width=(width,),
        kernel=(5,),
        width_per_stage=False,
        wbits=(4,),
        wbits_per_layer=False,
        abits=(abits,),
        abits_per_layer=False,
        timesteps=(t,),
        first_wbits=8,
        last_wbits=8,
    )
    for arch in space.grid():
        pools = [lay.pool for lay in arch.layers[:-1]]
        split = (pools.index(2) + 1, len(pools) - pools.index(2) - 1)
        if split == depths:
            return arch
    raise SystemExit(f"no cnn1d with depths {depths}")


def configs(size: Size, fid: str) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for i in size.pairs:
        for c in PAIRS[i][:2]:
            if c not in out:  # type: ignore[comparison-overlap]
                out.append(c)  # type: ignore[arg-type]
    return out


def _key(
    stage: str, fid: str, width: int, depths: tuple[int, int], t: int, a: int, lr: float, seed: int
) -> str:
    return f"{stage}|{fid}|w{width}d{depths[0]}{depths[1]}|T{t}a{a}|lr{lr:g}|s{seed}"


def read_journal(path: Path) -> dict[str, dict[str, Any]]:
    done: dict[str, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                done[row["key"]] = row
    return done


def _train(
    width: int, depths: tuple[int, int], t: int, a: int, fid: str, lr: float, seed: int
) -> dict[str, Any]:
    from bitnas.evaluators import DataSpec, TrainedEvaluator, TrainSpec
    from bitnas.spaces.cost import bitops

    arch = architecture(width, depths, t, a)
    train = TrainSpec(
        batch_size=128, lr=lr, optimizer="adamw", weight_decay=1e-4, threads=1, **FIDELITIES[fid]
    )
    ev = TrainedEvaluator(data=DataSpec(name="mnist1d"), train=train)
    start = time.perf_counter()
    r = ev.evaluate(arch, seed=seed)
    return {
        "val": r.metrics["val_accuracy"],
        "test": r.metrics["test_accuracy"],
        "epochs": r.epochs,
        "converged": r.info["converged"],
        "best_epoch": r.info["best_epoch"],
        "bitops": bitops(arch),
        "summary": arch.summary(),
        "seconds": time.perf_counter() - start,
        "input_norm": r.info["input_norm"],
        "plane_densities": r.info["plane_densities"],
    }


def _jobs_pilot(size: Size, fid: str) -> Iterator[tuple[str, tuple[Any, ...]]]:
    width, depths = size.structures[0]
    for t, a in configs(size, fid):
        for lr in size.lrs:
            yield (
                _key("pilot", fid, width, depths, t, a, lr, PILOT_SEED),
                (width, depths, t, a, fid, lr, PILOT_SEED),
            )


def chosen_lrs(size: Size, fid: str, done: dict[str, dict[str, Any]]) -> dict[str, float] | None:
    """Per family, the rate with the best mean pilot validation accuracy (None: pilot open)."""
    fid = dict(size.lr_from).get(fid, fid)
    width, depths = size.structures[0]
    by: dict[str, dict[float, list[float]]] = {}
    for t, a in configs(size, fid):
        for lr in size.lrs:
            row = done.get(_key("pilot", fid, width, depths, t, a, lr, PILOT_SEED))
            if row is None:
                return None
            by.setdefault(family(t, a), {}).setdefault(lr, []).append(row["val"])
    return {f: max(v, key=lambda lr: (statistics.mean(v[lr]), -lr)) for f, v in by.items()}


def _jobs_main(
    size: Size, fid: str, lrs: dict[str, float]
) -> Iterator[tuple[str, tuple[Any, ...]]]:
    for seed in size.seeds:  # seed-major: an interrupted run has whole seeds
        for width, depths in size.structures:
            for t, a in configs(size, fid):
                lr = lrs[family(t, a)]
                yield (
                    _key("main", fid, width, depths, t, a, lr, seed),
                    (width, depths, t, a, fid, lr, seed),
                )


def _append(path: Path, key: str, args: tuple[Any, ...], out: dict[str, Any]) -> None:
    width, depths, t, a, fid, lr, seed = args
    row = {
        "key": key,
        "fidelity": fid,
        "width": width,
        "depths": list(depths),
        "T": t,
        "abits": a,
        "lr": lr,
        "seed": seed,
        **out,
    }
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")


def run(size: Size, path: Path, workers: int) -> None:
    from concurrent.futures import ProcessPoolExecutor

    path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    n = 0
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for fid in size.fidelities:
            for stage in ("pilot", "main"):
                done = read_journal(path)
                if stage == "pilot":
                    own = fid not in dict(size.lr_from)
                    jobs = list(_jobs_pilot(size, fid)) if own else []
                else:
                    lrs = chosen_lrs(size, fid, done)
                    assert lrs is not None
                    print(f"[{fid}] learning rates chosen on validation: {lrs}", flush=True)
                    jobs = list(_jobs_main(size, fid, lrs))
                todo = [(k, a) for k, a in jobs if k not in done]
                futures = [(k, a, pool.submit(_train, *a)) for k, a in todo]
                for k, a, fut in futures:
                    out = fut.result()
                    _append(path, k, a, out)
                    n += 1
                    print(
                        f"{k}: test {out['test']:.3f} val {out['val']:.3f} "
                        f"({out['epochs']} ep, {out['seconds']:.0f} s)",
                        flush=True,
                    )
    print(f"trained {n} networks in {time.perf_counter() - start:.0f} s", flush=True)


def plan(size: Size, path: Path) -> str:
    """How many networks ``size`` trains, how many the journal holds, and what the rest would
    take at the journal's measured seconds per network (per fidelity; pilots of a fidelity
    that reuses another's rates are not trained)."""
    done = read_journal(path)
    parts, est, total, held = [], 0.0, 0, 0
    for f in size.fidelities:
        pilots = 0 if f in dict(size.lr_from) else len(size.lrs)
        n = len(configs(size, f)) * (pilots + len(size.structures) * len(size.seeds))
        rows = [r for r in done.values() if r["fidelity"] == f]
        have = min(n, len(rows))  # a journal may also hold rows of other sizes
        total, held = total + n, held + have
        if rows:
            per = statistics.mean(r["seconds"] for r in rows)
            est += per * (n - have)
            parts.append(f"{f}: {n} networks, {per:.0f} s each measured")
        else:
            parts.append(f"{f}: {n} networks, none measured yet")
    parts.append(f"{held} of {total} in the journal")
    if est:
        parts.append(f"~{est / 3600:.1f} h of one worker for the rest at the measured rate")
    return "; ".join(parts)


def _ci(xs: list[float]) -> tuple[float, float, float]:
    """(mean, half-width of the 95% t interval, paired t-test p vs 0)."""
    from scipy import stats

    m = statistics.mean(xs)
    if len(xs) < 2:
        return m, float("nan"), float("nan")
    sd = statistics.stdev(xs)
    half = float(stats.t.ppf(0.975, len(xs) - 1)) * sd / math.sqrt(len(xs))
    p = float(stats.ttest_1samp(xs, 0.0).pvalue) if sd > 0 else float("nan")
    return m, half, p


def _paired(spk: list[float], one: list[float]) -> float:
    from scipy import stats

    if len(spk) < 2 or all(a == b for a, b in zip(spk, one, strict=True)):
        return float("nan")
    return float(stats.ttest_rel(spk, one).pvalue)


def report(size: Size, path: Path, metric: str) -> str:
    done = read_journal(path)
    lines: list[str] = []
    for fid in size.fidelities:
        lrs = chosen_lrs(size, fid, done)
        if lrs is None:
            lines.append(f"\n### {fid}: pilot not finished\n")
            continue
        main = {
            (tuple(r["depths"]), r["width"], r["T"], r["abits"], r["seed"]): r
            for r in done.values()
            if r["fidelity"] == fid and r["key"].startswith("main")
        }
        rows = [r for r in main.values()]
        eps = [r["epochs"] for r in rows]
        conv = sum(bool(r["converged"]) for r in rows)
        secs = sum(r["seconds"] for r in rows)
        lines += [
            f"\n### {fid} ({FIDELITIES[fid]}): learning rate per family (chosen on validation, "
            f"pilot seed {PILOT_SEED}, {dict(size.lr_from).get(fid, fid)} fidelity): "
            + ", ".join(f"{k} {v:g}" for k, v in sorted(lrs.items())),
            "",
            f"{len(rows)} networks, epochs run {min(eps, default=0)}-{max(eps, default=0)} "
            f"(mean {statistics.mean(eps) if eps else 0:.1f}), {conv} stopped on a plateau, "
            f"{secs:.0f} s of training.",
            "",
            f"| spiking | vs single step | match | structure | BitOps | seeds | {metric}: spiking "
            "(mean) | single (mean) | spiking - single, 95% CI | paired t p | spiking wins |",
            "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for i in size.pairs:
            (ts, as_), (t1, a1), match = PAIRS[i]
            pooled_d: list[float] = []
            pooled_s: list[float] = []
            pooled_q: list[float] = []
            for width, depths in size.structures:
                s_, q_, d_ = [], [], []
                bo = ""
                for seed in size.seeds:
                    s = main.get((depths, width, ts, as_, seed))
                    q = main.get((depths, width, t1, a1, seed))
                    if s is None or q is None:
                        continue
                    s_.append(100 * s[metric])
                    q_.append(100 * q[metric])
                    d_.append(100 * (s[metric] - q[metric]))
                    bo = (
                        f"{s['bitops']:,} / {q['bitops']:,}"
                        if s["bitops"] != q["bitops"]
                        else f"{s['bitops']:,}"
                    )
                if not d_:
                    continue
                m, half, _ = _ci(d_)
                lines.append(
                    f"| T={ts} x {as_} bit | T=1 x {a1} bit | {match} | w{width} "
                    f"d{depths[0]}+{depths[1]} | {bo} | {len(d_)} | {statistics.mean(s_):.1f} | "
                    f"{statistics.mean(q_):.1f} | {m:+.1f} ± {half:.1f} | "
                    f"{_paired(s_, q_):.3g} | {sum(d > 0 for d in d_)}/{len(d_)} |"
                )
                pooled_d += d_
                pooled_s += s_
                pooled_q += q_
            if len(size.structures) > 1 and pooled_d:
                m, half, _ = _ci(pooled_d)
                lines.append(
                    f"| T={ts} x {as_} bit | T=1 x {a1} bit | {match} | **all structures** | "
                    f"- | {len(pooled_d)} | {statistics.mean(pooled_s):.1f} | "
                    f"{statistics.mean(pooled_q):.1f} | {m:+.1f} ± {half:.1f} | "
                    f"{_paired(pooled_s, pooled_q):.3g} | "
                    f"{sum(d > 0 for d in pooled_d)}/{len(pooled_d)} |"
                )
        lines += _densities(size, fid, main)
    lines += _length_effect(size, done, metric)
    return "\n".join(lines)


def _gaps(
    size: Size, fid: str, done: dict[str, dict[str, Any]], metric: str, i: int
) -> dict[tuple[int, tuple[int, int], int], float]:
    """(width, depths, seed) -> spiking - single step of pair ``i`` at ``fid``, in points."""
    main = {
        (tuple(r["depths"]), r["width"], r["T"], r["abits"], r["seed"]): r
        for r in done.values()
        if r["fidelity"] == fid and r["key"].startswith("main")
    }
    (ts, as_), (t1, a1), _ = PAIRS[i]
    out = {}
    for width, depths in size.structures:
        for seed in size.seeds:
            s, q = main.get((depths, width, ts, as_, seed)), main.get((depths, width, t1, a1, seed))
            if s is not None and q is not None:
                out[(width, depths, seed)] = 100 * (s[metric] - q[metric])
    return out


def _length_effect(size: Size, done: dict[str, dict[str, Any]], metric: str) -> list[str]:
    """Does the answer change with training length? Per pair, the change of the gap from the
    first fidelity to the last, paired by structure and seed."""
    if len(size.fidelities) < 2:
        return []
    f0, f1 = size.fidelities[0], size.fidelities[-1]
    lines = [
        "",
        f"### Does training length change the answer? ({metric} gap at {f1} minus at {f0}, "
        "paired by structure and seed)",
        "",
        f"| spiking | vs single step | pairs | gap {f0} | gap {f1} | change, 95% CI | paired t p |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for i in size.pairs:
        g0, g1 = _gaps(size, f0, done, metric, i), _gaps(size, f1, done, metric, i)
        both = sorted(set(g0) & set(g1))
        if len(both) < 2:
            continue
        a, b = [g0[k] for k in both], [g1[k] for k in both]
        m, half, _ = _ci([y - x for x, y in zip(a, b, strict=True)])
        (ts, as_), (_, a1), _ = PAIRS[i]
        lines.append(
            f"| T={ts} x {as_} bit | T=1 x {a1} bit | {len(both)} | {statistics.mean(a):+.1f} | "
            f"{statistics.mean(b):+.1f} | {m:+.1f} ± {half:.1f} | {_paired(b, a):.3g} |"
        )
    return lines


def _densities(size: Size, fid: str, main: dict[Any, dict[str, Any]]) -> list[str]:
    """Per allocation, the test-split 1-bit density of each bit plane of the hidden layers'
    inputs (mean over layers, seeds and structures) against the 50% premise."""
    lines = [
        "",
        f"Measured 1-bit density of hidden-layer inputs ({fid}; per plane, LSB first, mean over "
        "hidden layers, seeds and structures; the premise is 50%, an event-driven saving <= 2x):",
        "",
        "| allocation | networks | per plane (%) | overall | event-driven saving |",
        "|---|---:|---|---:|---:|",
    ]
    for t, a in configs(size, fid):
        planes: list[list[float]] = []
        for (_, _, tt, aa, _), r in sorted(main.items()):
            if (tt, aa) == (t, a) and r.get("plane_densities"):
                planes += [p for p in r["plane_densities"][1:] if p]  # 0: the input
        if not planes:
            continue
        per = [statistics.mean(p[k] for p in planes) for k in range(len(planes[0]))]
        d = statistics.mean(per)
        n = sum(1 for k, r in main.items() if (k[2], k[3]) == (t, a))
        lines.append(
            f"| T={t} x {a} bit | {n} | {' / '.join(f'{100 * v:.0f}' for v in per)} | "
            f"{100 * d:.1f}% | {1 / d:.1f}x |"
        )
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=["run", "report", "plan"])
    ap.add_argument("--size", choices=sorted(SIZES), default="reduced")
    ap.add_argument(
        "--journal",
        type=Path,
        default=None,
        help=f"JSON-lines journal (default: {DEFAULT_JOURNAL.relative_to(ROOT)}; "
        "the full size: full.jsonl beside it)",
    )
    ap.add_argument("--workers", type=int, default=1, help="parallel trainings (1 thread each)")
    ap.add_argument("--metric", choices=["test", "val"], default="test")
    args = ap.parse_args()
    size = SIZES[args.size]
    path = args.journal or (
        DEFAULT_JOURNAL
        if args.size == "reduced"
        else DEFAULT_JOURNAL.with_name(f"{args.size}.jsonl")
    )
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.command == "run":
        print(plan(size, path), flush=True)
        run(size, path, args.workers)
    elif args.command == "plan":
        print(plan(size, path))
    else:
        print(report(size, path, args.metric))
    return 0


if __name__ == "__main__":
    sys.exit(main())
