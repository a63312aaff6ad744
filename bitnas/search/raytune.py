"""The Ray backend: bitnas trials run as Ray Tune trials; the study stays in the driver's storage.

Tune drives the workers (placement, resources per trial, retries of dead workers, schedulers);
a Tune ``Searcher`` bridges it to bitnas's own trial protocol (``bitnas.search.trials``), so a
Ray run records exactly what a local run records: budget rejections, duplicates, failures with
their errors, PRUNED for early-stopped trials. Ray's own ``OptunaSearch`` is not used: it keeps a
study of its own, tells errors as PRUNED, cannot reject an over-budget proposal before it runs,
and without a concurrency limit runs one trial at a time.

Only the driver touches the storage (the searcher runs in the Tune controller, in the driver's
process): workers receive an architecture and send back metrics. So a SQLite file on the
driver's disk works for a whole cluster; several drivers on one study need a database URL.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import traceback
from dataclasses import asdict, dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from bitnas.errors import EvaluationError, SpecError
from bitnas.evaluators._base import EvalResult, Evaluator
from bitnas.search.local import MAX_CONSECUTIVE_DUPLICATES, MAX_CONSECUTIVE_FAILURES
from bitnas.search.problem import Problem
from bitnas.search.progress import Progress
from bitnas.search.trials import (
    Proposal,
    counts,
    evaluated_keys,
    propose,
    tell_duplicate,
    tell_failure,
    tell_result,
)
from bitnas.spaces.architecture import Architecture

__all__ = ["RaySettings", "run_ray"]


@dataclass(frozen=True)
class RaySettings:
    """[ray] in a study file: where and how trials run on Ray.

    ``address``: "" starts a local Ray with this machine's CPUs (or joins the cluster of a
    ``ray job``), "auto" or HOST:PORT joins a running cluster. ``max_concurrent``: 0 means as
    many as the cluster's CPUs allow at ``cpus_per_trial``. ``max_failures``: how often Tune
    restarts a trial whose worker died before the trial is recorded FAIL.
    """

    address: str = ""
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int = 0
    max_failures: int = 2

    def __post_init__(self) -> None:
        if not isinstance(self.address, str):
            raise SpecError(f"`address` must be a string, got {self.address!r}", field="address")
        for name in ("cpus_per_trial", "gpus_per_trial"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise SpecError(f"`{name}` must be a number >= 0, got {v!r}", field=name)
        if self.cpus_per_trial == 0 and self.gpus_per_trial == 0:
            raise SpecError("a trial needs `cpus_per_trial` or `gpus_per_trial` above 0")
        for name in ("max_concurrent", "max_failures"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise SpecError(f"`{name}` must be an integer >= 0, got {v!r}", field=name)


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


class _RemoteFailure(Exception):
    """An evaluator error raised on a worker, carried back as text."""


def _searcher_class() -> type:
    from ray.tune.search import Searcher

    class BitnasSearcher(Searcher):
        """Tune searcher over a bitnas study (see the module docstring)."""

        def __init__(
            self,
            study: optuna.Study,
            problem: Problem,
            n_trials: int,
            max_concurrent: int,
            progress: Progress,
        ) -> None:
            # no metric for Tune: results are told to the study here, and a scheduler that
            # wants one gets it from TuneConfig
            super().__init__()
            self.study = study
            self.problem = problem
            self.n_trials = n_trials
            self.max_concurrent = max_concurrent
            self.progress = progress
            self.pending: dict[str, Proposal] = {}
            self.seen = evaluated_keys(study.get_trials(deepcopy=False))
            self.done = self.failures = self.duplicates = 0
            self.exhausted = False
            self.fatal: str | None = None
            self._curves: dict[str, list[float]] = {}

        def suggest(self, trial_id: str) -> dict[str, Any] | None:  # or Searcher.FINISHED
            if self.fatal or self.exhausted or self.done >= self.n_trials:
                return Searcher.FINISHED if not self.pending else None  # type: ignore[return-value]
            if self.done + len(self.pending) >= self.n_trials:
                return None  # wait: a running trial may still fail and need replacing
            if len(self.pending) >= self.max_concurrent:
                return None
            while True:
                p = propose(self.study, self.problem, self.seen)
                if p.duplicate_of is None:
                    break
                tell_duplicate(self.study, p)
                self.duplicates += 1
                if self.duplicates >= MAX_CONSECUTIVE_DUPLICATES:
                    self.exhausted = True
                    return Searcher.FINISHED if not self.pending else None  # type: ignore[return-value]
            self.duplicates = 0
            self.pending[trial_id] = p
            p.trial.set_user_attr("backend", "ray")
            return {"arch": p.arch.to_json(), "number": p.trial.number}

        def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
            p = self.pending.get(trial_id)
            objective = self.problem.evaluator.objective
            if p is not None and objective in result and "bitnas_result" not in result:
                self._curves.setdefault(trial_id, []).append(float(result[objective]))

        def on_trial_complete(
            self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
        ) -> None:
            p = self.pending.pop(trial_id, None)
            if p is None:
                return
            curve = self._curves.pop(trial_id, [])
            result = result or {}
            if "bitnas_result" in result and not error:
                data = json.loads(result["bitnas_result"])
                r = EvalResult(
                    metrics=data["metrics"],
                    densities=data["densities"],
                    spike_rates=data["spike_rates"],
                    epochs=data["epochs"],
                    stopped=data["stopped"],
                    info=data["info"],
                )
                p.trial.set_user_attr("curve", curve)
                try:
                    ft = tell_result(self.study, self.problem, p, r)
                except EvaluationError as e:  # e.g. a non-finite objective
                    ft = tell_failure(self.study, p, e)
            elif "bitnas_error" in result:
                ft = tell_failure(self.study, p, _RemoteFailure(result["bitnas_error"]))
                p.trial.set_user_attr("traceback", result.get("bitnas_traceback", ""))
            elif error:
                ft = tell_failure(
                    self.study,
                    p,
                    _RemoteFailure("the trial's Ray worker failed, and so did its retries"),
                )
            else:  # stopped by a Tune scheduler before the evaluator returned
                p.trial.set_user_attr("curve", curve)
                ft = self.study.tell(p.trial, state=TrialState.PRUNED)
            self.progress.update(ft)
            if ft.state == TrialState.FAIL:
                self.failures += 1
                if self.failures >= MAX_CONSECUTIVE_FAILURES:
                    self.fatal = (
                        f"{self.failures} trials failed in a row; the last one (#{ft.number}) "
                        f"with {ft.user_attrs.get('error')}"
                    )
                return
            self.failures = 0
            self.done += 1
            if ft.state == TrialState.COMPLETE:
                self.seen.setdefault(p.arch.key(), ft)

        def close_pending(self, reason: str) -> None:
            """Close trials Tune never finished (the run was interrupted) as FAIL."""
            for p in self.pending.values():
                tell_failure(self.study, p, _RemoteFailure(reason))
            self.pending.clear()

        # Tune saves its searcher with the experiment state; the study and the open trials
        # live in the storage, not in that pickle.
        def __getstate__(self) -> dict[str, Any]:
            return {"n_trials": self.n_trials, "done": self.done}

    return BitnasSearcher


def _trial_name(trial: Any) -> str:
    # Tune's default puts the whole config (an architecture JSON) into names and folders
    return f"trial_{trial.trial_id}"


def _init_ray(address: str) -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Tune's per-trial CSV/JSON/TensorBoard loggers cost time per trial and duplicate what the
    # study records.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # the newer console output prints status tables even at verbose=0
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray

    if ray.is_initialized():
        return
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        elif os.environ.get("RAY_ADDRESS"):  # inside `ray job submit`: join the job's cluster
            ray.init(log_to_driver=False)
        else:  # a private local Ray on this machine's CPUs, reachable on loopback only
            ray.init(
                log_to_driver=False,
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
                logging_level=logging.WARNING,
            )
    except Exception as e:  # ConnectionError, RuntimeError, ...: all mean "no cluster there"
        where = address or os.environ.get("RAY_ADDRESS", "a new local Ray")
        raise SpecError(f"cannot start or join Ray at {where}: {type(e).__name__}: {e}") from None


def run_ray(
    study: optuna.Study,
    problem: Problem,
    n_trials: int,
    *,
    progress: bool = True,
    settings: RaySettings | None = None,
) -> dict[str, int]:
    """Run ``n_trials`` more finished trials on Ray Tune; returns the counts of what was added."""
    settings = settings or RaySettings()
    _init_ray(settings.address)
    import ray
    from ray import tune

    before = counts(study.get_trials(deepcopy=False))
    cpus = float(ray.cluster_resources().get("CPU", 1))  # type: ignore[no-untyped-call]
    limit = settings.max_concurrent or max(1, int(cpus // max(settings.cpus_per_trial, 1e-9)))
    bar = Progress(n_trials, enabled=progress)
    searcher = _searcher_class()(study, problem, n_trials, limit, bar)
    resources = {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial}
    trainable = tune.with_resources(
        tune.with_parameters(_trainable, evaluator=problem.evaluator, seed=problem.seed), resources
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
            ),
        )
        try:
            tuner.fit()
        finally:
            searcher.close_pending("interrupted: the Ray run ended before this trial finished")
            bar.close()
    if searcher.fatal:
        raise EvaluationError(searcher.fatal)
    after = counts(study.get_trials(deepcopy=False))
    added = {k: after[k] - before.get(k, 0) for k in after}
    added["exhausted"] = int(searcher.exhausted)
    return added
