from __future__ import annotations

import json

import optuna
import pyarrow.parquet as pq
import pytest
from optuna.trial import TrialState

from bitnas.search import Problem, dominates, front_trials, optimize, pareto_mask, trials_table
from bitnas.spaces import Budget
from tests.conftest import SpyEvaluator, small_space


def _study(budget=50_000, n=15):
    problem = Problem(space=small_space(), evaluator=SpyEvaluator(), budget=Budget(budget))
    study = optuna.create_study(
        directions=problem.directions, sampler=optuna.samplers.RandomSampler(seed=4)
    )
    study.set_metric_names(problem.metric_names)
    optimize(study, problem, n, progress=False)
    return study


def test_table_has_one_row_per_trial_and_round_trips_through_parquet(tmp_path):
    study = _study()
    table = trials_table(study)
    assert table.num_rows == len(study.trials)
    assert table.column("number").to_pylist() == [t.number for t in study.trials]
    for col in ("val_accuracy", "bitops", "state", "densities", "layer_bitops", "architecture"):
        assert col in table.column_names
    path = tmp_path / "t.parquet"
    pq.write_table(table, path)
    back = pq.read_table(path)
    assert back.equals(table)
    rows = back.to_pylist()
    for t, row in zip(study.trials, rows, strict=True):
        assert row["state"] == t.state.name
        assert json.loads(row["params_json"]) == t.params
        if t.state == TrialState.COMPLETE:
            assert row["val_accuracy"] == t.values[0] and row["bitops"] == t.values[1]
            assert row["densities"] == t.user_attrs["densities"]
        for k, v in t.params.items():
            assert row[f"param_{k}"] == v


def test_front_is_feasible_non_dominated_and_unique():
    study = _study()
    front = front_trials(study)
    assert front
    vals = [t.values for t in front]
    assert pareto_mask(vals, ["maximize", "minimize"]).all()
    assert all(t.constraints[Budget.CONSTRAINT] <= 0 for t in front)
    assert len({t.user_attrs["arch_key"] for t in front}) == len(front)
    assert [v[1] for v in vals] == sorted(v[1] for v in vals)
    # every complete trial off the front is dominated by, or equal to, a front point
    on_front = {t.number for t in front}
    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        if t.number not in on_front:
            assert any(
                f.values == t.values or dominates(f.values, t.values, ["maximize", "minimize"])
                for f in front
            ), t.number


def test_front_layers_add_the_front_of_the_rest_layer_by_layer():
    study = _study(n=30)
    front = front_trials(study)
    two = front_trials(study, layers=2)
    assert [t.number for t in two[: len(front)]] == [t.number for t in front]
    second = two[len(front) :]
    assert second, "30 random trials leave a second layer"
    assert [t.values[1] for t in second] == sorted(t.values[1] for t in second)
    assert all(t.constraints[Budget.CONSTRAINT] <= 0 for t in second)
    # the second layer is the front of the feasible trials once the first is removed
    keys = {t.user_attrs["arch_key"] for t in front}
    rest = {}
    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        if t.constraints[Budget.CONSTRAINT] <= 0 and t.user_attrs["arch_key"] not in keys:
            rest.setdefault(t.user_attrs["arch_key"], t)
    vals = [t.values for t in rest.values()]
    expected = [
        t.number
        for t, m in zip(rest.values(), pareto_mask(vals, ["maximize", "minimize"]), strict=True)
        if m
    ]
    assert sorted(t.number for t in second) == sorted(expected)
    with pytest.raises(ValueError, match="layers"):
        front_trials(study, layers=0)


def test_parquet_keeps_the_documented_schema_and_nested_layers(tmp_path):
    import pandas as pd
    import pyarrow as pa

    from bitnas.search.export import LAYER_TYPE, SCHEMA_VERSION, trials_schema, write_parquet

    study = _study(n=12)
    table = trials_table(study)
    # the documented columns, in order, then one column per parameter
    fixed = trials_schema(["val_accuracy", "bitops"])
    assert table.schema.names[: len(fixed)] == fixed.names
    assert all(table.schema.field(f.name).type == f.type for f in fixed)
    assert table.schema.field("layers").type == pa.list_(LAYER_TYPE)
    assert {n for n in table.schema.names[len(fixed) :]} == {
        f"param_{k}" for t in study.trials for k in t.params
    }

    path = tmp_path / "t.parquet"
    write_parquet(table, path)
    back = pq.read_table(path)
    assert back.equals(table)
    assert back.schema.metadata[b"bitnas.schema"] == SCHEMA_VERSION.encode()
    # pandas reads the same data: converting its frame back gives the table unchanged
    df = pd.read_parquet(path)
    assert pa.Table.from_pandas(df, schema=table.schema, preserve_index=False).equals(table)

    rows = back.to_pylist()
    assert len(rows) == len(study.trials)
    rejected = 0
    for t, row in zip(study.trials, rows, strict=True):
        ua = t.user_attrs
        assert (row["number"], row["state"]) == (t.number, t.state.name)
        assert json.loads(row["params_json"]) == t.params
        if t.values is not None:
            assert [row["val_accuracy"], row["bitops"]] == t.values
        arch = json.loads(ua["architecture"])
        layers = row["layers"]
        assert [(x["kind"], x["in_ch"], x["out_ch"], x["wbits"], x["abits"]) for x in layers] == [
            (a["kind"], a["in_ch"], a["out_ch"], a["wbits"], a["abits"]) for a in arch["layers"]
        ]
        assert [x["macs"] for x in layers] == ua["cost"]["macs"]
        assert [x["bitops"] for x in layers] == ua["cost"]["layer_bitops"]
        assert sum(x["bitops"] for x in layers) == ua["cost"]["bitops"]
        if "densities" in ua:
            assert [x["density"] for x in layers] == ua["densities"]
        else:  # never trained (rejected): no measured density
            assert all(x["density"] is None for x in layers)
        if "rejected" in ua:
            rejected += 1
            assert row["feasible"] is False and row["state"] == "PRUNED"
    assert rejected, "the test study must hold rejected trials"


def test_csv_flattens_nested_columns_to_json(tmp_path):
    import pandas as pd

    from bitnas.search.export import write_csv

    study = _study(n=8)
    table = trials_table(study)
    path = tmp_path / "t.csv"
    write_csv(table, path)
    assert path.read_text().splitlines()[0].startswith("number,state,feasible,")
    df = pd.read_csv(path, dtype_backend="pyarrow")
    assert list(df.columns) == table.column_names
    assert df["number"].tolist() == table.column("number").to_pylist()
    assert df["state"].tolist() == table.column("state").to_pylist()
    for i, row in enumerate(table.to_pylist()):
        assert json.loads(df["layers"][i]) == row["layers"]
        assert json.loads(df["wbits"][i]) == row["wbits"]
        if row["bitops"] is not None:
            assert df["bitops"][i] == row["bitops"]
            assert df["val_accuracy"][i] == pytest.approx(row["val_accuracy"], rel=1e-12)
        else:
            assert pd.isna(df["bitops"][i])
