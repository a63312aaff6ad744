from __future__ import annotations

import json

import optuna
import pyarrow.parquet as pq
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
