"""Search: samplers, the trial protocol joining space + budget + evaluator, runners, fronts."""

from __future__ import annotations

from collections.abc import Callable

import optuna

from bitnas._registry import Registry
from bitnas.search.export import front_trials, trials_table
from bitnas.search.local import run_local
from bitnas.search.pareto import dominates, pareto_mask
from bitnas.search.problem import OBJECTIVE_COST, Problem
from bitnas.search.samplers import SAMPLERS, make_sampler
from bitnas.search.storage import create_or_load_study, load_study, open_storage
from bitnas.search.trials import counts

Backend = Callable[..., dict[str, int]]
#: Backend name -> runner ``f(study, problem, n_trials, *, progress) -> added counts``.
BACKENDS: Registry[Backend] = Registry("backend")
BACKENDS.add("local", run_local)


def optimize(
    study: optuna.Study,
    problem: Problem,
    n_trials: int,
    *,
    backend: str = "local",
    progress: bool = True,
) -> dict[str, int]:
    """Run ``n_trials`` more finished trials of ``problem`` on ``study`` with ``backend``."""
    runner = BACKENDS.get(backend)
    problem.check_feasible()
    problem.evaluator.prepare()
    return runner(study, problem, n_trials, progress=progress)


__all__ = [
    "BACKENDS",
    "OBJECTIVE_COST",
    "SAMPLERS",
    "Problem",
    "counts",
    "create_or_load_study",
    "dominates",
    "front_trials",
    "load_study",
    "make_sampler",
    "open_storage",
    "optimize",
    "pareto_mask",
    "run_local",
    "trials_table",
]
