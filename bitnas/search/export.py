"""Trials and Pareto fronts as Arrow tables (one row per trial), for Parquet, CSV and pandas."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import optuna
import pyarrow as pa
from optuna.trial import FrozenTrial, TrialState

from bitnas.search.pareto import pareto_mask
from bitnas.search.trials import ATTR_ARCH, ATTR_ERROR, ATTR_KEY, ATTR_REJECTED

__all__ = ["front_trials", "trials_table"]

_LAYER_LISTS = ("macs", "params", "wbits", "in_bits", "layer_bitops")


def _feasible(t: FrozenTrial) -> bool:
    return all(v <= 0.0 for v in t.constraints.values())


def front_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The feasible Pareto front: COMPLETE, within budget, non-dominated, one trial per
    architecture (the earliest), sorted by cost."""
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
    mask = pareto_mask(np.array([t.values for t in trials]), directions)
    front = [t for t, keep in zip(trials, mask, strict=True) if keep]
    cost_i = len(names) - 1
    return sorted(front, key=lambda t: (t.values[cost_i], t.number))


def _row(t: FrozenTrial, names: list[str], front: set[int]) -> dict[str, Any]:
    ua = t.user_attrs
    cost = ua.get("cost") or {}
    row: dict[str, Any] = {
        "number": t.number,
        "state": t.state.name,
        "feasible": _feasible(t) if t.constraints else True,
        "pareto": t.number in front,
        "rejected": ua.get(ATTR_REJECTED),
        "error": ua.get(ATTR_ERROR),
        "duplicate_of": ua.get("duplicate_of"),
        "datetime_start": t.datetime_start,
        "datetime_complete": t.datetime_complete,
        "duration_s": t.duration.total_seconds() if t.duration else None,
    }
    for i, n in enumerate(names):
        row[n] = t.values[i] if t.values is not None else None
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
    row["params_json"] = json.dumps(t.params, sort_keys=True)
    return row


_SCHEMA_FIXED = [
    ("number", pa.int64()),
    ("state", pa.string()),
    ("feasible", pa.bool_()),
    ("pareto", pa.bool_()),
    ("rejected", pa.string()),
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
    ("params_json", pa.string()),
]


def trials_table(study: optuna.Study, *, params: bool = True) -> pa.Table:
    """One row per trial: state, objectives (by metric name), cost breakdown, per-layer lists,
    densities, architecture JSON; with ``params`` one ``param_<name>`` column per parameter."""
    names = list(study.metric_names or [f"value_{i}" for i in range(len(study.directions))])
    trials = study.get_trials(deepcopy=False)
    front = {t.number for t in front_trials(study)}
    rows = [_row(t, names, front) for t in trials]
    fields = _SCHEMA_FIXED + [(n, pa.float64()) for n in names] + _SCHEMA_TAIL
    columns: dict[str, Any] = {
        name: pa.array([r[name] for r in rows], type=typ) for name, typ in fields
    }
    if params:
        keys = sorted({k for t in trials for k in t.params})
        for k in keys:
            vals = [t.params.get(k) for t in trials]
            columns[f"param_{k}"] = pa.array(vals)
    return pa.table(columns)
