"""The Ray backend: bitnas trials run as Ray Tune trials; the study stays in the driver's storage.

Tune drives the workers (placement, resources per trial, retries of dead workers, schedulers);
a Tune ``Searcher`` (``bitnas.search.ray_searcher``) bridges it to bitnas's own trial protocol
(``bitnas.search.trials``), so a Ray run records exactly what a local run records: budget
rejections, duplicates, failures with their errors, PRUNED for early-stopped trials.

Only the driver touches the storage (the searcher runs in the Tune controller, in the driver's
process): workers receive an architecture and send back metrics. So a SQLite file on the
driver's disk works for a whole cluster; several drivers on one study need a database URL.

Early stopping (``Problem.stopper``) is decided in the driver too, by a Tune scheduler
(``bitnas.search.ray_searcher``). Settings and joining the cluster: ``bitnas.search.ray_cluster``.
"""

from __future__ import annotations

import json
import logging
import tempfile
import traceback
from dataclasses import asdict
from typing import Any

import optuna

from bitnas.errors import EvaluationError, SpecError
from bitnas.evaluators._base import Evaluator
from bitnas.search.problem import Problem
from bitnas.search.progress import Progress
from bitnas.search.ray_cluster import (
    AUTH_HINT,
    RaySettings,
    _concurrency,
    _init_ray,
    _is_auth_error,
    _reachable,
)
from bitnas.search.ray_searcher import (
    _error_callback,
    _RemoteFailure,
    _searcher_class,
    _stopper_scheduler,
)
from bitnas.spaces.architecture import Architecture

__all__ = [
    "RaySettings",
    "run_ray",
    # moved to bitnas.search.ray_cluster and bitnas.search.ray_searcher, still importable here
    "AUTH_HINT",
    "_RemoteFailure",
    "_concurrency",
    "_error_callback",
    "_init_ray",
    "_is_auth_error",
    "_reachable",
    "_searcher_class",
    "_stopper_scheduler",
]


def _trainable(config: dict[str, Any], evaluator: Evaluator, seed: int) -> None:
    """Runs on a Ray worker: evaluate one architecture, report per epoch, then the result.

    Exceptions are reported, not raised, so their text reaches the study; only a dead worker
    (or Ctrl-C) surfaces as a Tune error, which Tune retries.
    """
    from ray import tune

    arch = Architecture.from_json(config["arch"])

    def report(step: int, metrics: Any) -> bool:
        tune.report({"epoch": step, **{k: float(v) for k, v in metrics.items()}})
        return False

    try:
        result = evaluator.evaluate(arch, seed=seed, report=report)
    except Exception as e:
        tune.report(
            {
                "bitnas_error": f"{type(e).__name__}: {e}",
                "bitnas_traceback": "".join(traceback.format_exception(e)[-6:])[-4000:],
            }
        )
        return
    payload = {**asdict(result), "metrics": dict(result.metrics), "info": dict(result.info)}
    tune.report({"epoch": result.epochs, **result.metrics, "bitnas_result": json.dumps(payload)})


def _trial_name(trial: Any) -> str:
    # Tune's default puts the whole config (an architecture JSON) into names and folders
    return f"trial_{trial.trial_id}"


def _for_workers(evaluator: Evaluator, settings: RaySettings) -> Evaluator:
    """The evaluator as workers run it: ``device = "auto"`` uses a GPU only when the trial
    reserved one (Ray does not hide unreserved GPUs from a worker). [limits] caps travel
    with the evaluator and are enforced inside each Ray task, per trial (Ray's own memory
    monitor watches a whole node, not one trial)."""
    import dataclasses

    from bitnas.evaluators.limits import LimitedEvaluator
    from bitnas.evaluators.trained import TrainedEvaluator

    if isinstance(evaluator, LimitedEvaluator):
        return dataclasses.replace(evaluator, inner=_for_workers(evaluator.inner, settings))

    if not isinstance(evaluator, TrainedEvaluator):
        return evaluator
    device = evaluator.train.device
    if device.startswith("cuda") and settings.gpus_per_trial <= 0:
        raise SpecError(
            f'[train] `device` is "{device}" but [ray] `gpus_per_trial` is 0: reserve GPUs for '
            'the trials, or use device = "auto" or "cpu"'
        )
    if device == "auto" and settings.gpus_per_trial <= 0:
        return dataclasses.replace(
            evaluator, train=dataclasses.replace(evaluator.train, device="cpu")
        )
    return evaluator


def run_ray(
    study: optuna.Study,
    problem: Problem,
    n_trials: int,
    *,
    progress: bool = True,
    settings: RaySettings | None = None,
    target: int | None = None,
) -> dict[str, int]:
    """Run ``n_trials`` more finished trials on Ray Tune (or until the study holds ``target``
    finished trials, where given); returns the counts of what was added."""
    settings = settings or RaySettings()
    _init_ray(settings.address)
    import ray
    from ray import tune

    limit = _concurrency(settings, ray.cluster_resources())  # type: ignore[no-untyped-call]
    bar = Progress(n_trials, enabled=progress)
    searcher = _searcher_class()(study, problem, n_trials, limit, bar, target)
    resources = {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial}
    evaluator = _for_workers(problem.evaluator, settings)
    trainable = tune.with_resources(
        tune.with_parameters(_trainable, evaluator=evaluator, seed=problem.seed), resources
    )
    # Tune's own INFO/WARNING lines (result files, status tables) are not for bitnas users:
    # the study and the progress bar say what happened.
    logging.getLogger("ray.tune").setLevel(logging.ERROR)
    logging.getLogger("ray.train").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="bitnas-tune-") as tmp:
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=_stopper_scheduler(searcher),
                num_samples=-1,
                max_concurrent_trials=limit,
                reuse_actors=True,
                trial_name_creator=_trial_name,
                trial_dirname_creator=_trial_name,
            ),
            run_config=tune.RunConfig(
                name=f"bitnas-{study.study_name}",
                storage_path=tmp,
                failure_config=tune.FailureConfig(max_failures=settings.max_failures),
                verbose=0,
                callbacks=[_error_callback(searcher)],
            ),
        )
        try:
            tuner.fit()
        finally:
            searcher.close_open("interrupted: the Ray run ended before this trial finished")
            searcher.view.close()
            bar.close()
    if searcher.fatal:
        raise EvaluationError(searcher.fatal)
    # what this driver added: its own new trials, not those of other runs sharing the study
    searcher.view.refresh()
    added: dict[str, int] = searcher.view.added()
    added["exhausted"] = int(searcher.exhausted)
    return added
