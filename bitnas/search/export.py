"""Trials and Pareto fronts as Arrow tables (one row per trial), for Parquet, CSV and pandas."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pyarrow as pa
from optuna.trial import FrozenTrial, TrialState

from bitnas.search.pareto import pareto_ranks
from bitnas.search.records import ATTR_ARCH, ATTR_ERROR, ATTR_KEY, ATTR_REJECTED, ATTR_SPARE
from bitnas.search.repeats import as_sampled

__all__ = [
    "LAYER_TYPE",
    "SCHEMA_VERSION",
    "flatten_for_csv",
    "front_trials",
    "trials_schema",
    "trials_table",
    "write_csv",
    "write_parquet",
]

_LAYER_LISTS = ("macs", "params", "wbits", "in_bits", "layer_bitops")


def _feasible(t: FrozenTrial) -> bool:
    return all(v <= 0.0 for v in t.constraints.values())


def front_trials(study: optuna.Study, *, layers: int = 1) -> list[FrozenTrial]:
    """The feasible Pareto front: COMPLETE, within budget, non-dominated, one trial per
    architecture (the earliest), sorted by cost. ``layers`` > 1 adds the next non-dominated
    layers (``pareto_ranks``: the front of what is left once the front is removed, ...),
    sorted by (layer, cost): what a noisy first stage should hand to the second."""
    if layers < 1:
        raise ValueError(f"layers must be >= 1, got {layers}")
    names = study.metric_names or [f"value_{i}" for i in range(len(study.directions))]
    directions = [d.name.lower() for d in study.directions]
    done = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if _feasible(t) and t.values is not None
    ]
    unique: dict[str, FrozenTrial] = {}
    for t in done:
        unique.setdefault(t.user_attrs.get(ATTR_KEY, f"#{t.number}"), t)
    trials = list(unique.values())
    if not trials:
        return []
    rank = pareto_ranks(np.array([t.values for t in trials]), directions, depth=layers)
    cost_i = len(names) - 1
    kept = [(int(r), t) for r, t in zip(rank, trials, strict=True) if r >= 0]
    return [t for _, t in sorted(kept, key=lambda p: (p[0], p[1].values[cost_i], p[1].number))]


def _row(t: FrozenTrial, names: list[str], front: set[int]) -> dict[str, Any]:
    ua = t.user_attrs
    cost = ua.get("cost") or {}
    row: dict[str, Any] = {
        "number": t.number,
        "state": t.state.name,
        "feasible": _feasible(t) if t.constraints else True,
        "pareto": t.number in front,
        "rejected": ua.get(ATTR_REJECTED),
        "spare": ua.get(ATTR_SPARE),
        "error": ua.get(ATTR_ERROR),
        "duplicate_of": ua.get("duplicate_of"),
        "datetime_start": t.datetime_start,
        "datetime_complete": t.datetime_complete,
        "duration_s": t.duration.total_seconds() if t.duration else None,
    }
    for i, n in enumerate(names):
        # a repeat (stored PRUNED) exports the values it re-told, as it did when stored COMPLETE
        values = as_sampled(t).values
        row[n] = values[i] if values is not None else None
    row["test_accuracy"] = ua.get("test_accuracy")
    row["dense_bitops"] = cost.get("bitops")
    row["event_bitops"] = ua.get("event_bitops")
    row["weight_bits"] = cost.get("weight_bits")
    row["cost_model"] = ua.get("cost_model")
    row["energy_pj"] = ua.get("energy_pj")
    row["event_energy_pj"] = ua.get("event_energy_pj")
    row["layer_policy"] = json.dumps(ua["layer_policy"]) if "layer_policy" in ua else None
    row["constraint_excess"] = max(t.constraints.values()) if t.constraints else None
    row["depth"] = ua.get("depth")
    row["timesteps"] = ua.get("timesteps")
    row["summary"] = ua.get("summary")
    row["architecture"] = ua.get(ATTR_ARCH)
    for k in _LAYER_LISTS:
        row[k] = cost.get(k)
    arch = json.loads(ua[ATTR_ARCH]) if ATTR_ARCH in ua else None
    row["abits"] = [lay["abits"] for lay in arch["layers"][:-1]] if arch else None
    row["widths"] = [lay["out_ch"] for lay in arch["layers"][:-1]] if arch else None
    row["densities"] = ua.get("densities")
    row["spike_rates"] = ua.get("spike_rates")
    row["layers"] = _layers(ua, arch)
    row["params_json"] = json.dumps(t.params, sort_keys=True)
    return row


#: Version of the export schema below (stored in the Parquet metadata as ``bitnas.schema``);
#: docs/export.md documents every column.
SCHEMA_VERSION = "bitnas-trials/2"

#: One element of the ``layers`` column: a weighted layer, in network order.
LAYER_TYPE = pa.struct(
    [
        ("kind", pa.string()),
        ("in_ch", pa.int64()),
        ("out_ch", pa.int64()),
        ("wbits", pa.int64()),
        ("abits", pa.int64()),
        ("in_bits", pa.int64()),
        ("macs", pa.int64()),
        ("params", pa.int64()),
        ("bitops", pa.int64()),
        ("density", pa.float64()),
        ("spike_rate", pa.float64()),
    ]
)

_SCHEMA_FIXED = [
    ("number", pa.int64()),
    ("state", pa.string()),
    ("feasible", pa.bool_()),
    ("pareto", pa.bool_()),
    ("rejected", pa.string()),
    ("spare", pa.string()),
    ("error", pa.string()),
    ("duplicate_of", pa.int64()),
    ("datetime_start", pa.timestamp("us")),
    ("datetime_complete", pa.timestamp("us")),
    ("duration_s", pa.float64()),
]
_SCHEMA_TAIL = [
    ("test_accuracy", pa.float64()),
    ("dense_bitops", pa.int64()),
    ("event_bitops", pa.float64()),
    ("weight_bits", pa.int64()),
    ("cost_model", pa.string()),
    ("energy_pj", pa.float64()),
    ("event_energy_pj", pa.float64()),
    ("layer_policy", pa.string()),
    ("constraint_excess", pa.float64()),
    ("depth", pa.int64()),
    ("timesteps", pa.int64()),
    ("summary", pa.string()),
    ("architecture", pa.string()),
    *[(k, pa.list_(pa.int64())) for k in _LAYER_LISTS],
    ("abits", pa.list_(pa.int64())),
    ("widths", pa.list_(pa.int64())),
    ("densities", pa.list_(pa.float64())),
    ("spike_rates", pa.list_(pa.float64())),
    ("layers", pa.list_(LAYER_TYPE)),
    ("params_json", pa.string()),
]


def trials_schema(metric_names: Sequence[str]) -> pa.Schema:
    """The schema of ``trials_table`` without its ``param_<name>`` columns (whose names and
    types come from the study's parameters): one ``float64`` column per objective, named by
    the study's metric names, between the fixed head and tail columns."""
    fields = _SCHEMA_FIXED + [(n, pa.float64()) for n in metric_names] + _SCHEMA_TAIL
    return pa.schema(fields, metadata={"bitnas.schema": SCHEMA_VERSION})


def trials_table(study: optuna.Study, *, params: bool = True) -> pa.Table:
    """One row per trial: state, objectives (by metric name), cost breakdown, per-layer lists,
    densities, architecture JSON; with ``params`` one ``param_<name>`` column per parameter."""
    names = list(study.metric_names or [f"value_{i}" for i in range(len(study.directions))])
    trials = study.get_trials(deepcopy=False)
    front = {t.number for t in front_trials(study)}
    rows = [_row(t, names, front) for t in trials]
    schema = trials_schema(names)
    arrays = [pa.array([r[f.name] for r in rows], type=f.type) for f in schema]
    if params:
        for k in sorted({k for t in trials for k in t.params}):
            col = pa.array([t.params.get(k) for t in trials])
            schema = schema.append(pa.field(f"param_{k}", col.type))
            arrays.append(col)
    return pa.Table.from_arrays(arrays, schema=schema)


def _layers(ua: dict[str, Any], arch: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    """The per-layer structs of one trial (None without a recorded architecture)."""
    if arch is None:
        return None
    cost = ua.get("cost") or {}
    n = len(arch["layers"])

    def per_layer(values: Any) -> list[Any]:
        return list(values) if values is not None and len(values) == n else [None] * n

    macs, params = per_layer(cost.get("macs")), per_layer(cost.get("params"))
    in_bits, bitops = per_layer(cost.get("in_bits")), per_layer(cost.get("layer_bitops"))
    density, rate = per_layer(ua.get("densities")), per_layer(ua.get("spike_rates"))
    return [
        {
            "kind": lay["kind"],
            "in_ch": lay["in_ch"],
            "out_ch": lay["out_ch"],
            "wbits": lay["wbits"],
            "abits": lay["abits"],
            "in_bits": in_bits[i],
            "macs": macs[i],
            "params": params[i],
            "bitops": bitops[i],
            "density": density[i],
            "spike_rate": rate[i],
        }
        for i, lay in enumerate(arch["layers"])
    ]


def _json_cell(v: Any) -> str | None:
    return None if v is None else json.dumps(v, sort_keys=True, default=str)


def flatten_for_csv(table: pa.Table) -> pa.Table:
    """``table`` with every nested column (lists, structs) as a JSON string column."""
    arrays, fields = [], []
    for f, col in zip(table.schema, table.columns, strict=True):
        if pa.types.is_nested(f.type):
            col = pa.array([_json_cell(v) for v in col.to_pylist()], type=pa.string())
            f = pa.field(f.name, pa.string())
        arrays.append(col)
        fields.append(f)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=table.schema.metadata))


def write_parquet(table: pa.Table, path: str | Path) -> None:
    """Write ``table`` as Parquet (the schema, nested columns included, is kept as is)."""
    import pyarrow.parquet as pq

    pq.write_table(table, path)


def write_csv(table: pa.Table, path: str | Path) -> None:
    """Write ``table`` as CSV: one line per trial, nested columns as JSON strings, empty cells
    for nulls (integer columns stay integers)."""
    import pandas as pd

    # pandas, not pyarrow.csv: pyarrow quotes every header name
    flatten_for_csv(table).to_pandas(types_mapper=pd.ArrowDtype).to_csv(path, index=False)
