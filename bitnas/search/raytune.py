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

Early stopping (``Problem.stopper``) is decided in the driver too, by a Tune scheduler
(``_StopperScheduler``): every epoch a worker reports reaches the controller before the
worker may go on (a function trainable's ``tune.report`` blocks until the controller asks for
the next result, and this scheduler turns result buffering off), so the scheduler records the
epoch as the trial's intermediate value and asks the stopper with the study's completed trials
as they are at that moment, read from the storage after each trial finishes. A STOP ends the
worker at that epoch, and the trial is told PRUNED. Workers thus never read the storage (a
SQLite file on the driver's disk still serves a cluster), and nothing is decided on a stale
snapshot shipped with the trial's config.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
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
from bitnas.search.sharing import SharedStudy
from bitnas.search.stopping import Reference
from bitnas.search.trials import (
    ATTR_STOPPED,
    FALLBACK_AFTER,
    Proposal,
    propose,
    sampler_exhausted,
    stopped_early,
    study_target,
    tell_duplicate,
    tell_failure,
    tell_result,
)
from bitnas.search.view import StudyView
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
            target: int | None = None,
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
            # proposals of an architecture that is training right now: answered from that
            # trial when it completes, trained after all if it fails
            self.held: dict[str, list[Proposal]] = {}
            self.requeued: list[Proposal] = []
            self.errored: dict[str, Proposal] = {}
            # the study's totals, kept current by reading only what changed (see view.py)
            self.view = StudyView(study, problem.stopper.active)
            # the target is the study's: other drivers (or local runs) may share it
            self.shared = SharedStudy(
                study,
                self.view,
                study_target(self.view.finished, n_trials, target),
                problem.stopper.active,
            )
            self.done = self.failures = self.duplicates = 0
            self.unseen = False
            self.exhausted = False
            self.fatal: str | None = None
            self._curves: dict[str, dict[int, float]] = {}
            self._stopped: dict[str, str] = {}
            self.references: list[Reference] = []
            self._refresh_references()

        def _refresh_references(self) -> None:
            if self.problem.stopper.active:
                self.view.refresh()
                self.references = self.view.references()

        def busy(self) -> bool:
            return bool(self.pending or self.held or self.requeued or self.errored)

        def _next(self) -> Proposal | None:
            if self.requeued:
                return self.requeued.pop(0)
            in_flight = {p.arch.key() for p in self.pending.values()}
            while True:
                # a sampler that keeps proposing architectures the study has: every
                # FALLBACK_AFTER-th repeat in a row, an unseen one (see trials.py)
                self.view.refresh()
                p = propose(
                    self.study,
                    self.problem,
                    self.view.trained,
                    self.unseen,
                    n_trials=self.view.n_trials,
                    avoid=self.view.not_to_draw() if self.unseen else None,
                )
                self.unseen = False
                key = p.arch.key()
                if p.duplicate_of is None and key not in in_flight:
                    what, twin = self.shared.twin(p)  # trained, or under way, in another run?
                    if what == "train":
                        self.duplicates = 0
                        return p
                    assert twin is not None
                    if what == "busy":
                        self.shared.leave_to(p, twin)
                    else:
                        p = Proposal(p.trial, p.arch, p.cost, twin)
                if p.duplicate_of is not None:
                    tell_duplicate(self.study, p)
                elif key in in_flight:
                    self.held.setdefault(key, []).append(p)
                self.duplicates += 1
                self.unseen = self.duplicates % FALLBACK_AFTER == 0
                if self.duplicates >= MAX_CONSECUTIVE_DUPLICATES or sampler_exhausted(self.study):
                    self.exhausted = True
                    return None

        def suggest(self, trial_id: str) -> dict[str, Any] | None:  # or Searcher.FINISHED
            if len(self.pending) >= self.max_concurrent and not self.fatal:
                return None
            shared = self.shared
            shared.look()
            if self.fatal or self.exhausted or shared.reached():
                return Searcher.FINISHED if not self.busy() else None  # type: ignore[return-value]
            if not shared.room(len(self.pending)):
                # a trial of this run under way may still fail and need replacing: wait for
                # it; trials of other runs only: they replace their own failures (sharing.py)
                return None if self.busy() else Searcher.FINISHED  # type: ignore[return-value]
            p = self._next()
            if p is None:
                return Searcher.FINISHED if not self.busy() else None  # type: ignore[return-value]
            if shared.spare(p, len(self.pending)):
                return None  # another run's trial, asked first, takes the last place
            self.pending[trial_id] = p
            p.trial.set_user_attr("backend", "ray")
            return {"arch": p.arch.to_json(), "number": p.trial.number}

        def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
            self._record(trial_id, result)

        def _record(self, trial_id: str, result: dict[str, Any]) -> int | None:
            """Keep an epoch's objective (in the curve and as the trial's intermediate
            value); returns the epoch, None for a result that is not an epoch report."""
            objective = self.problem.evaluator.objective
            p = self.pending.get(trial_id)
            if p is None or objective not in result or "bitnas_result" in result:
                return None
            # keyed by epoch: a retried trial reports its epochs again
            curve = self._curves.setdefault(trial_id, {})
            step = int(result.get("epoch", len(curve) + 1))
            curve[step] = float(result[objective])
            p.trial.storage.set_trial_intermediate_value(p.trial._trial_id, step, curve[step])
            return step

        def should_stop(self, trial_id: str, result: dict[str, Any]) -> bool:
            """Record an epoch result and ask the stopper (called by ``_StopperScheduler``)."""
            step = self._record(trial_id, result)
            if step is None or not self.problem.stopper.active:
                return False
            curve = self._curves[trial_id]
            values = [curve.get(e, float("nan")) for e in range(1, step + 1)]
            cost = self.pending[trial_id].cost
            why = self.problem.stopper.stop_reason(step, values, cost, self.references)
            if why is not None:
                self._stopped[trial_id] = why
            return why is not None

        def on_trial_complete(
            self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
        ) -> None:
            p = self.pending.pop(trial_id, None)
            if p is None:
                return
            if error and not result:  # Tune's callback brings the error text next
                self.errored[trial_id] = p
                return
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
                self._set_curve(trial_id, p)
                try:
                    ft = tell_result(self.study, self.problem, p, r)
                except EvaluationError as e:  # e.g. a non-finite objective
                    ft = tell_failure(self.study, p, e)
            elif "bitnas_error" in result:
                p.trial.set_user_attr("traceback", result.get("bitnas_traceback", ""))
                ft = tell_failure(self.study, p, _RemoteFailure(result["bitnas_error"]))
            elif error:
                ft = tell_failure(self.study, p, _RemoteFailure("the trial's Ray worker failed"))
            else:  # stopped by a Tune scheduler (the stopper) before the evaluator returned
                epochs = len(self._curves.get(trial_id, {}))
                self._set_curve(trial_id, p)
                p.trial.set_user_attr("epochs", epochs)
                if trial_id in self._stopped:
                    p.trial.set_user_attr(ATTR_STOPPED, self._stopped.pop(trial_id))
                ft = self.study.tell(p.trial, state=TrialState.PRUNED)
            self._finished(p, ft)

        def fail_with(self, trial_id: str, text: str) -> None:
            """Tell a trial whose worker failed (after Tune's retries) FAIL with Ray's error."""
            p = self.errored.pop(trial_id, None)
            if p is not None:
                self._finished(p, tell_failure(self.study, p, _RemoteFailure(text)))

        def _set_curve(self, trial_id: str, p: Proposal) -> None:
            curve = self._curves.pop(trial_id, {})
            p.trial.set_user_attr("curve", [curve[e] for e in sorted(curve)])

        def _finished(self, p: Proposal, ft: optuna.trial.FrozenTrial) -> None:
            self.progress.update(ft)
            self.shared.changed()
            if ft.state == TrialState.COMPLETE:
                self._refresh_references()
            twins = self.held.pop(p.arch.key(), [])
            if ft.state == TrialState.COMPLETE:
                for twin in twins:
                    tell_duplicate(self.study, Proposal(twin.trial, twin.arch, twin.cost, ft))
            elif ft.state == TrialState.FAIL:  # the same architecture would fail again
                why = _RemoteFailure(f"not trained: the same architecture failed in #{ft.number}")
                for twin in twins:
                    tell_failure(self.study, twin, why)
            elif self.problem.stopper.active and stopped_early(ft):  # the twins would be too
                for twin in twins:
                    tell_duplicate(self.study, Proposal(twin.trial, twin.arch, twin.cost, ft))
            else:
                self.requeued.extend(twins)
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

        def close_open(self, reason: str) -> None:
            """Close every trial Tune never finished (the run ended early) as FAIL."""
            open_ = [*self.pending.values(), *self.errored.values(), *self.requeued]
            open_ += [p for twins in self.held.values() for p in twins]
            for p in open_:
                # a trial closed by another run in the meantime is already finished
                with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                    tell_failure(self.study, p, _RemoteFailure(reason))
            self.pending.clear()
            self.errored.clear()
            self.requeued.clear()
            self.held.clear()

        # Tune saves its searcher with the experiment state; the study and the open trials
        # live in the storage, not in that pickle.
        def __getstate__(self) -> dict[str, Any]:
            return {"n_trials": self.n_trials, "done": self.done}

    return BitnasSearcher


def _stopper_scheduler(searcher: Any) -> Any:
    from ray.tune.schedulers import FIFOScheduler, TrialScheduler

    class _StopperScheduler(FIFOScheduler):
        """Runs trials in order (FIFO) and stops those the study's stopper gives up on."""

        # each epoch must reach the stopper before the worker trains the next one
        _supports_buffered_results = False

        def __init__(self) -> None:
            super().__init__()  # type: ignore[no-untyped-call]

        def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
            if searcher.should_stop(trial.trial_id, result):
                return str(TrialScheduler.STOP)
            return str(TrialScheduler.CONTINUE)

    return _StopperScheduler()


def _error_callback(searcher: Any) -> Any:
    from ray.tune import Callback

    class _ErrorText(Callback):
        """Hands Ray's error of a finally failed trial (after retries) to the searcher."""

        def on_trial_error(
            self, iteration: int, trials: list[Any], trial: Any, **info: Any
        ) -> None:
            err = trial.get_error()
            text = str(err).strip().splitlines()[-1] if err else "the trial's Ray worker failed"
            searcher.fail_with(trial.trial_id, f"Ray worker failed: {text}"[:2000])

    return _ErrorText()


def _trial_name(trial: Any) -> str:
    # Tune's default puts the whole config (an architecture JSON) into names and folders
    return f"trial_{trial.trial_id}"


def _concurrency(settings: RaySettings, cluster: dict[str, float]) -> int:
    """Trials that fit at once: what the user asked, else what every requested resource
    allows. A trial no part of the cluster can host is a SpecError, not a silent hang."""
    fits = []
    for name, key in (("cpus_per_trial", "CPU"), ("gpus_per_trial", "GPU")):
        need = getattr(settings, name)
        have = float(cluster.get(key, 0.0))
        if need > 0:
            if need > have:
                raise SpecError(
                    f"`{name}` is {need:g} but the Ray cluster has {have:g} {key} in all: no "
                    "trial could ever start (lower it in [ray], or add nodes)"
                )
            fits.append(int(have // need))
    return settings.max_concurrent or max(1, min(fits))


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


def _reachable(address: str) -> None:
    """Fail fast on a HOST:PORT that does not answer (ray.init would wait a long time)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or "://" in address:
        return
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise SpecError(f"no Ray cluster answers at --address {address}: {e}") from None


def _init_ray(address: str) -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Tune's SIGINT handler turns Ctrl-C into a normal return of fit(): a run would then
    # look finished; let KeyboardInterrupt through instead
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    # Tune's per-trial CSV/JSON/TensorBoard loggers cost time per trial and duplicate what the
    # study records.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # the newer console output prints status tables even at verbose=0
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray

    if ray.is_initialized():
        return
    if address and address != "auto":
        _reachable(address)
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
        if _is_auth_error(e):
            raise SpecError(f"cannot join Ray at {where}: {AUTH_HINT}") from None
        raise SpecError(f"cannot start or join Ray at {where}: {type(e).__name__}: {e}") from None


#: What to do when a cluster with token authentication (Ray 2.60's default for clusters
#: started with `ray start`) is joined from a shell without the token.
AUTH_HINT = (
    "the cluster requires an authentication token (Ray's token authentication, on by default "
    "since Ray 2.60) and this shell has none. On the head's machine run "
    "`export RAY_AUTH_TOKEN=$(ray get-auth-token)` (or `export RAY_AUTH_MODE=token`, which reads "
    "~/.ray/auth_token); elsewhere set RAY_AUTH_TOKEN to the head's token. The same applies "
    "to `ray job submit` (README.md, 'On Ray')"
)


def _is_auth_error(e: BaseException) -> bool:
    text = f"{type(e).__name__}: {e}".lower()
    return "authentication" in text or "auth_token" in text or "unauthenticated" in text


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
            bar.close()
    if searcher.fatal:
        raise EvaluationError(searcher.fatal)
    # what this driver added: its own new trials, not those of other runs sharing the study
    searcher.view.refresh()
    added: dict[str, int] = searcher.view.added()
    added["exhausted"] = int(searcher.exhausted)
    return added
