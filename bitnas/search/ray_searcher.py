"""The Ray backend's bitnas side in the driver: a Tune ``Searcher`` that asks and tells the
study's trials with bitnas's own trial protocol (``bitnas.search.trials``), and the Tune
scheduler and callback that feed it what Tune learns of each trial.

Ray's own ``OptunaSearch`` is not used: it keeps a study of its own, tells errors as PRUNED,
cannot reject an over-budget proposal before it runs, and without a concurrency limit runs one
trial at a time.

Early stopping (``Problem.stopper``) is decided in the driver, by a Tune scheduler
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
from typing import Any

import optuna
from optuna.trial import TrialState

from bitnas.errors import EvaluationError
from bitnas.evaluators._base import EvalResult
from bitnas.search.attr_writes import set_trial_attrs
from bitnas.search.coordination import study_target
from bitnas.search.local import MAX_CONSECUTIVE_DUPLICATES, MAX_CONSECUTIVE_FAILURES
from bitnas.search.problem import Problem
from bitnas.search.progress import Progress
from bitnas.search.records import ATTR_STOPPED, Proposal, stopped_early
from bitnas.search.sharing import SharedStudy
from bitnas.search.stopping import Reference
from bitnas.search.trials import (
    FALLBACK_AFTER,
    propose,
    sampler_exhausted,
    tell_duplicate,
    tell_failure,
    tell_result,
)
from bitnas.search.view import StudyView

__all__ = ["_RemoteFailure", "_error_callback", "_searcher_class", "_stopper_scheduler"]


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
                    attrs={"backend": "ray"},
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
                try:
                    ft = tell_result(self.study, self.problem, p, r, self._curve(trial_id))
                except EvaluationError as e:  # e.g. a non-finite objective
                    ft = tell_failure(self.study, p, e)
            elif "bitnas_error" in result:
                remote = {"traceback": result.get("bitnas_traceback", "")}
                ft = tell_failure(self.study, p, _RemoteFailure(result["bitnas_error"]), remote)
            elif error:
                ft = tell_failure(self.study, p, _RemoteFailure("the trial's Ray worker failed"))
            else:  # stopped by a Tune scheduler (the stopper) before the evaluator returned
                attrs: dict[str, Any] = {"epochs": len(self._curves.get(trial_id, {}))}
                attrs.update(self._curve(trial_id))
                if trial_id in self._stopped:
                    attrs[ATTR_STOPPED] = self._stopped.pop(trial_id)
                set_trial_attrs(p.trial, attrs)
                ft = self.study.tell(p.trial, state=TrialState.PRUNED)
            self._finished(p, ft)

        def fail_with(self, trial_id: str, text: str) -> None:
            """Tell a trial whose worker failed (after Tune's retries) FAIL with Ray's error."""
            p = self.errored.pop(trial_id, None)
            if p is not None:
                self._finished(p, tell_failure(self.study, p, _RemoteFailure(text)))

        def _curve(self, trial_id: str) -> dict[str, list[float]]:
            """The trial's epoch curve, as the attribute that records it."""
            curve = self._curves.pop(trial_id, {})
            return {"curve": [curve[e] for e in sorted(curve)]}

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
