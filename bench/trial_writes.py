"""Storage transactions and engine time per trial, against a baseline checkout in the same run.

    python bench/trial_writes.py [--trials 200] [--repeats 3] [--storages sqlite journal]
                                 [--storages ... postgresql [--pg-url URL]]
                                 [--compare-with CHECKOUT ...]

A free evaluator (an accuracy derived from the architecture's key, microseconds) on the local
backend, over the MLP space of ``bench/ray_overhead.py`` with a budget every architecture
meets (so each trial records its constraint, as a budgeted study does): the wall time per
trial is the engine's own cost of a trial (ask, record the architecture, the runner's checks,
tell), which is what a Ray trial, a table trial or a supernet trial pays on top of its
evaluation. Counted per trial, independently of bitnas's code (so a baseline checkout is
counted the same way): the storage's transactions (SQLAlchemy ``commit`` events on an RDB
storage; ``append_logs`` calls on a journal, each a file lock and a write) and the records
written (rows are not counted; journal records are).

Each (storage, code) pair runs in a fresh process, interleaved ``--repeats`` times, so a
drift in the machine's load reaches every code alike; reported are medians and their ratio
to the first code (this one).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def probe(url: str, trials: int) -> dict[str, float]:
    import optuna

    from bitnas.evaluators import CallableEvaluator, EvalResult
    from bitnas.search import Problem, open_storage, optimize
    from bitnas.spaces import Budget

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from ray_overhead import bench_space

    def evaluate(arch, *, seed, report):  # type: ignore[no-untyped-def]
        return EvalResult(metrics={"val_accuracy": (hash(arch.key()) % 1000) / 1000})

    problem = Problem(space=bench_space(), evaluator=CallableEvaluator(evaluate),
                      budget=Budget(bitops=1e15))  # fmt: skip
    storage = open_storage(url)
    tx, records = [0], [0]
    if url.startswith("journal"):
        from optuna.storages.journal import JournalFileBackend

        real = JournalFileBackend.append_logs

        def append_logs(self, logs):  # type: ignore[no-untyped-def]
            tx[0] += 1
            records[0] += len(logs)
            return real(self, logs)

        JournalFileBackend.append_logs = append_logs  # type: ignore[method-assign]
    else:
        import sqlalchemy.event

        sqlalchemy.event.listen(storage.engine, "commit", lambda conn: tx.__setitem__(0, tx[0] + 1))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage, directions=problem.directions,
                                sampler=optuna.samplers.RandomSampler(seed=0))  # fmt: skip
    tx[0] = records[0] = 0
    t0 = time.perf_counter()
    optimize(study, problem, trials, backend="local", progress=False)
    wall = time.perf_counter() - t0
    n = len(study.get_trials(deepcopy=False))
    return {"trials": n, "ms": 1000 * wall / n, "tx": tx[0] / n, "records": records[0] / n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--probe", nargs=2, metavar=("URL", "TRIALS"), help=argparse.SUPPRESS)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--storages", nargs="+", default=["sqlite", "journal"],
                    choices=["sqlite", "journal", "postgresql"])  # fmt: skip
    ap.add_argument(
        "--pg-url",
        help="a PostgreSQL database for --storages postgresql "
        "(default: a throwaway server of the tests', tests/reliability/pg.py)",
    )
    ap.add_argument(
        "--compare-with",
        nargs="*",
        default=[],
        metavar="CHECKOUT",
        help="also run bitnas from these checkouts (the baseline, same run)",
    )
    args = ap.parse_args()
    if args.probe:
        print(json.dumps(probe(args.probe[0], int(args.probe[1]))))
        return
    codes = {"this code": None, **{c: c for c in args.compare_with}}
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    server = None
    if "postgresql" in args.storages and not args.pg_url:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from scaling import postgres_server  # the tests' throwaway server, stopped by PID

        server = postgres_server()
        args.pg_url = server.url
    try:
        measure(args, codes, runs)
    finally:
        if server is not None:
            server.close()
    report(args, codes, runs)


def measure(
    args: argparse.Namespace,
    codes: dict[str, str | None],
    runs: dict[tuple[str, str], list[dict[str, float]]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            for kind in args.storages:
                for label, code in codes.items():
                    if kind == "postgresql":
                        url = args.pg_url
                    else:
                        suffix = "db" if kind == "sqlite" else "log"
                        url = f"{kind}:///{tmp}/{kind}-{rep}-{len(runs)}.{suffix}"
                    env = {**os.environ, "PYTHONPATH": code} if code else None
                    out = subprocess.run(
                        [sys.executable, str(Path(__file__).resolve()), "--probe", url,
                         str(args.trials)],
                        check=True, capture_output=True, text=True, env=env, cwd=code,
                    ).stdout  # fmt: skip
                    r = json.loads(out.splitlines()[-1])
                    runs.setdefault((kind, label), []).append(r)
                    print(f"{kind:10s} {label:24s} {r['ms']:6.1f} ms/trial "
                          f"{r['tx']:5.1f} tx/trial", flush=True)  # fmt: skip


def report(
    args: argparse.Namespace,
    codes: dict[str, str | None],
    runs: dict[tuple[str, str], list[dict[str, float]]],
) -> None:
    print(
        "\n| storage | code | ms per trial (median) | ratio | transactions per trial "
        "| journal records per trial |\n|---|---|---:|---:|---:|---:|"
    )
    for kind in args.storages:
        base = statistics.median(r["ms"] for r in runs[(kind, "this code")])
        for label in codes:
            rs = runs[(kind, label)]
            ms = statistics.median(r["ms"] for r in rs)
            tx = statistics.median(r["tx"] for r in rs)
            rec = (f"{statistics.median(r['records'] for r in rs):.1f}"
                   if kind == "journal" else "-")  # fmt: skip
            spread = f"{min(r['ms'] for r in rs):.1f}-{max(r['ms'] for r in rs):.1f}"
            print(
                f"| {kind} | {label} | {ms:.1f} ({spread}) | {ms / base:.2f} | {tx:.1f} | {rec} |"
            )


if __name__ == "__main__":
    main()
