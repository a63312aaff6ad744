"""The local backend: trials one after another in this process (ask-and-tell)."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.trial import TrialState

from bitnas.errors import EvaluationError, SpecError, StorageError
from bitnas.search.coordination import (
    close_abandoned,
    in_flight_elsewhere,
    study_target,
    target_covered,
    tell_spare,
    wait_for_twin,
)
from bitnas.search.interrupt import check as check_interrupt
from bitnas.search.problem import Problem
from bitnas.search.progress import Progress
from bitnas.search.records import ATTR_STOPPED, Proposal
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

__all__ = ["MAX_CONSECUTIVE_DUPLICATES", "MAX_CONSECUTIVE_FAILURES", "run_local"]

#: This many failed trials in a row stop the run: the evaluator, not one architecture, is broken.
MAX_CONSECUTIVE_FAILURES = 10
#: This many duplicate proposals in a row end the run early: the sampler finds nothing new.
MAX_CONSECUTIVE_DUPLICATES = 100
#: How often a run waiting on other runs' trials looks at the storage again (seconds).
POLL_S = 0.5


def run_local(
    study: optuna.Study,
    problem: Problem,
    n_trials: int,
    *,
    progress: bool = True,
    target: int | None = None,
) -> dict[str, int]:
    """Run trials until the study holds ``n_trials`` more finished trials than at the start
    (or ``target`` finished trials, where given); returns the counts of what was added.

    Several runs may share the study (a journal file or a database server): the target is
    the study's, so runs together stop at it (trials other live runs of this host are
    training count as on their way; a run on another host may overshoot it by its running
    trials), and an architecture another run of this host is training is waited for and
    reused, not trained twice.

    A trial that raises ends FAIL with its error stored and the study goes on (a re-run retries
    it); a configuration error (SpecError) or ``MAX_CONSECUTIVE_FAILURES`` failures in a row
    stop the run. Ctrl-C closes the running trial as FAIL ("interrupted") before propagating,
    so nothing stays RUNNING.
    """
    # the storage, not this process, says what is done: other runs may share the study. The
    # view keeps its totals current by reading only what changed (a trial's cost must not
    # grow with the study)
    view = StudyView(study, problem.stopper.active)
    target = study_target(view.finished, n_trials, target)
    bar = Progress(n_trials, enabled=progress)
    failures = duplicates = 0
    unseen = exhausted = False
    try:
        while True:
            check_interrupt()  # a Ctrl-C a finalizer swallowed (interrupt.py)
            view.refresh()
            finished = view.finished
            if finished >= target:
                break
            if finished + in_flight_elsewhere(view.running) >= target:
                time.sleep(POLL_S)  # other runs' trials may reach the target, or fail
                close_abandoned(study)
                continue
            # a sampler that keeps proposing architectures the study has (a converged NSGA-II,
            # a sampler blind to PRUNED stops): every FALLBACK_AFTER-th repeat in a row, an
            # unseen one
            p = propose(
                study,
                problem,
                view.trained,
                unseen,
                n_trials=view.n_trials,
                avoid=view.not_to_draw() if unseen else None,
            )
            unseen = False
            if p.duplicate_of is None:  # another run may have trained it meanwhile, or be at it
                try:
                    twin = wait_for_twin(
                        study, p, POLL_S, problem.stopper.active, look=view.twin_trials
                    )
                except KeyboardInterrupt as e:
                    tell_failure(study, p, e)
                    raise
                if twin is not None:
                    p = Proposal(p.trial, p.arch, p.cost, twin)
            if p.duplicate_of is not None:
                tell_duplicate(study, p)
                duplicates += 1
                unseen = duplicates % FALLBACK_AFTER == 0
                if duplicates >= MAX_CONSECUTIVE_DUPLICATES or sampler_exhausted(study):
                    exhausted = True
                    break
                continue
            # the view is fresh: ``wait_for_twin`` just read it, after this trial's record
            if target_covered(view.running, p, target, view.finished):
                tell_spare(study, p)  # another run's trial, asked first, takes the last place
                continue
            duplicates = 0
            curve: list[float] = []
            stopped: list[str] = []
            # the study's completed trials as this trial starts: what the stopper compares with
            refs = view.references() if problem.stopper.active else []

            def report(
                step: int,
                metrics: Mapping[str, float],
                p: Proposal = p,
                curve: list[float] = curve,
                stopped: list[str] = stopped,
                refs: list[Reference] = refs,
            ) -> bool:
                check_interrupt()
                v = float(metrics.get(problem.evaluator.objective, math.nan))
                curve.append(v)
                # Optuna's trial.report refuses multi-objective studies; the storage call does
                # not, and the dashboard and samplers read the curve from there
                p.trial.storage.set_trial_intermediate_value(p.trial._trial_id, step, v)
                why = problem.stopper.stop_reason(step, curve, p.cost, refs)
                if why is not None:
                    stopped.append(why)
                return why is not None

            try:
                result = problem.evaluator.evaluate(p.arch, seed=problem.seed, report=report)
                extra: dict[str, Any] = {"curve": curve}
                if stopped and result.stopped:
                    extra[ATTR_STOPPED] = stopped[-1]
                ft = tell_result(study, problem, p, result, extra)
            except StorageError:  # the storage is gone: nothing can be told (storage_retry.py)
                raise
            except (KeyboardInterrupt, SpecError) as e:
                tell_failure(study, p, e)
                raise
            except Exception as e:  # any other evaluator error fails this trial, not the study
                ft = tell_failure(study, p, e)
            bar.update(ft)
            if ft.state == TrialState.FAIL:
                failures += 1
                if failures >= MAX_CONSECUTIVE_FAILURES:
                    raise EvaluationError(
                        f"{failures} trials failed in a row; the last one (#{ft.number}) with "
                        f"{ft.user_attrs.get('error')}"
                    )
                continue
            failures = 0
    finally:
        bar.close()
        view.close()
    # what this run added: its own new trials, not those of other runs sharing the study
    view.refresh()
    added = view.added()
    added["exhausted"] = int(exhausted)
    return added
