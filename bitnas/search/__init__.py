"""Search: samplers, the trial protocol joining space + budget + evaluator, runners, fronts."""

from __future__ import annotations

from collections.abc import Callable

import optuna

from bitnas._registry import Registry
from bitnas.search.coordination import close_abandoned, closed_so_far
from bitnas.search.export import front_trials, trials_table
from bitnas.search.local import run_local
from bitnas.search.pareto import dominates, pareto_mask
from bitnas.search.problem import OBJECTIVE_COST, Problem
from bitnas.search.raytune import RaySettings, run_ray
from bitnas.search.records import counts
from bitnas.search.samplers import SAMPLERS, make_sampler
from bitnas.search.stopping import STOPPERS, ParetoStopper, Stopper, make_stopper
from bitnas.search.storage import create_or_load_study, load_study, open_storage

Backend = Callable[..., dict[str, int]]
#: Backend name -> runner ``f(study, problem, n_trials, *, progress, target=None) -> added
#: counts`` (``target`` is passed only where a caller fixed the study's total).
BACKENDS: Registry[Backend] = Registry("backend")
BACKENDS.add("local", run_local)
BACKENDS.add("ray", run_ray)


def optimize(
    study: optuna.Study,
    problem: Problem,
    n_trials: int,
    *,
    backend: str = "local",
    progress: bool = True,
    target: int | None = None,
    **options: object,
) -> dict[str, int]:
    """Run ``n_trials`` more finished trials of ``problem`` on ``study`` with ``backend``
    (``options`` go to the backend, e.g. ``settings=RaySettings(...)`` for "ray").

    ``target``: the study's total of finished trials to stop at, where the caller derived
    ``n_trials`` from it: a study that other runs share gains trials while this one starts
    (see ``coordination.study_target``)."""
    runner = BACKENDS.get(backend)
    problem.check_feasible()
    # on Ray, workers check their own device and load their data; with nothing to train (a
    # study, or a sweep cell, already at its target) there is no data to load
    if backend == "local" and n_trials > 0:
        problem.evaluator.prepare()
    closed = closed_so_far()
    close_abandoned(study)
    if target is not None:
        options["target"] = target
    added = runner(study, problem, n_trials, progress=progress, **options)
    # trials a dead earlier run left RUNNING, closed by this run (here or while it ran)
    added["closed"] = closed_so_far() - closed
    return added


__all__ = [
    "BACKENDS",
    "OBJECTIVE_COST",
    "RaySettings",
    "SAMPLERS",
    "STOPPERS",
    "ParetoStopper",
    "Problem",
    "Stopper",
    "counts",
    "create_or_load_study",
    "dominates",
    "front_trials",
    "load_study",
    "make_sampler",
    "make_stopper",
    "open_storage",
    "optimize",
    "pareto_mask",
    "run_local",
    "run_ray",
    "trials_table",
]
