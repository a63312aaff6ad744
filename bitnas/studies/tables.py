"""``bitnas bench-table``: train every architecture of a study file's (finite) space, per seed,
into an exhaustive table (``bitnas.evaluators.table``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq

from bitnas.errors import SpecError
from bitnas.evaluators.table import build_table
from bitnas.spaces.cost import COST_MODEL, bitops
from bitnas.studies.spec import StudySpec

__all__ = ["MAX_TABLE_SIZE", "TABLE_SECTIONS", "build_from_spec", "stored_settings"]

#: A table holds every architecture; beyond this size that is no longer a sensible thing to train.
MAX_TABLE_SIZE = 20_000


#: The study-file sections a table's records depend on (stored as its ``bitnas.spec``).
TABLE_SECTIONS = ("data", "space", "train")


def stored_settings(path: str | Path) -> str | None:
    """The ``bitnas.spec`` a table at ``path`` was built with (None: no table there)."""
    p = Path(path)
    if not p.exists():
        return None
    meta = pq.read_schema(p).metadata or {}
    raw = meta.get(b"bitnas.spec")
    return raw.decode() if raw is not None else None


def build_from_spec(
    spec: StudySpec,
    out: str | Path,
    *,
    seeds: Sequence[int],
    workers: int = 1,
    progress: bool = True,
) -> int:
    """Fill the table ``out`` for ``spec``'s space with its trained evaluator; returns the
    number of trainings run now (0 when the table was complete)."""
    if spec.table.path:
        raise SpecError(
            "a study file with a [table] section looks results up; building a table needs "
            "one that trains (remove [table])",
            where=spec.source,
        )
    size = spec.space.size()
    if size > MAX_TABLE_SIZE:
        raise SpecError(
            f"the space has {size:,} architectures; an exhaustive table is limited to "
            f"{MAX_TABLE_SIZE:,}: narrow [space]",
            where=spec.source,
        )
    d = spec.to_dict()
    settings = json.dumps({k: d[k] for k in TABLE_SECTIONS}, sort_keys=True)
    stored = stored_settings(out)
    if stored is not None:
        diffs = spec.measurement_differences(json.loads(stored), sections=TABLE_SECTIONS)
        if diffs:
            raise SpecError(
                f"{str(out)!r} was built from other settings ({'; '.join(diffs)}); write the "
                "new table to another file",
                where=spec.source,
            )
        settings = stored  # the same settings, maybe written before keys that mean the same
    meta = {"bitnas.cost_model": COST_MODEL, "bitnas.spec": settings}

    def show(done: int, total: int) -> None:
        # a line per 5% (logs of long builds stay short)
        if progress and (done == total or done % max(1, total // 20) == 0):
            print(f"  {done}/{total} trainings", file=sys.stderr, flush=True)

    return build_table(
        out,
        spec.space.grid_with_params(),
        spec.evaluator(),
        seeds=seeds,
        cost=bitops,
        metadata=meta,
        workers=workers,
        progress=show,
    )
