"""How the engine's own time per trial and its memory grow with the trials a study holds.

    python bench/scaling.py [--trials 10000] [--storages sqlite journal postgresql]
                            [--sampler random]
                            [--window 100] [--dir DIR] [--compare-with CHECKOUT]

A synthetic lookup evaluator (no training: an accuracy derived from the architecture's key,
microseconds) over a per-layer MLP space of about 10^11 architectures, so every trial is a
new architecture and none is rejected (no budget). The time between two evaluations of one
run is the engine's own cost of a trial: asking the sampler, recording the architecture, the
runner's checks against the study (target, twins, trials of other runs), telling the result.

For each mark N (100, 1,000, 10,000 up to ``--trials``) the study is first filled to
N - ``--window`` trials, then one `run` (the local backend) adds ``--window`` trials and their
mean time is the ms per trial at N; the ratio is against the mark 100 of the same study,
and a window on a new study right after the last mark ("100 again") shows how much the
machine's load drifted meanwhile.
The filling copies the engine's own first trials (every attribute a trial records) with fresh
architectures, one storage write per trial (``add_trials``), so that 10,000 trials take
minutes, not hours, on a shared machine. RSS is this process's resident memory at the end of
each window; peak RSS is the process's maximum (the storage's own cache of trials included:
Optuna's RDB cache and the journal's replay hold every trial). After the last mark,
``bitnas pareto``, ``bitnas export`` and ``bitnas report`` are timed on the study (separate
processes, wall time). Before them, new processes measure memory and time as a user's
processes meet them, on the "again" study (100 trials) and on the long one: ``read`` opens
the study and reads every trial as bitnas's readers do (the storage's own memory),
``read-orm`` the same through Optuna's own read alone (no ``bitnas.search.rdb_read``), ``run``
opens it as `bitnas run` does and adds a window (ms/trial and peak RSS of a run's process).
Several ``--storages`` run one process each, so that each peak RSS is one storage's.

The random sampler keeps the sampler's own cost out (TPE and NSGA-II read the study's trials
on each ask, which grows with the study by design); ``--sampler`` picks another. ``--dir``
keeps the studies (default: a temporary folder, removed at the end); give a tmpfs folder
(/dev/shm) to keep the disk's fsync per write (the journal's) out of the engine's time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from bitnas.evaluators import CallableEvaluator, EvalResult
from bitnas.search import Problem, make_sampler, open_storage, optimize
from bitnas.search.rdb_read import preload
from bitnas.search.storage import create_or_load_study
from bitnas.spaces import MLPSpace
from bitnas.spaces.architecture import Architecture
from bitnas.spaces.cost import bitops

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: of this program alone, where
    ``ru_maxrss`` would carry over the peak of the process that started it)."""
    with open("/proc/self/status") as f:
        kb = next(line.split()[1] for line in f if line.startswith("VmHWM:"))
    return int(kb) / 1024


class Clock:
    """The evaluator: a lookup (a hash of the architecture's key) that notes the time of
    each call."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self, arch, *, seed, report):  # type: ignore[no-untyped-def]
        self.times.append(time.perf_counter())
        return EvalResult(metrics={"val_accuracy": self.accuracy(arch)}, epochs=1)

    @staticmethod
    def accuracy(arch: Architecture) -> float:
        h = int(hashlib.sha1(arch.key().encode()).hexdigest()[:8], 16)
        return 0.5 + (h % 5000) / 10000


def space() -> MLPSpace:
    return MLPSpace(input_shape=(64,), num_classes=10, depth=(1, 4),
                    width=(16, 32, 48, 64, 96, 128), wbits=(2, 3, 4, 6, 8), abits=(1, 2, 4, 8),
                    timesteps=(1, 2, 4), width_per_layer=True, wbits_per_layer=True,
                    abits_per_layer=True)  # fmt: skip


def marks(n: int) -> list[int]:
    return [m for m in (100, 1000, 10_000, 100_000) if m <= n] or [n]


def timed(cmd: list[str], code: str | None = None) -> float:
    """Wall seconds of ``cmd``; with ``code``, bitnas imported from that checkout (run in
    it: ``python -m`` puts the working directory first on the path)."""
    env = {**os.environ, "PYTHONPATH": code} if code else None
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env, cwd=code)
    return time.perf_counter() - t0


def fill(study: optuna.Study, problem: Problem, upto: int, templates: list[FrozenTrial]) -> None:
    """Add copies of ``templates`` with fresh architectures until the study holds ``upto``."""
    n = len(study.get_trials(deepcopy=False))
    rng = random.Random(n)
    dists = {k: d for t in templates for k, d in t.distributions.items()}
    batch = []
    for i in range(n, upto):
        t = templates[i % len(templates)]
        params, arch = problem.space.sample_uniform_with_params(rng)
        if not set(params) <= set(dists):
            continue  # a parameter none of the engine's trials had: draw again next time
        attrs = {**t.user_attrs, "architecture": arch.to_json(), "arch_key": arch.key(),
                 "summary": arch.summary()}  # fmt: skip
        batch.append(
            optuna.trial.create_trial(
                params=params,
                distributions={k: dists[k] for k in params},
                values=[Clock.accuracy(arch), bitops(arch)],
                user_attrs=attrs,
                system_attrs=t.system_attrs,
            )
        )
    add_trials(study, batch)
    if len(study.get_trials(deepcopy=False)) < upto:
        fill(study, problem, upto, templates)


def add_trials(study: optuna.Study, trials: list[FrozenTrial], chunk: int = 500) -> None:
    """``study.add_trials``, but over a database in one transaction per ``chunk`` trials:
    Optuna's own ``_get_prepared_new_trial`` (the insert behind ``add_trials``: the study
    row locked, the trial's number counted in the transaction) for each, one commit for all,
    instead of one transaction and commit per trial (about 1 trial/s on a SQLite file on a
    loaded disk). The journal keeps ``add_trials`` (an append to the log per trial)."""
    backend = getattr(study._storage, "_backend", None)
    if not isinstance(backend, RDBStorage):
        study.add_trials(trials)
        return
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    for start in range(0, len(trials), chunk):
        with _create_scoped_session(backend.scoped_session) as session:
            models.StudyModel.find_or_raise_by_id(study._study_id, session, for_update=True)
            for t in trials[start : start + chunk]:
                backend._get_prepared_new_trial(study._study_id, t, session)


def bench(url: str, name: str, args: argparse.Namespace, out: Path) -> None:
    clock = Clock()
    problem = Problem(space=space(), evaluator=CallableEvaluator(clock))
    study = create_or_load_study(
        open_storage(url), name, problem, make_sampler(args.sampler, 0, problem), url
    )
    per: dict[int, float] = {}
    rss: dict[int, float] = {}
    templates: list[FrozenTrial] = []
    t0 = time.perf_counter()
    for m in marks(args.trials):
        if templates:
            fill(study, problem, m - args.window, templates)
        start = len(clock.times)
        added = optimize(study, problem, args.window, progress=False)
        assert added["finished"] == args.window, added
        times = clock.times[start:]
        per[m] = 1000 * (times[-1] - times[0]) / (len(times) - 1)
        rss[m] = rss_mb()
        if not templates:
            templates = study.get_trials(states=(TrialState.COMPLETE,))
    wall = time.perf_counter() - t0
    n = len(study.get_trials(deepcopy=False))
    # the machine's load drifts over a run: the 100-trial window once more, on a new study
    # right after the last mark, says how much of a ratio is drift
    # in a file of its own: a journal replays its whole file, whatever study is read
    again_url = url.replace(f"{name}.", f"{name}-again.")
    again_storage = study._storage if again_url == url else open_storage(again_url)
    again = create_or_load_study(
        again_storage, f"{name}-again", problem, make_sampler(args.sampler, 1, problem), url
    )
    start = len(clock.times)
    optimize(again, problem, args.window, progress=False)
    times = clock.times[start:]
    again_ms = 1000 * (times[-1] - times[0]) / (len(times) - 1)
    peak = peak_rss_mb()
    base = per[min(per)]
    print(f"\n{name} ({url.split(':')[0]}, sampler {args.sampler}): {n} trials in "
          f"{wall:.1f} s; peak RSS {peak:.0f} MB")  # fmt: skip
    print(f"{'trials':>8s} {'ms/trial':>9s} {'x at 100':>9s} {'RSS MB':>7s}")
    for m, v in per.items():
        print(f"{m:8d} {v:9.2f} {v / base:9.2f} {rss[m]:7.0f}")
    print(f"{'100 again':>8s} {again_ms:9.2f} {again_ms / base:9.2f}  (new study, after the rest)")
    sys.stdout.flush()
    # each in a new process, as `bitnas run` and a reader open a study: the storage's own
    # memory (open the study, read every trial) and a run's (open, run a window), at 100
    # trials (the "again" study) and at the last mark
    print(f"{'new process':>24s} {'trials':>7s} {'peak RSS MB':>12s} {'ms/trial':>9s} {'s':>6s}")
    for what in ("read", "read-orm", "run"):
        for study_name in (f"{name}-again", name):
            r = probe(what, again_url if study_name != name else url, study_name, args)
            ms = f"{r['ms']:9.2f}" if "ms" in r else f"{'':9s}"
            print(f"{what:>24s} {r['trials']:7d} {r['rss']:12.0f} {ms} {r['s']:6.1f}", flush=True)
    cli = [sys.executable, "-m", "bitnas.studies.cli"]
    where = [name, "--storage", url]
    codes = {"this code": None, **{c: c for c in args.compare_with}}
    for what, extra in (("pareto", []), ("export", ["--parquet", str(out / f"{name}.parquet")]),
                        ("report", ["--out", str(out / f"{name}-report")])):  # fmt: skip
        if what in args.cli:
            for label, code in codes.items():  # each command under each code, in turn
                s = timed([*cli, what, *where, *extra], code)
                print(f"bitnas {what} ({label}): {s:.1f} s", flush=True)


def probe(what: str, url: str, name: str, args: argparse.Namespace) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--probe", what, url, name, "--sampler", args.sampler,
           "--window", str(args.window)]  # fmt: skip
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def run_probe(what: str, url: str, name: str, args: argparse.Namespace) -> None:
    """One measurement in this (new) process, printed as a JSON line: ``read`` opens the
    study and reads every trial as bitnas's readers do (``preload`` on a database, then
    ``get_trials``), ``read-orm`` the same through Optuna's own read alone, ``run`` opens it
    as `bitnas run` does and adds a window of trials."""
    t0 = time.perf_counter()
    clock = Clock()
    problem = Problem(space=space(), evaluator=CallableEvaluator(clock))
    study = create_or_load_study(
        open_storage(url, create=False), name, problem, make_sampler(args.sampler, 2, problem)
    )
    if what != "read-orm":
        preload(study)
    result: dict[str, float] = {"trials": len(study.get_trials(deepcopy=False))}
    if what == "run":
        optimize(study, problem, args.window, progress=False)
        times = clock.times
        result["ms"] = 1000 * (times[-1] - times[0]) / (len(times) - 1)
    result["rss"] = peak_rss_mb()
    result["s"] = time.perf_counter() - t0
    print(json.dumps(result))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--probe", nargs=3, metavar=("WHAT", "URL", "NAME"), help=argparse.SUPPRESS)
    ap.add_argument("--trials", type=int, default=10_000)
    ap.add_argument("--storages", nargs="+", default=["sqlite", "journal"])
    ap.add_argument("--sampler", default="random")
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--cli", nargs="*", default=["pareto", "export", "report"],
                    help="commands to time on each finished study")  # fmt: skip
    ap.add_argument("--dir", help="keep the studies here (default: a temporary folder)")
    ap.add_argument("--compare-with", nargs="*", default=[], metavar="CHECKOUT",
                    help="time the commands also with bitnas from these checkouts (a baseline "
                         "in the same run)")  # fmt: skip
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.probe:
        run_probe(*args.probe, args)
        return
    if len(args.storages) > 1:  # one process each: a peak RSS is one storage's alone
        for kind in args.storages:
            argv = sys.argv[1:]
            if "--storages" not in argv:
                argv.append("--storages")
            i = argv.index("--storages")
            while i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                del argv[i + 1]
            argv.insert(i + 1, kind)
            subprocess.run([sys.executable, __file__, *argv], check=True)
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.dir or tmp).resolve()
        out.mkdir(parents=True, exist_ok=True)
        for kind in args.storages:
            name = f"scale-{kind}-{args.sampler}-{args.trials}"
            if kind == "sqlite":
                url = f"sqlite:///{out}/{name}.db"  # out is absolute: sqlite:////abs
            elif kind == "journal":
                url = f"journal:///{out}/{name}.log"
            elif kind == "postgresql":  # a throwaway server, started and stopped by its PID
                name = f"scale-postgresql-{args.sampler}-{args.trials}"
                server = postgres_server()
                try:
                    bench(server.url, name, args, out)
                finally:
                    server.close()
                continue
            else:  # a database URL, e.g. postgresql+psycopg://user@127.0.0.1:5432/db
                url = kind
            bench(url, name, args, out)


def postgres_server():  # type: ignore[no-untyped-def]
    """The tests' throwaway PostgreSQL server (tests/reliability/pg.py: its own data folder,
    127.0.0.1, fsync off, stopped by its PID)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.reliability.pg import PgServer, binaries

    bindir = binaries()
    if bindir is None:
        raise SystemExit("--storages postgresql: no PostgreSQL binaries (initdb, postgres)")
    return PgServer(bindir)


if __name__ == "__main__":
    main()
