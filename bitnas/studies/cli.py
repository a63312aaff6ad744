"""The ``bitnas`` command line: run, retrain, pareto, export, cost, report, dashboard,
bench-table."""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bitnas.errors import BitnasError
from bitnas.studies.report import format_counts, format_front

if TYPE_CHECKING:
    from bitnas.studies.api import StudyResult
    from bitnas.studies.spec import StudySpec
    from bitnas.studies.sweep import Cell

__all__ = ["main"]

#: Spaces up to this size are enumerated exactly by `bitnas cost`; larger ones are sampled.
EXACT_LIMIT = 300_000
SAMPLES = 20_000


def _shown(url: str) -> str:
    """A storage URL as printed: its password, if any, masked."""
    from bitnas.search.storage import redact

    return redact(url)


def _add_storage(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--storage",
        metavar="URL",
        help="Optuna storage URL (default: the study file's, or sqlite:///runs/<name>.db)",
    )


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="bitnas",
        description="Search neural architectures and their bit allocation under a BitOps budget.",
    )
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="run (or continue) a study until it has its target trials")
    r.add_argument("file", help="study file (TOML)")
    r.add_argument("--trials", type=int, metavar="N", help="target number of finished trials")
    r.add_argument(
        "--sampler",
        metavar="S",
        help="sampler name (tpe, nsga2, nsga3, gp, random, qmc, known-cost)",
    )
    r.add_argument("--seed", type=int, metavar="K", help="study seed")
    r.add_argument("--backend", default="local", help="where trials run: local (default) or ray")
    r.add_argument(
        "--address",
        metavar="ADDR",
        help="with --backend ray: join this cluster (auto or HOST:PORT); default: a local Ray",
    )
    r.add_argument(
        "--max-concurrent", type=int, metavar="N", help="with --backend ray: trials at once"
    )
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument(
        "--stopper", metavar="S", help="early stopper: pareto, or none (default: the study file's)"
    )
    r.add_argument(
        "--warm-start",
        metavar="STUDY",
        help="first train the feasible Pareto front of this earlier study (name or study file)",
    )
    r.add_argument(
        "--warm-start-storage",
        metavar="URL",
        help="storage of the --warm-start study (default: this study's storage)",
    )
    _add_storage(r)

    rt = sub.add_parser(
        "retrain",
        help="stage 2 of a [supernet] study: re-train its front from scratch (<name>-retrain)",
    )
    rt.add_argument("file", help="the supernet study's file (TOML), already run")
    rt.add_argument(
        "--layers",
        type=int,
        metavar="K",
        help="non-dominated layers to re-train (default 2: the front and the next; 1: the front)",
    )
    rt.add_argument(
        "--limit", type=int, metavar="N", help="re-train at most N (layer by layer, cheapest first)"
    )
    rt.add_argument("--backend", default="local", help="where trials run: local (default) or ray")
    rt.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_storage(rt)

    p = sub.add_parser("pareto", help="print the feasible Pareto front of a stored study")
    p.add_argument("target", help="study file (TOML) or study name")
    _add_storage(p)

    e = sub.add_parser("export", help="write every trial of a stored study to Parquet/CSV")
    e.add_argument("target", help="study file (TOML) or study name")
    e.add_argument("--parquet", metavar="OUT", help="Parquet file to write")
    e.add_argument("--csv", metavar="OUT", help="CSV file to write")
    _add_storage(e)

    d = sub.add_parser("dashboard", help="review stored studies in optuna-dashboard")
    d.add_argument("target", help="study file (TOML), storage URL, or SQLite file")
    d.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    d.add_argument("--port", type=int, default=8080, help="port (8080; 0: any free port)")
    d.add_argument("--artifacts", metavar="DIR", help="artifact folder (default: the study's)")
    _add_storage(d)

    c = sub.add_parser("cost", help="size and cost range of a study's space, share within budget")
    c.add_argument("file", help="study file (TOML)")
    _add_storage(c)

    t = sub.add_parser(
        "bench-table",
        help="train every architecture of a study file's space into an exhaustive table",
    )
    t.add_argument("file", help="study file (TOML) whose [data], [space] and [train] to use")
    t.add_argument("--out", required=True, metavar="PATH", help="Parquet table to write/resume")
    t.add_argument(
        "--seeds", type=int, default=2, metavar="N", help="seeds per architecture (default 2)"
    )
    t.add_argument("--workers", type=int, default=1, metavar="N", help="parallel processes")
    t.add_argument("--no-progress", action="store_true", help="no progress line")
    rp = sub.add_parser("report", help="write a Markdown + PNG report of a study or a sweep")
    rp.add_argument("target", help="study file (TOML; a sweep reports every cell) or study name")
    rp.add_argument("--out", required=True, metavar="DIR", help="folder for report.md and PNGs")
    _add_storage(rp)
    return ap


def _cmd_run(args: argparse.Namespace) -> int:
    from bitnas.studies.api import run
    from bitnas.studies.loader import load_spec

    t0 = time.perf_counter()
    if (sweep_spec := load_spec(args.file)).sweep is not None:
        return _run_sweep(args, sweep_spec, t0)
    result = run(
        args.file,
        trials=args.trials,
        sampler=args.sampler,
        storage=args.storage,
        seed=args.seed,
        backend=args.backend,
        address=args.address,
        max_concurrent=args.max_concurrent,
        progress=not args.no_progress,
        stopper=args.stopper,
        warm_start=args.warm_start,
        warm_start_storage=args.warm_start_storage,
    )
    spec = result.spec
    assert spec is not None
    _print_added(result, t0)
    if result.added.get("exhausted"):
        print(
            "note: the sampler kept proposing architectures this study already trained and no "
            "feasible architecture was left untrained to draw instead: the target was not "
            "reached (the feasible space is exhausted, or too large to enumerate)"
        )
    print(format_front(result.study, budget=spec.budget.bitops))
    return 0


def _print_added(result: StudyResult, t0: float) -> None:
    """What a run's warm start enqueued, then the trials it added and the study's counts."""
    if result.warm_start is not None:
        print(result.warm_start.describe())
    print(
        f"study {result.study.study_name!r} in {_shown(result.storage_url)}: added "
        f"{format_counts(result.added)} in {time.perf_counter() - t0:.1f} s; "
        f"now {format_counts(result.counts())}"
    )


def _cmd_retrain(args: argparse.Namespace) -> int:
    from bitnas.studies.two_stage import DEFAULT_LAYERS, retrain_front

    t0 = time.perf_counter()
    result = retrain_front(
        args.file,
        storage=args.storage,
        limit=args.limit,
        layers=DEFAULT_LAYERS if args.layers is None else args.layers,
        backend=args.backend,
        progress=not args.no_progress,
    )
    _print_added(result, t0)
    budget = result.spec.budget.bitops if result.spec is not None else None
    print(format_front(result.study, budget=budget))
    return 0


def _run_sweep(args: argparse.Namespace, spec: StudySpec, t0: float) -> int:
    from bitnas.errors import SpecError
    from bitnas.studies.sweep import run_sweep

    if args.seed is not None or args.backend != "local":
        raise SpecError("a sweep runs locally with its [sweep] seeds: drop --seed and --backend")

    def done(cell: Cell, result: StudyResult) -> None:
        print(
            f"cell {cell.name!r}: added {format_counts(result.added)}; now "
            f"{format_counts(result.counts())} ({time.perf_counter() - t0:.0f} s so far)",
            flush=True,
        )

    results = run_sweep(
        spec,
        on_cell=done,
        trials=args.trials,
        sampler=args.sampler,
        storage=args.storage,
        progress=not args.no_progress,
    )
    print(f"sweep of {len(results)} studies done in {time.perf_counter() - t0:.1f} s")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from bitnas.studies.reporting import report

    md = report(args.target, out=args.out, storage=args.storage)
    print(f"wrote {md} and its figures in {md.parent}")
    return 0


def _cmd_pareto(args: argparse.Namespace) -> int:
    from bitnas.studies.api import open_result

    result = open_result(args.target, storage=args.storage)
    budget = result.spec.budget.bitops if result.spec else None
    name = result.study.study_name
    print(f"study {name!r} in {_shown(result.storage_url)}: {format_counts(result.counts())}")
    print(format_front(result.study, budget=budget))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from bitnas.errors import ExportError, SpecError
    from bitnas.search.export import write_csv, write_parquet
    from bitnas.studies.api import open_result

    if not args.parquet and not args.csv:
        raise SpecError("`bitnas export` needs --parquet OUT and/or --csv OUT")
    result = open_result(args.target, storage=args.storage)
    table = result.trials_table()
    for fmt, out in (("parquet", args.parquet), ("csv", args.csv)):
        if not out:
            continue
        try:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            write = write_parquet if fmt == "parquet" else write_csv
            write(table, out)
        except OSError as e:
            raise ExportError(f"cannot write --{fmt} {out}: {e.strerror or e}") from None
        print(f"wrote {table.num_rows} trials to {out}")
    return 0


def _cmd_cost(args: argparse.Namespace) -> int:
    from bitnas.search.storage import open_storage, study_names
    from bitnas.spaces import bitops
    from bitnas.studies.loader import load_spec

    spec = load_spec(args.file)
    space, budget = spec.space, spec.budget.bitops
    size = space.size()
    lo, hi = space.extremes(bitops)
    print(f"space of {spec.source}: {size:,} architectures ({space.family})")
    print(f"  cheapest: {bitops(lo):>14,} BitOps  {lo.summary()}")
    print(f"  dearest:  {bitops(hi):>14,} BitOps  {hi.summary()}")
    if budget is None:
        print("  no budget set: the whole space is allowed")
    else:
        if size <= EXACT_LIMIT:
            within = sum(1 for a in space.grid() if bitops(a) <= budget)
            share, how = within / size, f"exact, {within:,} of {size:,}"
        else:
            rng = random.Random(0)
            hits = sum(bitops(space.sample_uniform(rng)) <= budget for _ in range(SAMPLES))
            share = hits / SAMPLES
            err = 1.96 * math.sqrt(max(share * (1 - share), 1e-12) / SAMPLES)
            how = f"estimated from {SAMPLES:,} uniform draws, ±{err:.1%} (95%)"
        print(f"  budget {budget:,.0f} BitOps: {share:.1%} of the space fits ({how})")
    url = args.storage or spec.study.storage
    try:
        store = open_storage(url, create=False)
        names = study_names(store)
    except BitnasError:
        names = []
    if spec.study.name in names:
        from bitnas.studies.api import open_result

        r = open_result(spec, storage=url)
        print(f"  stored in {_shown(url)}: {format_counts(r.counts())}")
    return 0


def _cmd_bench_table(args: argparse.Namespace) -> int:
    from bitnas.errors import SpecError
    from bitnas.studies.loader import load_spec
    from bitnas.studies.tables import build_from_spec

    for name in ("seeds", "workers"):
        if getattr(args, name) < 1:
            raise SpecError(f"--{name} must be >= 1, got {getattr(args, name)}")
    spec = load_spec(args.file)
    seeds = [spec.study.seed + i for i in range(args.seeds)]
    t0 = time.perf_counter()
    n = build_from_spec(
        spec, args.out, seeds=seeds, workers=args.workers, progress=not args.no_progress
    )
    print(
        f"table {args.out}: {spec.space.size():,} architectures x seeds {seeds}; "
        f"{n} trainings run now in {time.perf_counter() - t0:.1f} s"
    )
    return 0


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from bitnas.studies.dashboard import resolve_target, serve

    target = resolve_target(args.target, storage=args.storage, artifacts=args.artifacts)
    serve(target, host=args.host, port=args.port)
    return 0


COMMANDS = {
    "run": _cmd_run,
    "retrain": _cmd_retrain,
    "pareto": _cmd_pareto,
    "export": _cmd_export,
    "cost": _cmd_cost,
    "bench-table": _cmd_bench_table,
    "dashboard": _cmd_dashboard,
    "report": _cmd_report,
}


def main(argv: Sequence[str] | None = None) -> int:
    from bitnas.search.interrupt import catching_interrupts

    args = _parser().parse_args(argv)
    try:
        with catching_interrupts():
            return COMMANDS[args.command](args)
    except BitnasError as e:
        print(f"bitnas: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(
            "\nbitnas: interrupted; finished trials are stored, the running one was closed. "
            "Run the same command again to continue the study.",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
