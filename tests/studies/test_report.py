from __future__ import annotations

import optuna

from bitnas.search import Problem, optimize
from bitnas.spaces import Budget
from bitnas.studies.report import format_counts, format_front
from tests.conftest import SpyEvaluator, small_space


def test_format_counts_names_every_outcome():
    text = format_counts(
        {"finished": 5, "complete": 4, "pruned": 1, "failed": 2, "duplicate": 3, "rejected": 7}
    )
    assert text == (
        "5 finished trials (4 complete, 1 pruned), 2 failed (a re-run retries them), "
        "3 repeated proposals answered from earlier trials, 7 over budget, not trained"
    )


def test_format_front_lists_the_front_cheapest_first():
    problem = Problem(space=small_space(), evaluator=SpyEvaluator(), budget=Budget(50_000))
    study = optuna.create_study(
        directions=problem.directions, sampler=optuna.samplers.RandomSampler(seed=0)
    )
    study.set_metric_names(problem.metric_names)
    assert "empty" in format_front(study)
    optimize(study, problem, 10, progress=False)
    lines = format_front(study, budget=50_000).splitlines()
    assert lines[0].startswith("feasible Pareto front (budget 50,000 BitOps):")
    assert lines[1].split()[:4] == ["trial", "val_accuracy", "test_acc", "bitops"]
    costs = [int(line.split()[3].replace(",", "")) for line in lines[3:]]
    assert costs == sorted(costs) and all(c <= 50_000 for c in costs)
    accs = [float(line.split()[1]) for line in lines[3:]]
    assert accs == sorted(accs)  # along a front, more cost must buy more accuracy
