"""How the engine's own time per trial and its memory grow with the trials a study holds.

    python bench/scaling.py [--trials 10000] [--storages sqlite journal] [--sampler random]
                            [--window 100] [--dir DIR]

One run of the local backend per storage, to ``--trials`` finished trials of a synthetic lookup
evaluator (no training: an accuracy derived from the architecture's key, microseconds), over a
per-layer MLP space of about 10^11 architectures, so every trial is a new architecture and
none is rejected (no budget). The time between two evaluations is then the engine's own cost
of a trial: asking the sampler, recording the architecture, the runner's checks against the
study (target, twins, trials of other runs), telling the result. The ms per trial reported at
N is the mean over the ``--window`` trials that end at N; the ratio is against the window at
100 of the same run. RSS is this process's resident memory when the N-th trial is evaluated;
peak RSS is the run's maximum. After the run, ``bitnas pareto``, ``bitnas export`` and
``bitnas report`` are timed on the finished study (separate processes, wall time).

The random sampler keeps the sampler's own cost out of the measurement (TPE and NSGA-II read
the study's trials on each ask, which grows with the study by design); ``--sampler`` picks
another. ``--dir`` keeps the studies (default: a temporary folder, removed at the end).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

from bitnas.evaluators import CallableEvaluator, EvalResult
from bitnas.search import Problem, make_sampler, open_storage, optimize
from bitnas.search.storage import create_or_load_study
from bitnas.spaces import MLPSpace

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


class Clock:
    """The evaluator: a lookup (a hash of the architecture's key) that also notes the time
    and resident memory of each call."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.rss: list[float] = []

    def __call__(self, arch, *, seed, report):  # type: ignore[no-untyped-def]
        self.times.append(time.perf_counter())
        self.rss.append(rss_mb())
        h = int(hashlib.sha1(arch.key().encode()).hexdigest()[:8], 16)
        return EvalResult(metrics={"val_accuracy": 0.5 + (h % 5000) / 10000}, epochs=1)


def space() -> MLPSpace:
    return MLPSpace(input_shape=(64,), num_classes=10, depth=(1, 4),
                    width=(16, 32, 48, 64, 96, 128), wbits=(2, 3, 4, 6, 8), abits=(1, 2, 4, 8),
                    timesteps=(1, 2, 4), width_per_layer=True, wbits_per_layer=True,
                    abits_per_layer=True)  # fmt: skip


def marks(n: int) -> list[int]:
    return [m for m in (100, 1000, 10_000, 100_000) if m <= n] or [n]


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def bench(url: str, name: str, args: argparse.Namespace, out: Path) -> None:
    clock = Clock()
    problem = Problem(space=space(), evaluator=CallableEvaluator(clock))
    study = create_or_load_study(
        open_storage(url), name, problem, make_sampler(args.sampler, 0, problem), url
    )
    t0 = time.perf_counter()
    added = optimize(study, problem, args.trials, progress=False)
    wall = time.perf_counter() - t0
    assert added["finished"] == args.trials, added
    gaps = [b - a for a, b in zip(clock.times, clock.times[1:], strict=False)]
    w = args.window
    per = {}
    for m in marks(args.trials):
        window = gaps[max(0, m - 1 - w) : m - 1]
        per[m] = 1000 * sum(window) / len(window)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    base = per[min(per)]
    print(f"\n{name} ({url.split(':')[0]}, sampler {args.sampler}): {args.trials} trials in "
          f"{wall:.1f} s; peak RSS {peak:.0f} MB")  # fmt: skip
    print(f"{'trials':>8s} {'ms/trial':>9s} {'x at 100':>9s} {'RSS MB':>7s}")
    for m, v in per.items():
        print(f"{m:8d} {v:9.2f} {v / base:9.2f} {clock.rss[m - 1]:7.0f}")
    cli = [sys.executable, "-m", "bitnas.studies.cli"]
    t_pareto = timed([*cli, "pareto", name, "--storage", url])
    t_export = timed([*cli, "export", name, "--storage", url, "--parquet", str(out / f"{name}.parquet")])
    t_report = timed([*cli, "report", name, "--storage", url, "--out", str(out / f"{name}-report")])
    print(f"bitnas pareto {t_pareto:.1f} s, export {t_export:.1f} s, report {t_report:.1f} s")
    sys.stdout.flush()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10_000)
    ap.add_argument("--storages", nargs="+", default=["sqlite", "journal"])
    ap.add_argument("--sampler", default="random")
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--dir", help="keep the studies here (default: a temporary folder)")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.dir or tmp).resolve()
        out.mkdir(parents=True, exist_ok=True)
        for kind in args.storages:
            name = f"scale-{kind}-{args.sampler}-{args.trials}"
            if kind == "sqlite":
                url = f"sqlite:///{out}/{name}.db"  # out is absolute: sqlite:////abs
            elif kind == "journal":
                url = f"journal:///{out}/{name}.log"
            else:  # a database URL, e.g. postgresql+psycopg://user@127.0.0.1:5432/db
                url = kind
            bench(url, name, args, out)


if __name__ == "__main__":
    main()
