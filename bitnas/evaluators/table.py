"""Exhaustive tables: every architecture of a finite space, trained once per seed, in Parquet.

A table makes a study run in seconds (``TableEvaluator`` looks results up instead of training)
and gives the *true* Pareto front of its space, against which search quality is measured
(``bench/search_quality.py``). ``build_table`` fills one with any evaluator, resumably and in
parallel.

Schema (one row per architecture and seed; see ``TABLE_SCHEMA``): ``arch_key``,
``architecture`` (JSON), ``params`` (JSON: the space's parameters that build it), ``seed``,
``bitops`` (dense, cost model of the metadata), ``val_accuracy``, ``test_accuracy``,
``train_loss``, ``curve`` (validation accuracy after each epoch), ``epochs``, ``densities``
(bit density of each layer's input), ``seconds`` (training wall time). The file's metadata
holds ``bitnas.table`` (format version), ``bitnas.cost_model`` and ``bitnas.spec`` (the
[data], [space] and [train] sections that produced it, JSON).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from bitnas.errors import EvaluationError, SpecError
from bitnas.evaluators._base import EvalResult, Evaluator, Report
from bitnas.spaces.architecture import Architecture

__all__ = [
    "TABLE_FORMAT",
    "TABLE_SCHEMA",
    "TableEntry",
    "TableEvaluator",
    "build_table",
    "read_table",
]

TABLE_FORMAT = "bitnas-table/1"


TABLE_SCHEMA = pa.schema(
    [
        ("arch_key", pa.string()),
        ("architecture", pa.string()),
        ("params", pa.string()),
        ("seed", pa.int64()),
        ("bitops", pa.float64()),
        ("val_accuracy", pa.float64()),
        ("test_accuracy", pa.float64()),
        ("train_loss", pa.float64()),
        ("curve", pa.list_(pa.float64())),
        ("epochs", pa.int32()),
        ("densities", pa.list_(pa.float64())),
        ("seconds", pa.float64()),
    ]
)


@dataclass(frozen=True)
class TableEntry:
    """One architecture of a table, its seeds averaged."""

    arch: Architecture
    params: Mapping[str, Any]
    bitops: float
    val_accuracy: float
    test_accuracy: float
    curve: tuple[float, ...]
    densities: tuple[float, ...] | None
    seeds: int
    val_std: float


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs)


def read_table(path: str | Path) -> tuple[dict[str, TableEntry], dict[str, Any]]:
    """The table at ``path`` as {architecture key: entry (seeds averaged)} and its metadata.

    Curves of different lengths (a table filled with different epoch counts) are refused:
    averaging them would mix measurements.
    """
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"table file {str(p)!r} does not exist", field="path")
    try:
        t = pq.read_table(p)
    except Exception as e:  # pyarrow raises several types for a file that is not Parquet
        raise SpecError(f"{str(p)!r} is not a readable Parquet table: {e}", field="path") from None
    missing = [c for c in TABLE_SCHEMA.names if c not in t.column_names]
    if missing:
        raise SpecError(f"{str(p)!r} is not a bitnas table: it lacks columns {missing}")
    raw = t.schema.metadata or {}
    meta = {k.decode(): v.decode() for k, v in raw.items() if k.startswith(b"bitnas.")}
    rows: dict[str, list[dict[str, Any]]] = {}
    for r in t.to_pylist():
        rows.setdefault(r["arch_key"], []).append(r)
    entries: dict[str, TableEntry] = {}
    for key, rs in rows.items():
        curves = [r["curve"] for r in rs]
        if len({len(c) for c in curves}) != 1:
            raise SpecError(f"{str(p)!r}: architecture {key} has curves of different lengths")
        vals = [r["val_accuracy"] for r in rs]
        dens = [r["densities"] for r in rs if r["densities"] is not None]
        entries[key] = TableEntry(
            arch=Architecture.from_json(rs[0]["architecture"]),
            params=json.loads(rs[0]["params"]),
            bitops=float(rs[0]["bitops"]),
            val_accuracy=_mean(vals),
            test_accuracy=_mean([r["test_accuracy"] for r in rs]),
            curve=tuple(_mean(col) for col in zip(*curves, strict=True)),
            densities=tuple(_mean(col) for col in zip(*dens, strict=True)) if dens else None,
            seeds=len(rs),
            val_std=math.sqrt(_mean([(v - _mean(vals)) ** 2 for v in vals])),
        )
    return entries, meta


@dataclass(frozen=True)
class TableEvaluator(Evaluator):
    """Looks an architecture up in a table built by ``build_table`` instead of training it.

    The result is the mean over the table's seeds (``seed`` is ignored: a table result is the
    architecture's expected accuracy, so the true front is well defined). ``report`` is called
    with the mean validation curve epoch by epoch, so early stoppers act as in training; a
    stopped lookup returns the accuracy at the epoch it was stopped and ``epochs`` that far.
    """

    path: str = ""
    objective: str = "val_accuracy"
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def _entries(self) -> dict[str, TableEntry]:
        if "entries" not in self._cache:
            self._cache["entries"], self._cache["meta"] = read_table(self.path)
        entries: dict[str, TableEntry] = self._cache["entries"]
        return entries

    @property
    def metadata(self) -> dict[str, Any]:
        self._entries()
        meta: dict[str, Any] = self._cache["meta"]
        return meta

    def prepare(self) -> None:
        self._entries()

    def entries(self) -> dict[str, TableEntry]:
        """Every architecture of the table, by key."""
        return dict(self._entries())

    def evaluate(
        self, arch: Architecture, *, seed: int, report: Report | None = None
    ) -> EvalResult:
        e = self._entries().get(arch.key())
        if e is None:
            raise EvaluationError(
                f"architecture {arch.summary()} is not in the table {self.path!r}: the study's "
                "[space] must be the table's space (or a part of it)"
            )
        epochs, stopped, val = len(e.curve), False, e.val_accuracy
        if report is not None:
            for step, v in enumerate(e.curve, start=1):
                if report(step, {"val_accuracy": v}):
                    epochs, stopped, val = step, True, v
                    break
        metrics = {"val_accuracy": val}
        if not stopped:
            metrics["test_accuracy"] = e.test_accuracy
        return EvalResult(
            metrics=metrics,
            densities=e.densities,
            epochs=epochs,
            stopped=stopped,
            info={"table_seeds": e.seeds, "val_accuracy_std": e.val_std},
        )


# -- building a table -------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(ev: Evaluator) -> None:
    ev.prepare()
    _WORKER["evaluator"] = ev


def _train_one(arch_json: str, seed: int) -> dict[str, Any]:
    ev: Evaluator = _WORKER["evaluator"]
    arch = Architecture.from_json(arch_json)
    curve: list[float] = []

    def report(step: int, metrics: Mapping[str, float]) -> bool:
        curve.append(float(metrics[ev.objective]))
        return False

    t0 = time.perf_counter()
    r = ev.evaluate(arch, seed=seed, report=report)
    return {
        "val_accuracy": r.value(ev.objective),
        "test_accuracy": float(r.metrics.get("test_accuracy", math.nan)),
        "train_loss": float(r.metrics.get("train_loss", math.nan)),
        "curve": curve,
        "epochs": r.epochs,
        "densities": list(r.densities) if r.densities is not None else None,
        "seconds": time.perf_counter() - t0,
    }


def _write(path: Path, rows: list[dict[str, Any]], meta: Mapping[str, str]) -> None:
    rows = sorted(rows, key=lambda r: (r["bitops"], r["arch_key"], r["seed"]))
    schema = TABLE_SCHEMA.with_metadata({k.encode(): v.encode() for k, v in meta.items()})
    table = pa.Table.from_pylist(rows, schema=schema)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)  # a reader never sees half a table


def build_table(
    out: str | Path,
    candidates: Iterable[tuple[Mapping[str, Any], Architecture]],
    evaluator: Evaluator,
    *,
    seeds: Sequence[int],
    cost: Callable[[Architecture], float],
    metadata: Mapping[str, str],
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Evaluate every (architecture, seed) not yet in ``out`` and write the table there.

    Resumable: every finished evaluation is appended at once to ``<out>.partial.jsonl`` (a
    kill loses at most the runs in flight), and a rerun skips what ``out`` and that file
    already hold; the Parquet file is rewritten at the end and the journal removed.
    ``evaluator`` must be picklable (it runs in ``workers`` spawned processes).
    Returns the number of evaluations run now. An evaluation that raises stops the build
    (a table with holes would give a wrong true front); what finished is kept.
    """
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    journal = path.with_name(path.name + ".partial.jsonl")
    meta = {"bitnas.table": TABLE_FORMAT, **metadata}
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    if path.exists():
        old = pq.read_table(path)
        old_meta = {k.decode(): v.decode() for k, v in (old.schema.metadata or {}).items()}
        if old_meta.get("bitnas.spec") != meta.get("bitnas.spec"):
            raise SpecError(
                f"{str(path)!r} was built from different [data]/[space]/[train] settings; "
                "write the new table to another file"
            )
        for r in old.to_pylist():
            rows[(r["arch_key"], r["seed"])] = r
    if journal.exists():
        for line in journal.read_text().splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:  # the line being written when the build was killed
                continue
            rows[(r["arch_key"], r["seed"])] = r
    todo: list[tuple[dict[str, Any], int]] = []
    for params, arch in candidates:
        base = {
            "arch_key": arch.key(),
            "architecture": arch.to_json(),
            "params": json.dumps(dict(params), sort_keys=True),
            "bitops": float(cost(arch)),
        }
        todo += [(base, s) for s in seeds if (base["arch_key"], s) not in rows]
    total, done = len(todo), 0
    if progress:
        progress(0, total)
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # torch is not fork-safe once it has threads
    with (
        ProcessPoolExecutor(
            max_workers=max(1, workers),
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(evaluator,),
        ) as pool,
        journal.open("a") as jf,
    ):
        pending: dict[Future[dict[str, Any]], tuple[dict[str, Any], int]] = {}
        queue = list(reversed(todo))
        try:
            while queue or pending:
                while queue and len(pending) < 2 * max(1, workers):
                    base, s = queue.pop()
                    pending[pool.submit(_train_one, base["architecture"], s)] = (base, s)
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    base, s = pending.pop(fut)
                    row = {**base, "seed": s, **fut.result()}
                    rows[(str(base["arch_key"]), s)] = row
                    jf.write(json.dumps(row) + "\n")
                    jf.flush()
                    done += 1
                    if progress:
                        progress(done, total)
        except BaseException:
            for fut in pending:
                fut.cancel()
            raise
    _write(path, list(rows.values()), meta)
    journal.unlink(missing_ok=True)
    return done
